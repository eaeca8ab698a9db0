"""Reprocessing a campaign on a two-worker LocalCluster: a worker dies mid-run, nothing is written twice."""

from __future__ import annotations

import numpy as np
import pytest

from laue_live.catalog import find_analysis_runs, read_stream_table
from laue_live.parallel import reprocess_campaign

from .conftest import n_spots

N_FRAMES = 6


def crash_once_factory(settings: dict, marker: str, after_calls: int = 2):
    """An analyser factory whose analyser kills its worker process once, mid-run, in a known state.

    On the first attempt (no ``marker`` file) the analyser of raw run ``raw_uid`` waits, at its
    ``after_calls``-th call, until everything analysed so far is in Tiled, then ends the worker
    process with ``os._exit`` (what a segfault or the OOM killer does): the run is left without a
    stop document and the frames analysed so far written (their number goes into ``marker``).
    """

    def factory(*, method, campaign, device, raw_uid, crash_uid=None):
        import os
        import time as _time

        from laue_live.analysis import FrameAnalyzer
        from laue_live.catalog import CatalogSettings, find_analysis_runs, open_catalog, written_frames
        from laue_live.pipeline import FramePipeline

        pipe = FramePipeline(method, "cpu")
        state = {"calls": 0, "frames": 0}
        target = settings["crash_uid"]

        def analyse(frames):
            state["calls"] += 1
            if raw_uid == target and state["calls"] == after_calls and not os.path.exists(marker):
                cat = open_catalog(
                    CatalogSettings(
                        uri=settings["uri"],
                        api_key=settings["api_key"],
                        raw_path=settings["raw_path"],
                        analysis_path=settings["analysis_path"],
                    ),
                    create=False,
                )
                deadline = _time.monotonic() + 120
                written = -1
                while _time.monotonic() < deadline:  # bounded wait on a condition, not a sleep
                    runs = find_analysis_runs(cat.analysis, raw_uid)
                    if runs:
                        done_f, done_s = written_frames(runs[-1])
                        written = len(done_f | done_s)
                        if len(done_f) == state["frames"] and len(done_s) == state["frames"]:
                            break
                    _time.sleep(0.05)
                with open(marker, "w") as fh:
                    fh.write(str(written))  # frames in Tiled when the worker died
                os._exit(17)
            state["frames"] += len(frames)
            return pipe.process(frames)

        return FrameAnalyzer(method, func=analyse, campaign=campaign, pipeline="torch")

    return factory


def check_analysis(catalog, raw_uid: str, campaign: str):
    runs = [
        r
        for r in find_analysis_runs(catalog.analysis, raw_uid)
        if r.metadata["start"]["analysis_params"].get("campaign") == campaign
    ]
    assert len(runs) == 1, f"{len(runs)} analysis runs of {raw_uid} in campaign {campaign}"
    run = runs[0]
    assert run.metadata["stop"]["exit_status"] == "success"
    frames = read_stream_table(run, "frames")
    spots = read_stream_table(run, "spots")
    assert sorted(frames["frame"]) == list(range(N_FRAMES))  # every frame once
    assert not spots.duplicated(["frame", "spot"]).any()
    assert spots.groupby("frame").size().to_dict() == {i: n_spots(i) for i in range(N_FRAMES)}
    assert frames.set_index("frame")["n_spots"].to_dict() == {i: n_spots(i) for i in range(N_FRAMES)}
    assert np.allclose(spots["sim"].between(0, 1), True)
    return run


@pytest.mark.slow
def test_campaign_survives_a_worker_crash_without_duplicates(tiled_client, write_raw_run, tmp_path):
    catalog = tiled_client
    uids = [write_raw_run(catalog.raw, N_FRAMES) for _ in range(2)]
    s = catalog.settings
    marker = tmp_path / "crashed"
    fault = crash_once_factory(
        {
            "uri": s.uri,
            "api_key": s.api_key,
            "raw_path": s.raw_path,
            "analysis_path": s.analysis_path,
            "crash_uid": uids[1],
        },
        str(marker),
    )
    res = reprocess_campaign(
        s,
        uids + uids[:1],
        method="fit",
        device="cpu",
        campaign="c1",
        n_workers=2,
        processes=True,
        frames_per_call=2,
        analyzer_factory=fault,
        progress=False,
    )
    assert marker.exists()  # the worker really died once
    assert res.cluster["n_workers"] == 2 and not res.failed
    by_uid = {r["raw_uid"]: r for r in res.runs}
    assert set(by_uid) == set(uids)  # the duplicate id was reprocessed once
    crashed = by_uid[uids[1]]
    written_before_crash = int(marker.read_text())
    assert 1 <= written_before_crash < N_FRAMES
    # completed in place (not rewritten, not a second run): only the missing frames were analysed
    assert crashed["resumed"] and crashed["frames_skipped"] == written_before_crash
    for uid in uids:
        check_analysis(catalog, uid, "c1")

    # the same campaign again: every run is already finished, nothing is written
    again = reprocess_campaign(
        s, uids, method="fit", device="cpu", campaign="c1", n_workers=2, processes=False, progress=False
    )
    assert {r["status"] for r in again.runs} == {"skipped"}
    for uid in uids:
        check_analysis(catalog, uid, "c1")


