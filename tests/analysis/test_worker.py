"""The analysis worker: the queue-full policies (spill, drop_newest) with a deterministic slow analysis."""

from __future__ import annotations

import threading

import pytest

from laue_live.analysis import AnalysisRunComposer, AnalysisWorker, FrameTask

from .conftest import n_spots, synthetic_frame


def _rows(docs):
    return [d["data"] for n, d in docs if n == "event"]


class _Gate:
    """An analyser that holds its first call until released: a slow analysis, deterministically."""

    def __init__(self, analyzer):
        self.analyzer = analyzer
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, frames):
        self.entered.set()
        assert self.release.wait(30), "gate never released"
        return self.analyzer(frames)


@pytest.mark.parametrize("policy", ["spill", "drop_newest"])
def test_queue_full_policy(policy, analyzer):
    docs = []
    start = {"uid": "raw-uid-1", "time": 0.0}
    composer = AnalysisRunComposer([lambda n, d: docs.append((n, d))], start, {"method": "fit"})
    gate = _Gate(analyzer)
    worker = AnalysisWorker(composer, gate, queue_size=1, policy=policy, block_timeout=0.01, batch_size=1)
    worker.submit(FrameTask(0, source=synthetic_frame(0)))
    assert gate.entered.wait(30)  # frame 0 is being analysed, the queue is empty
    kept = [worker.submit(FrameTask(i, source=synthetic_frame(i))) for i in range(1, 5)]
    gate.release.set()
    worker.close("success")
    assert worker.join(60)
    rows = {r["frame"]: r for r in _rows(docs)}
    assert sorted(rows) == [0, 1, 2, 3, 4]  # every frame is in the frames stream
    stop = worker.stop_doc
    if policy == "spill":
        assert kept == [True] * 4 and worker.stats.spilled == 3 and worker.stats.dropped == 0
        assert all(not r["failed"] and r["n_spots"] == n_spots(i) for i, r in rows.items())
        assert stop["frames_analysed"] == 5 and stop["exit_status"] == "success"
    else:
        assert kept == [True, False, False, False] and worker.stats.dropped == 3
        dropped = [i for i, r in rows.items() if r["failed"]]
        assert dropped == [2, 3, 4] and rows[2]["error"].startswith("dropped")
        assert stop["frames_dropped"] == 3 and stop["frames_analysed"] == 2
        assert stop["exit_status"] == "fail"
