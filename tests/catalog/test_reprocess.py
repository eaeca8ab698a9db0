"""Reprocessing a raw run from the catalog, and completing an interrupted live analysis."""

from __future__ import annotations

from bluesky.plans import grid_scan
from bluesky_tiled_plugins import TiledWriter
from ophyd.sim import motor1, motor2

from laue_live.analysis import AnalysisRunComposer
from laue_live.callbacks import make_run_router
from laue_live.catalog import find_analysis_runs, make_analysis_writer, read_stream_table, reprocess_run
from laue_live.testing import n_spots, synthetic_frame

N = 4


def _raw_run(RE, catalog, det, live_analyzer=None):
    RE.subscribe(TiledWriter(catalog.raw, batch_size=1))
    writer = router = None
    if live_analyzer is not None:
        writer = make_analysis_writer(catalog, max_delay_s=0.2)
        router = make_run_router([writer], analyzer=live_analyzer)
        RE.subscribe(router)
    (uid,) = RE(grid_scan([det], motor1, 0, 1, 2, motor2, 0, 1, 2), sample="reprocess-test")
    if router is not None:
        assert router.wait(60)
        writer.close()
    return uid


def _tables(run):
    frames = run["frames"].base["internal"].read()
    spots = run["spots"].base["internal"].read()
    return frames, spots


def test_reprocess_writes_a_second_analysis_run(RE, catalog, inline_det, analyzer):
    uid = _raw_run(RE, catalog, inline_det, live_analyzer=analyzer)
    res = reprocess_run(catalog, uid, analyzer=analyzer, progress=False)
    assert not res.resumed and res.frames_total == N and res.frames_skipped == 0
    runs = find_analysis_runs(catalog.analysis, uid)
    assert [r.metadata["start"]["uid"] for r in runs][-1] == res.analysis_uid and len(runs) == 2
    second = runs[-1]
    assert second.metadata["start"]["reprocessed"] is True
    assert second.metadata["stop"]["frames_analysed"] == N
    frames, spots = _tables(second)
    assert sorted(frames["frame"]) == list(range(N))
    assert spots.groupby("frame").size().to_dict() == {i: n_spots(i) for i in range(N)}
    # positions come from the raw run's table: the 2 x 2 grid
    assert sorted(zip(frames["x"], frames["y"], strict=True)) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_resume_completes_an_interrupted_analysis_without_duplicates(RE, catalog, inline_det, analyzer):
    uid = _raw_run(RE, catalog, inline_det)  # raw run only
    raw_start = dict(catalog.raw[uid].metadata["start"])
    # A live analysis that died after two frames: start, descriptors, two frames, no stop.
    writer = make_analysis_writer(catalog, max_delay_s=0.1)
    composer = AnalysisRunComposer([writer], raw_start, {"method": "fit", "model": {"name": "gaussian-fit",
                                                                                    "version": "x"}},
                                   image_field="laue_image")
    for i, table in enumerate(analyzer([synthetic_frame(0), synthetic_frame(1)])):
        composer.frame(i, table)
    writer.close()
    interrupted = catalog.analysis[composer.uid]
    assert "stop" not in interrupted.metadata or not interrupted.metadata["stop"]

    res = reprocess_run(catalog, uid, analyzer=analyzer, resume=True, progress=False)
    assert res.resumed and res.analysis_uid == composer.uid and res.frames_skipped == 2
    run = catalog.analysis[composer.uid]
    frames, spots = _tables(run)
    assert sorted(frames["frame"]) == list(range(N))  # each frame once
    assert spots.groupby("frame").size().to_dict() == {i: n_spots(i) for i in range(N)}
    assert spots.duplicated(["frame", "spot"]).sum() == 0
    assert sorted(frames["seq_num"]) == list(range(1, N + 1))  # sequence numbers continue
    stop = run.metadata["stop"]
    assert stop["frames_analysed"] == N and stop["exit_status"] == "success"
    assert len(find_analysis_runs(catalog.analysis, uid)) == 1  # no second run was made
    # resuming a finished run again finds nothing to complete: a new run is written instead
    again = reprocess_run(catalog, uid, analyzer=analyzer, resume=True, progress=False)
    assert not again.resumed


