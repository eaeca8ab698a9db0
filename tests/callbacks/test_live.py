"""The live callback inside a real RunEngine, writing into a real local Tiled server."""

from __future__ import annotations

import logging

import numpy as np
from bluesky.plans import count, grid_scan
from bluesky_tiled_plugins import TiledWriter
from ophyd.sim import det1, motor1, motor2
from tiled.queries import Key

from laue_live.analysis import FrameAnalyzer
from laue_live.callbacks import make_run_router
from laue_live.catalog import make_analysis_writer
from laue_live.describe import analyze_frame

from .conftest import n_spots, synthetic_frame

NX, NY = 3, 2


def _analysis_run(catalog, raw_uid):
    res = catalog.analysis.search(Key("raw_uid") == raw_uid)
    assert len(res) == 1, f"expected one analysis run of {raw_uid}, found {len(res)}"
    return res.values().first()


def _scan(RE, catalog, det, analyzer, **options):
    RE.subscribe(TiledWriter(catalog.raw, batch_size=1))
    writer = make_analysis_writer(catalog, max_delay_s=0.2)
    router = make_run_router([writer], analyzer=analyzer, **options)
    RE.subscribe(router)
    (uid,) = RE(grid_scan([det], motor1, 0, 1, NX, motor2, 0, 2, NY), sample="Si-test")
    assert router.wait(120), "analysis did not finish"
    writer.close()
    return uid, router


def _check_run(catalog, raw_uid, n_frames):
    run = _analysis_run(catalog, raw_uid)
    start, stop = run.metadata["start"], run.metadata["stop"]
    assert start["raw_uid"] == raw_uid and start["method"] == "fit"
    assert start["model_name"] and start["model_version"]
    assert start["sample"] == "Si-test" and list(start["shape"]) == [NX, NY]
    frames = run["frames"].base["internal"].read()
    spots = run["spots"].base["internal"].read()
    assert sorted(frames["frame"]) == list(range(n_frames))
    assert not frames["failed"].any()
    expected = {i: n_spots(i) for i in range(n_frames)}
    assert spots.groupby("frame").size().to_dict() == expected
    assert len(spots) == sum(expected.values())
    assert dict(zip(frames["frame"], frames["n_spots"], strict=True)) == expected
    # stage positions of a 3 x 2 grid: x in {0, .5, 1}, y in {0, 2}
    assert set(np.round(frames["x"], 6)) == {0.0, 0.5, 1.0}
    assert set(np.round(frames["y"], 6)) == {0.0, 2.0}
    assert stop["exit_status"] == "success" and stop["frames_analysed"] == n_frames
    assert stop["frames_failed"] == 0 and stop["num_events"]["spots"] == len(spots)
    return run


def test_inline_frames_scan_spot_tables_all_in_tiled(RE, catalog, inline_det, analyzer):
    uid, router = _scan(RE, catalog, inline_det, analyzer, batch_size=4)
    _check_run(catalog, uid, NX * NY)
    stats = router.callbacks[-1].stats()
    assert stats["re_events"] == NX * NY and stats["callback_errors"] == 0


def test_hdf5_frames_via_stream_resource(RE, catalog, hdf5_det, analyzer):
    uid, router = _scan(RE, catalog, hdf5_det, analyzer)
    _check_run(catalog, uid, NX * NY)
    raw = catalog.raw[uid]
    # The raw frames are registered (not copied) and the same as what was analysed.
    assert raw["primary"]["laueh5_image"].shape[0] == NX * NY


def test_run_without_images_is_ignored(RE, analyzer, caplog):
    docs = []
    router = make_run_router([lambda n, d: docs.append(n)], analyzer=analyzer)
    RE.subscribe(router)
    with caplog.at_level(logging.WARNING, logger="laue_live"):
        RE(count([det1], 3))
    assert router.wait(10)
    assert docs == []
    assert router.factory.analysis_uids == []
    assert not [r for r in caplog.records if r.name.startswith("laue_live")], "ignored run logged warnings"


def test_raw_run_failed_frames_do_not_abort(RE, inline_det, analyzer):
    """An analysis that raises on one frame: the scan completes, the frame is recorded as failed."""
    bad = np.asarray(_frame(3))

    def flaky(frames):
        if any(np.array_equal(f, bad) for f in frames):
            raise RuntimeError("injected analysis fault")
        return analyzer(frames)

    docs = []
    router = make_run_router([lambda n, d: docs.append((n, d))], analyzer=flaky, batch_size=4)
    RE.subscribe(router)
    RE(grid_scan([inline_det], motor1, 0, 1, NX, motor2, 0, 2, NY))  # must not raise
    assert router.wait(60)
    rows = [d["data"] for n, d in docs if n == "event"]
    assert len(rows) == NX * NY
    failed = [r for r in rows if r["failed"]]
    assert [r["frame"] for r in failed] == [3]
    assert "injected analysis fault" in failed[0]["error"]
    # the batch-mates of the bad frame were still analysed
    assert all(r["n_spots"] == n_spots(r["frame"]) for r in rows if not r["failed"])
    stop = [d for n, d in docs if n == "stop"][0]
    assert stop["frames_failed"] == 1 and stop["frames_analysed"] == NX * NY - 1
    assert stop["exit_status"] == "fail" and "1 failed" in stop["reason"]


def _frame(i):
    from .conftest import synthetic_frame

    return synthetic_frame(i)


def test_cnn_scan_through_the_callback_equals_analyze_frame(RE, catalog, inline_det):
    """The live path with the CNN ("auto" picks it): the rows in Tiled are analyze_frame(method="cnn")'s."""
    cnn = FrameAnalyzer("cnn")  # the shipped model: a model that does not load fails here
    uid, router = _scan(RE, catalog, inline_det, cnn, batch_size=4)
    run = _analysis_run(catalog, uid)
    assert run.metadata["start"]["method"] == "cnn"
    assert run.metadata["stop"]["frames_analysed"] == NX * NY and run.metadata["stop"]["frames_failed"] == 0
    spots = run["spots"].base["internal"].read()
    for i in range(NX * NY):
        got = spots[spots["frame"] == i].sort_values("spot").reset_index(drop=True)
        ref = analyze_frame(synthetic_frame(i), method="cnn", frame_number=i)
        assert len(got) == len(ref) == n_spots(i)
        for c in ref.columns:
            a, b = ref[c].to_numpy(), got[c].to_numpy()
            if a.dtype.kind == "f":
                # batches of 4 frames vs one frame: float32 rounding of the network, measured 1.3e-7 px
                # in position and 1.2e-7 relative elsewhere (the torch path's CNN_FP32_TOL)
                np.testing.assert_allclose(b, a, rtol=2e-7, atol=2e-7, err_msg=f"frame {i}, {c}")
            else:
                np.testing.assert_array_equal(b, a, err_msg=f"frame {i}, {c}")
        # the shipped CNN's polish is valid where finite, and its good spots are the fit's (every
        # spot of these clean frames is good: measured 11 of 11 on the first four, as the fit)
        assert got["converged"].all()
        fit = analyze_frame(synthetic_frame(i), method="fit", frame_number=i)
        np.testing.assert_array_equal(got["good"].to_numpy(), fit["good"].to_numpy(), err_msg=f"frame {i}")
