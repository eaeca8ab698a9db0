"""The analysis-run writer: row counts, visibility during a run, idempotence, errors that surface."""

from __future__ import annotations

import time

import numpy as np
import pytest

from laue_live import SPOT_COLUMNS
from laue_live.catalog import (
    CatalogWriteError,
    get_spot_table,
    make_analysis_writer,
    synthetic_analysis_documents,
)


def _wait_for(predicate, timeout=20.0, interval=0.05):
    """Poll ``predicate`` until true or ``timeout`` s (bounded wait on another process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def test_round_trip_row_counts_and_dtypes(tiled_client):
    counts = [7, 0, 3, 12, 1, 5, 0, 9]  # frames without spots have no page, only a summary
    docs = list(synthetic_analysis_documents(len(counts), counts, raw_uid="raw-a", seed=1))
    w = make_analysis_writer(tiled_client, max_rows=10, max_delay_s=0.2)  # forces several appends
    for name, doc in docs:
        w(name, doc)
    w.close()
    uid = docs[0][1]["uid"]
    run = tiled_client.analysis[uid]
    assert run.metadata["start"]["raw_uid"] == "raw-a"
    assert run.metadata["stop"]["exit_status"] == "success"
    df = get_spot_table(run)
    assert len(df) == sum(counts)
    assert df.groupby("frame").size().reindex(range(len(counts)), fill_value=0).tolist() == counts
    assert [str(df[c.name].dtype) for c in SPOT_COLUMNS] == [c.dtype for c in SPOT_COLUMNS]
    # Values survive the trip (frame 3's page, column by column).
    page = next(d for n, d in docs if n == "event_page" and d["data"]["frame"][0] == 3)
    got = df[df.frame == 3].sort_values("spot")
    for c in ("row", "sim", "good", "component"):
        np.testing.assert_allclose(got[c].to_numpy(float), np.asarray(page["data"][c], float), rtol=1e-6)
    # The per-frame summary stream and TiledWriter's layout.
    summary = run["frames"].base["internal"].read()
    assert summary["frame"].tolist() == list(range(len(counts)))
    assert summary["n_spots"].tolist() == counts
    assert set(run) == {"frames", "spots"}
    assert w.stats["errors"] == 0 and w.stats["rows_written"] == sum(counts) + len(counts)
    assert w.frames_written(uid) == {i for i, n in enumerate(counts) if n}


def test_rows_visible_during_the_run_within_the_delay(tiled_client):
    docs = list(synthetic_analysis_documents(10, 20, seed=2))
    uid = docs[0][1]["uid"]
    # max_rows far above the run's rows: only the time trigger can make rows visible before stop.
    w = make_analysis_writer(tiled_client, max_rows=1_000_000, max_delay_s=0.3)
    first_half = [d for d in docs if d[0] != "stop"][: 3 + 2 * 5]  # start, 2 descriptors, 5 frames
    for name, doc in first_half:
        w(name, doc)

    def rows_so_far():
        try:
            return len(tiled_client.analysis[uid]["spots"].base["internal"].read(columns=["frame"]))
        except KeyError:
            return 0

    assert _wait_for(lambda: rows_so_far() >= 100), "rows not visible before the stop document"
    assert rows_so_far() == 100  # 5 frames x 20 spots, no stop yet
    for name, doc in docs[len(first_half):]:
        w(name, doc)
    assert w.flush(timeout=30)
    assert rows_so_far() == 200
    w.close()


def test_resent_frames_are_written_once(tiled_client):
    docs = list(synthetic_analysis_documents(4, 6, seed=3))
    pages = [d for d in docs if d[0] == "event_page"]
    w = make_analysis_writer(tiled_client, max_rows=1000, max_delay_s=0.2)
    for name, doc in docs[:-1]:
        w(name, doc)
    for name, doc in pages[1:3]:  # frames 1 and 2 again (a retry after a fault)
        w(name, doc)
    w(*docs[-1])
    w.close()
    df = get_spot_table(tiled_client.analysis[docs[0][1]["uid"]])
    assert len(df) == 4 * 6
    assert w.stats["duplicates_skipped"] == 2 * 6


def test_frames_marked_written_before_the_run_are_skipped(tiled_client):
    docs = list(synthetic_analysis_documents(5, 4, seed=7))
    uid = docs[0][1]["uid"]
    w = make_analysis_writer(tiled_client, max_delay_s=0.2)
    w.mark_written(uid, [0, 3])  # e.g. found in Tiled by a resumed analysis
    for name, doc in docs:
        w(name, doc)
    w.close()
    df = get_spot_table(tiled_client.analysis[uid])
    assert sorted(set(df["frame"])) == [1, 2, 4] and len(df) == 3 * 4
    assert w.frames_written(uid) == {0, 1, 2, 3, 4}


@pytest.mark.filterwarnings("ignore:The callback:UserWarning")  # event_model on the refused start
def test_errors_are_counted_and_raised_at_close(tiled_client):
    docs = list(synthetic_analysis_documents(2, 3, seed=4))
    w = make_analysis_writer(tiled_client, max_delay_s=0.2)
    for name, doc in docs:
        w(name, doc)
    for name, doc in docs:  # the same run again: the server refuses (409) a second node
        w(name, doc)
    w("event", {"descriptor": "no-such-descriptor", "seq_num": 1, "time": 0.0, "data": {},
                "timestamps": {}})
    with pytest.raises(CatalogWriteError, match="2 error"):
        w.close()
    assert w.stats["errors"] == 2  # one for the refused start, not one per document after it
    assert w.stats["rows_of_failed_runs"] == 2 * 3 + 2  # its spot rows and frame summaries, counted
    # The good run is complete despite the errors after it.
    assert len(get_spot_table(tiled_client.analysis[docs[0][1]["uid"]])) == 6
    with pytest.raises(CatalogWriteError):
        w("start", {})  # closed


def test_bluesky_clients_read_the_run(tiled_client):
    docs = list(synthetic_analysis_documents(3, 4, seed=5))
    w = make_analysis_writer(tiled_client, max_delay_s=0.2, timestamps=True)
    for name, doc in docs:
        w(name, doc)
    w.close()
    run = tiled_client.analysis[docs[0][1]["uid"]]
    ds = run["spots"].read()
    assert ds["sim"].shape == (12,)
    names = [n for n, _ in run.documents()]
    assert names.count("event") == 12 + 3 and names[0] == "start" and names[-1] == "stop"


def test_failed_appends_are_retried_then_spooled_not_lost(tiled_client, tmp_path, monkeypatch):
    import pandas as pd

    from laue_live.catalog import AnalysisWriter, read_journal, replay_spool

    real_append = AnalysisWriter._append
    calls = {"n": 0}

    def flaky(self, s, table):  # the server refuses the first spot appends (injected fault)
        if s.name == "spots" and calls["n"] < 4:
            calls["n"] += 1
            raise OSError("injected: connection reset")
        return real_append(self, s, table)

    monkeypatch.setattr(AnalysisWriter, "_append", flaky)
    docs = list(synthetic_analysis_documents(3, 5, seed=6))
    w = make_analysis_writer(tiled_client, max_rows=5, max_delay_s=0.2, max_attempts=3,
                             spool_dir=tmp_path / "spool")
    for name, doc in docs:
        w(name, doc)
    with pytest.raises(CatalogWriteError, match="1 error"):  # the batch given up; not the retries
        w.close()
    assert w.stats["retries"] == 3 and w.stats["errors"] == 1
    # Frame 0's batch failed 3 times and went to the spool (a journal of the run's documents: its
    # start, the descriptors, the rows as event pages, its stop); the others were retried into Tiled.
    uid = docs[0][1]["uid"]
    journaled = list(read_journal(tmp_path / "spool" / f"{uid}.journal"))
    assert [n for n, _ in journaled][0] == "start" and journaled[-1][0] == "stop"
    streams = {d["uid"]: d["name"] for n, d in journaled if n == "descriptor"}
    pages = {name: [pd.DataFrame(d["data"]) for n, d in journaled
                    if n == "event_page" and streams[d["descriptor"]] == name]
             for name in ("spots", "frames")}
    spooled = pages["spots"]
    # frame 0's summary is held back with its spot rows: a summary in Tiled means its spots are there
    (summary,) = pages["frames"]
    assert summary["frame"].tolist() == [0]
    assert sorted(tiled_client.analysis[docs[0][1]["uid"]]["frames"].read()["frame"]) == [1, 2]
    written = get_spot_table(tiled_client.analysis[docs[0][1]["uid"]])
    assert sum(len(df) for df in spooled) + len(written) == 15
    assert sorted(set(written["frame"])) == [1, 2] and {0} == set().union(*(set(d["frame"]) for d in spooled))
    assert w.frames_written(docs[0][1]["uid"]) == {1, 2}
    # Once Tiled takes appends again, the spool is replayed: the run is whole, no row twice.
    (res,) = replay_spool(tmp_path / "spool", tiled_client.analysis)
    assert res.stopped and res.frames_replayed == 1 and res.spot_rows_replayed == 5
    assert not list((tmp_path / "spool").glob("*.journal"))
    whole = get_spot_table(tiled_client.analysis[uid])
    assert len(whole) == 15 and not whole.duplicated(["frame", "spot"]).any()
    assert sorted(tiled_client.analysis[uid]["frames"].read()["frame"]) == [0, 1, 2]


def test_an_append_that_succeeds_on_retry_is_no_error_at_close(tiled_client, monkeypatch):
    from laue_live.catalog import AnalysisWriter

    real_append = AnalysisWriter._append
    calls = {"n": 0}

    def flaky_once(self, s, table):  # the server refuses the first spot append only (injected fault)
        if s.name == "spots" and calls["n"] == 0:
            calls["n"] += 1
            raise OSError("injected: connection reset")
        return real_append(self, s, table)

    monkeypatch.setattr(AnalysisWriter, "_append", flaky_once)
    docs = list(synthetic_analysis_documents(2, 4, seed=7))
    w = make_analysis_writer(tiled_client, max_delay_s=0.2, max_attempts=3)
    for name, doc in docs:
        w(name, doc)
    w.close()  # nothing was lost: no CatalogWriteError
    assert calls["n"] == 1 and w.stats["retries"] == 1 and w.stats["errors"] == 0 and not w.unwritten
    assert len(get_spot_table(tiled_client.analysis[docs[0][1]["uid"]])) == 8


def test_an_append_whose_response_is_lost_is_not_written_twice(tiled_client, monkeypatch):
    import httpx

    from laue_live.catalog import AnalysisWriter

    real_append = AnalysisWriter._append
    calls = {"n": 0}

    def lost_response(self, s, table):  # the server takes the rows, the response never arrives
        real_append(self, s, table)
        if calls["n"] < 2:  # once for the spot rows, once for the summaries (injected fault)
            calls["n"] += 1
            raise httpx.ReadTimeout("injected: the response was lost after the server appended")

    monkeypatch.setattr(AnalysisWriter, "_append", lost_response)
    docs = list(synthetic_analysis_documents(3, 4, seed=8))
    w = make_analysis_writer(tiled_client, max_delay_s=0.2, max_attempts=3)
    for name, doc in docs:
        w(name, doc)
    w.close()  # the rows are in: no error, nothing spooled
    assert calls["n"] == 2 and w.stats["retries"] == 2 and w.stats["errors"] == 0 and not w.unwritten
    run = tiled_client.analysis[docs[0][1]["uid"]]
    spots = get_spot_table(run)
    assert len(spots) == 12 and not spots.duplicated(["frame", "spot"]).any()
    assert sorted(run["frames"].read()["frame"]) == [0, 1, 2]
    assert w.frames_written(docs[0][1]["uid"]) == {0, 1, 2}
