"""Frames delivered every way Bluesky delivers them: event pages, legacy Resource/Datum, files."""

from __future__ import annotations

import event_model
import numpy as np
from bluesky.plans import count, grid_scan
from ophyd.sim import SynSignalWithRegistry, motor1, motor2

from laue_live.callbacks import LaueSpotCallback, make_run_router

from .conftest import n_spots, synthetic_frame


def _rows(docs, stream_uid=None):
    return [d["data"] for n, d in docs if n == "event"]


def _spot_rows(docs):
    return sum(len(d["seq_num"]) for n, d in docs if n == "event_page")


def _analysed_scan(RE, det, analyzer, n_frames: int, timeout: float = 60) -> list[dict]:
    """Count ``n_frames`` frames of ``det`` with the live analysis subscribed; its ``frames`` rows."""
    docs = []
    router = make_run_router([lambda n, d: docs.append((n, d))], analyzer=analyzer)
    RE.subscribe(router)
    RE(count([det], n_frames))
    assert router.wait(timeout)
    return _rows(docs)


def test_frames_in_event_pages(RE, inline_det, analyzer):
    """The same run, its events packed into one event_page, gives the same analysis."""
    raw = []
    RE(grid_scan([inline_det], motor1, 0, 1, 2, motor2, 0, 1, 2), lambda n, d: raw.append((n, d)))
    events = [d for n, d in raw if n == "event"]
    page = event_model.pack_event_page(*events)
    docs = []
    router = make_run_router([lambda n, d: docs.append((n, d))], analyzer=analyzer, batch_size=8)
    for name, doc in raw:
        if name == "event":
            continue
        if name == "stop":
            router("event_page", page)
        router(name, doc)
    assert router.wait(60)
    rows = _rows(docs)
    assert sorted(r["frame"] for r in rows) == [0, 1, 2, 3]
    assert all(r["n_spots"] == n_spots(r["frame"]) and not r["failed"] for r in rows)
    assert _spot_rows(docs) == sum(n_spots(i) for i in range(4))
    start = next(d for n, d in docs if n == "start")
    assert start["raw_uid"] == raw[0][1]["uid"]


def test_frames_in_legacy_resource_datum_files(RE, tmp_path, analyzer):
    """ophyd.sim's registry detector: frames in .npy files named by Resource/Datum (spec NPY_SEQ)."""
    counter = iter(range(100))
    det = SynSignalWithRegistry(lambda: synthetic_frame(next(counter)), name="npy_image",
                                save_path=str(tmp_path), labels={"detectors"})
    next(counter)  # SynSignal evaluated func once at construction: frame 0 is the first triggered
    counter = iter(range(100))
    det.sim_set_func(lambda: synthetic_frame(next(counter)))
    rows = _analysed_scan(RE, det, analyzer, 3)
    assert [r["frame"] for r in rows] == [0, 1, 2]
    assert [r["n_spots"] for r in rows] == [n_spots(i) for i in range(3)]
    assert not any(r["failed"] for r in rows)


def test_missing_external_file_is_a_failed_frame(RE, hdf5_det, analyzer):
    """A frame whose file vanished is recorded as failed with the path; the scan is unaffected."""
    docs = []
    cb = LaueSpotCallback([lambda n, d: docs.append((n, d))], analyzer=analyzer)

    def spoil(name, doc):
        if name == "stream_resource":
            doc = dict(doc, uri="file://localhost/nonexistent/dir/frames.h5")
        cb(name, doc)

    RE(count([hdf5_det], 2), spoil)
    assert cb.wait(60)
    rows = _rows(docs)
    assert len(rows) == 2 and all(r["failed"] for r in rows)
    assert "/nonexistent/dir/frames.h5" in rows[0]["error"]


def test_callback_never_raises_into_the_run_engine(analyzer):
    """Malformed documents are logged and counted, never raised."""
    cb = LaueSpotCallback([], analyzer=analyzer)
    cb("descriptor", {"uid": "d1"})  # before start, missing keys
    cb("start", {"uid": "r1", "time": 0.0})
    cb("descriptor", {"uid": "d1", "name": "primary", "run_start": "r1",
                      "data_keys": {"img": {"shape": [64, 64], "dtype": "array", "source": "x"}}})
    cb("event", {"descriptor": "d1"})  # no seq_num, no data
    cb("event", {"descriptor": "d1", "seq_num": 1, "data": {"img": np.zeros((3,))}, "uid": "e1",
                 "time": 0.0, "timestamps": {}})
    cb("stop", {"uid": "s1", "run_start": "r1", "exit_status": "success", "time": 1.0})
    assert cb.wait(30)
    assert cb.errors >= 1
    assert cb.worker.stop_doc["frames_failed"] == 1


def test_simulator_legacy_ad_hdf5_files(RE, tmp_path, analyzer):
    """The project's simulated area detector in Resource/Datum mode (spec AD_HDF5), full-size frames."""
    from laue_live.sim import SimLaueDetector

    det = SimLaueDetector("laueleg", mode="hdf5_legacy", write_dir=tmp_path / "det")
    rows = _analysed_scan(RE, det, analyzer, 2, timeout=120)
    assert [r["frame"] for r in rows] == [0, 1]
    assert not any(r["failed"] for r in rows), [r["error"] for r in rows]
    truth = det.truth.groupby("frame").size()
    # a Si grain gives ~100 spots per frame; most are found (overlaps and faint spots aside)
    assert all(r["n_spots"] >= 0.5 * truth[r["frame"]] for r in rows), (rows, truth.to_dict())