def test_campaign_on_threads_and_a_bad_run_id(tiled_client, write_raw_run):
    catalog = tiled_client
    uid = write_raw_run(catalog.raw, N_FRAMES)
    res = reprocess_campaign(
        catalog.settings,
        [uid, "no-such-run"],
        method="fit",
        device="cpu",
        n_workers=2,
        processes=False,
        retries=0,
        progress=False,
    )
    assert res.cluster["kind"] == "local"
    status = {r["raw_uid"]: r["status"] for r in res.runs}
    assert status == {uid: "done", "no-such-run": "failed"}
    assert "not found" in res.failed[0]["error"]
    run = check_analysis(catalog, uid, res.campaign)
    assert run.metadata["start"]["analysis_params"]["pipeline"] == "torch"
    assert res.frames == N_FRAMES


def test_a_campaign_retry_completes_a_run_whose_loop_raised(tiled_client, write_raw_run, monkeypatch):
    from laue_live.catalog import _reprocess

    catalog = tiled_client
    uid = write_raw_run(catalog.raw, N_FRAMES)
    real = _reprocess.FrameTask

    def failing(i, *args, **kwargs):  # injected fault: the reading loop raises at frame 3
        if i == 3:
            raise RuntimeError("injected: reading loop failed")
        return real(i, *args, **kwargs)

    monkeypatch.setattr(_reprocess, "FrameTask", failing)
    kw = dict(method="fit", device="cpu", campaign="c-raise", n_workers=1, processes=False, progress=False,
              frames_per_call=1)
    first = reprocess_campaign(catalog.settings, [uid], retries=0, **kw)
    assert [r["status"] for r in first.runs] == ["failed"]
    monkeypatch.setattr(_reprocess, "FrameTask", real)
    again = reprocess_campaign(catalog.settings, [uid], **kw)
    (r,) = again.runs
    assert r["status"] == "done" and r["resumed"] and r["frames_skipped"] == 3
    check_analysis(catalog, uid, "c-raise")


@pytest.fixture(params=["dask default", "README cluster setting"])
def user_profile_setting(request, monkeypatch):
    """The user's Dask profiler setting: dask's default (on), or off as the README tells cluster users."""
    import dask
    import distributed  # noqa: F401  (registers its defaults, which refresh() keeps)

    if request.param == "README cluster setting":
        monkeypatch.setenv("DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED", "False")
    dask.config.refresh()  # read the environment again, as a fresh process would
    yield dask.config.get("distributed.worker.profile.enabled")
    monkeypatch.undo()
    dask.config.refresh()


def test_local_workers_run_without_the_stack_profiler_and_read_tiled_locally(user_profile_setting):
    """Regressions of a campaign that hung in CI: a worker frozen in the profiler, nested frame reads."""
    import dask
    import dask.array as da

    from laue_live.parallel import open_cluster
    from laue_live.parallel._campaign import _local_dask_reads

    def nested_compute():
        # what Tiled's ArrayClient.read does inside a task: without the guard, dask hands it to the
        # cluster (any worker, possibly a frozen one); with it, it runs in this thread
        from dask.base import get_scheduler
        from dask.local import get_sync

        with _local_dask_reads():
            return int(da.ones(10, chunks=5).sum().compute()), get_scheduler() is get_sync

    def profiling(dask_worker):
        return "profile" in dask_worker.periodic_callbacks

    with open_cluster(n_workers=1, processes=True) as (client, info):
        assert info["n_workers"] == 1
        assert list(client.run(profiling).values()) == [False]
        assert client.submit(nested_compute, pure=False).result(timeout=60) == (10, True)
    assert dask.config.get("scheduler", None) is None  # the guard restored the default
    # the cluster's own setting did not leak: the user's is back, whatever it was
    expected = user_profile_setting if user_profile_setting is False else True
    assert dask.config.get("distributed.worker.profile.enabled") is expected