def _interrupted_run(catalog, uid, analyzer, monkeypatch, refuse: str, n: int = 3):
    """A live analysis of ``n`` frames whose ``refuse`` appends the server refused (injected), no stop."""
    from laue_live.catalog import AnalysisWriter

    real_append = AnalysisWriter._append

    def refusing(self, s, table):
        if s.name == refuse:
            raise OSError(f"injected: {refuse} append refused")
        return real_append(self, s, table)

    monkeypatch.setattr(AnalysisWriter, "_append", refusing)
    writer = make_analysis_writer(catalog, max_delay_s=0.1, max_attempts=1)
    composer = AnalysisRunComposer([writer], dict(catalog.raw[uid].metadata["start"]),
                                   {"method": "fit", "model": {"name": "gaussian-fit", "version": "x"}},
                                   image_field="laue_image")
    for i, table in enumerate(analyzer([synthetic_frame(i) for i in range(n)])):
        composer.frame(i, table)
    writer.flush()
    monkeypatch.setattr(AnalysisWriter, "_append", real_append)
    return composer, writer


def test_a_summary_row_is_never_in_tiled_without_its_spot_rows(RE, catalog, inline_det, analyzer,
                                                                monkeypatch):
    uid = _raw_run(RE, catalog, inline_det)
    composer, writer = _interrupted_run(catalog, uid, analyzer, monkeypatch, refuse="spots")
    run = catalog.analysis[composer.uid]
    assert "frames" not in run or len(read_stream_table(run, "frames")) == 0
    assert writer.unwritten  # the refused rows are kept (spooled), not lost
    # resume analyses all of them: every frame once, with its spot rows
    res = reprocess_run(catalog, uid, analyzer=analyzer, resume=True, progress=False)
    assert res.resumed and res.frames_skipped == 0
    frames, spots = _tables(catalog.analysis[composer.uid])
    assert sorted(frames["frame"]) == list(range(N))
    assert spots.groupby("frame").size().to_dict() == {i: n_spots(i) for i in range(N)}


def test_resume_after_spots_written_but_summaries_lost(RE, catalog, inline_det, analyzer, monkeypatch):
    uid = _raw_run(RE, catalog, inline_det)
    composer, _ = _interrupted_run(catalog, uid, analyzer, monkeypatch, refuse="frames")
    run = catalog.analysis[composer.uid]
    assert set(read_stream_table(run, "spots")["frame"]) == {0, 1, 2}
    res = reprocess_run(catalog, uid, analyzer=analyzer, resume=True, progress=False)
    assert res.resumed and res.frames_skipped == 3
    frames, spots = _tables(catalog.analysis[composer.uid])
    assert sorted(frames["frame"]) == list(range(N))  # summaries written once, from the spot rows
    assert spots.duplicated(["frame", "spot"]).sum() == 0  # spot rows not written twice
    assert spots.groupby("frame").size().to_dict() == {i: n_spots(i) for i in range(N)}
    assert frames.set_index("frame")["n_spots"].to_dict() == {i: n_spots(i) for i in range(N)}


def _fail_at(monkeypatch, frame: int):
    """Make the reprocessing loop raise when it reaches ``frame`` (injected fault), once."""
    from laue_live.catalog import _reprocess

    real = _reprocess.FrameTask
    state = {"armed": True}

    def task(i, *args, **kwargs):
        if i == frame and state["armed"]:
            state["armed"] = False
            raise RuntimeError("injected: reading loop failed")
        return real(i, *args, **kwargs)

    monkeypatch.setattr(_reprocess, "FrameTask", task)


def test_a_reprocessing_loop_that_raises_leaves_a_failed_resumable_run(RE, catalog, inline_det, analyzer,
                                                                       monkeypatch):
    import pytest

    uid = _raw_run(RE, catalog, inline_det)
    _fail_at(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="injected"):
        reprocess_run(catalog, uid, analyzer=analyzer, progress=False)
    (run,) = find_analysis_runs(catalog.analysis, uid)
    stop = run.metadata["stop"]
    assert stop["exit_status"] == "fail" and stop["interrupted"] is True
    assert "interrupted after 2 of 4 frames" in stop["reason"] and "injected" in stop["reason"]
    # resume completes it in place: it is not taken for a finished run
    res = reprocess_run(catalog, uid, analyzer=analyzer, resume=True, progress=False)
    assert res.resumed and res.analysis_uid == run.metadata["start"]["uid"] and res.frames_skipped == 2
    run = catalog.analysis[res.analysis_uid]
    assert run.metadata["stop"]["exit_status"] == "success" and not run.metadata["stop"]["interrupted"]
    frames, spots = _tables(run)
    assert sorted(frames["frame"]) == list(range(N))
    assert spots.groupby("frame").size().to_dict() == {i: n_spots(i) for i in range(N)}
    assert spots.duplicated(["frame", "spot"]).sum() == 0
