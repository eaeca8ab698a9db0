"""Faults of single frames in a live scan: bad pixels, analysis bugs, GPU OOM, missing/truncated files.

Each scan runs a real RunEngine with the live callback; the analysis run is collected as emitted
(the Tiled path is exercised in test_tiled_outage.py). Every frame of the raw run must have exactly
one row in the ``frames`` stream: analysed, or failed with its reason; the RunEngine never sees
an exception.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch
from bluesky.plans import count

from laue_live.analysis import FrameAnalyzer, OOMFallbackAnalyzer
from laue_live.callbacks import LaueSpotCallback, make_run_router
from laue_live.testing import make_hdf5_detector

from ._helpers import SHAPE, Collect, InlineDetector, n_spots, synthetic_frame

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

_ROWS = np.arange(SHAPE[0] * SHAPE[1]).reshape(SHAPE)
# frame index -> (what is wrong, the frame, expected: "ok:<n spots>" or "failed:<substring of error>")
BAD_FRAMES = {
    1: ("float frame of NaN", np.full(SHAPE, np.nan), "failed:NaN"),
    2: ("float frame with some NaN pixels", np.where(_ROWS % 7 == 0, np.nan, 1000.0), "failed:NaN"),
    3: ("float frame with +Inf", np.full(SHAPE, np.inf), "failed:infinite"),
    4: ("all zeros", np.zeros(SHAPE, np.uint16), "ok:0"),
    5: ("all saturated (65535)", np.full(SHAPE, 65535, np.uint16), "ok:0"),
    6: ("wrong dtype bool", np.ones(SHAPE, bool), "failed:dtype bool"),
    7: ("wrong dtype complex", np.ones(SHAPE, complex), "failed:complex"),
    8: ("wrong shape 1-D", np.ones(500, np.uint16), "failed:2-D"),
    9: ("wrong shape 3-D", np.ones((2, 64, 64), np.uint16), "failed:2-D"),
    10: ("wrong size 8 x 8", np.ones((8, 8), np.uint16), "failed:too small"),
    11: ("float32 frame (valid)", synthetic_frame(11).astype(np.float32), f"ok:{n_spots(11)}"),
    12: (
        "int32 frame of another size (valid, 96 x 200)",
        np.pad(synthetic_frame(12).astype(np.int32), ((0, 0), (0, 40)), constant_values=1000)[:96],
        "ok:2",
    ),
}
BUG_FRAME = 14  # the analysis raises on this one


def _frame(i):
    if i in BAD_FRAMES:
        return BAD_FRAMES[i][1]
    f = synthetic_frame(i)
    if i == BUG_FRAME:
        f[0, 0] = 7  # marker for the injected bug
    return f


def _scan(RE, det, analyzer, n, **kw):
    sink = Collect()
    router = make_run_router([sink], analyzer=analyzer, **kw)
    RE.subscribe(router)
    RE(count([det], n))
    assert router.wait(60)
    return sink


def test_bad_frames_and_an_analysis_bug_are_recorded_not_raised(RE, analyzer, fault_report):
    real = analyzer

    def buggy(frames):
        if any(f.ndim == 2 and f.shape == SHAPE and f[0, 0] == 7 for f in frames):
            raise ZeroDivisionError("injected analysis bug")
        return real(frames)

    n = 16
    det = InlineDetector(name="laue", frame=_frame)
    stops = []
    RE.subscribe(lambda name, doc: stops.append(doc) if name == "stop" else None)
    sink = _scan(RE, det, FrameAnalyzer("fit", func=buggy), n, batch_size=4)
    assert stops[0]["exit_status"] == "success"  # the RunEngine saw nothing
    frames, spots = sink.frames(), sink.spot_rows()
    assert sorted(frames) == list(range(n)), "one frames row per raw frame"
    for i in range(n):
        row = frames[i]
        if i in BAD_FRAMES:
            what, _, expect = BAD_FRAMES[i]
            kind, detail = expect.split(":")
            if kind == "ok":
                assert not row["failed"] and row["n_spots"] == int(detail), what
            else:
                assert row["failed"] and detail in row["error"], (what, row["error"])
                assert spots.get(i, 0) == 0, f"{what}: a failed frame has no spot rows"
        elif i == BUG_FRAME:
            assert row["failed"] and "ZeroDivisionError: injected analysis bug" in row["error"]
        else:
            assert not row["failed"] and row["n_spots"] == n_spots(i) == spots[i]
    sink_stop = sink.of("stop")[0]
    n_failed = sum(1 for r in frames.values() if r["failed"])
    assert sink_stop["frames_failed"] == n_failed and sink_stop["frames_analysed"] == n - n_failed
    for i, (what, _, expect) in BAD_FRAMES.items():
        result = (
            "analysed, 0 spots (empty table, logged)"
            if expect == "ok:0"
            else f"analysed, {expect[3:]} spots"
            if expect.startswith("ok")
            else f"recorded failed: `{frames[i]['error'][:60]}`"
        )
        fault_report.add("bad frame", what, result, 0)
    fault_report.add(
        "analysis",
        "exception in the analysis of one frame (batch of 4)",
        "that frame failed with its reason, batch-mates analysed one by one, RunEngine exit_status success",
        0,
    )


def test_gpu_out_of_memory_splits_the_batch_then_uses_the_cpu(RE, analyzer, caplog, fault_report):
    calls = []

    def gpu(frames):  # a GPU that holds at most one frame, and not frame 5 at all
        calls.append(len(frames))
        if len(frames) > 1 or frames[0][0, 0] == 7:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return analyzer(frames)

    def frame(i):
        f = synthetic_frame(i)
        if i == 5:
            f[0, 0] = 7
        return f

    guarded = OOMFallbackAnalyzer(FrameAnalyzer("fit", func=gpu), cpu=analyzer)
    n = 8
    with caplog.at_level(logging.WARNING, logger="laue_live.analysis._oom"):
        sink = _scan(RE, InlineDetector(name="laue", frame=frame), guarded, n, batch_size=4)
    frames = sink.frames()
    assert sorted(frames) == list(range(n))
    assert not any(r["failed"] for r in frames.values()), "nothing dropped or failed"
    assert {i: r["n_spots"] for i, r in frames.items()} == {i: n_spots(i) for i in range(n)}
    assert guarded.stats["cpu_frames"] == 1  # frame 5 fits on no GPU, whatever the batching was
    assert any("on the CPU" in r.message for r in caplog.records)
    # How the worker batched frames during the scan depends on timing; the split itself is checked
    # on a batch handed over directly (deterministic).
    direct = OOMFallbackAnalyzer(FrameAnalyzer("fit", func=gpu), cpu=analyzer)
    calls.clear()
    with caplog.at_level(logging.WARNING, logger="laue_live.analysis._oom"):
        tables = direct([frame(i) for i in range(n)])
    assert [len(t) for t in tables] == [n_spots(i) for i in range(n)]
    assert calls[0] == n  # the batch was tried whole first
    assert direct.stats["splits"] >= 3 and direct.stats["cpu_frames"] == 1
    assert any("splitting" in r.message for r in caplog.records)
    fault_report.add(
        "GPU",
        "torch.cuda.OutOfMemoryError on every batch > 1 frame and on one frame",
        f"batches split ({direct.stats['splits']} splits for {n} frames), 1 frame analysed on the CPU, "
        "logged; all frames analysed",
        0,
    )


def test_oom_hook_leaves_other_errors_alone():
    def broken(frames):
        raise ValueError("not an OOM")

    with pytest.raises(ValueError):
        OOMFallbackAnalyzer(FrameAnalyzer("fit", func=broken), cpu=FrameAnalyzer("fit"))([np.zeros(SHAPE)])


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_missing_or_truncated_detector_file(RE, tmp_path, analyzer, damage, fault_report):
    det = make_hdf5_detector("laueh5", tmp_path / "det")
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(count([det], 2))
    path = det.path
    if damage == "missing":
        os.remove(path)
    else:
        with open(path, "r+b") as f:
            f.truncate(4096)  # superblock and a little more: the frames are cut off
    sink = Collect()
    cb = LaueSpotCallback([sink], analyzer=analyzer)
    for name, doc in docs:  # the raw run's real documents, replayed after the file was damaged
        cb(name, doc)
    assert cb.wait(60)
    frames = sink.frames()
    assert sorted(frames) == [0, 1]
    for row in frames.values():
        assert row["failed"] and str(path) in row["error"], row["error"]
    fault_report.add(
        "detector file",
        f"external HDF5 file {damage} when the frame is read",
        "each frame recorded failed with the path: `" + frames[0]["error"].replace(str(path), "<path>") + "`",
        0,
    )
