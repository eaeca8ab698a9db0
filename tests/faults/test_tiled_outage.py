"""The Tiled server (or its PostgreSQL) stops mid-scan and comes back: nothing lost, no row twice.

Each test runs on both table stores (``tiled_store``: DuckDB, PostgreSQL).
"""

from __future__ import annotations

import threading
import time

import pytest
from bluesky.plans import grid_scan
from ophyd.sim import motor1, motor2
from tiled.queries import Key

from laue_live.callbacks import make_run_router
from laue_live.catalog import SpooledAnalysisWriter, open_catalog, replay_spool
from laue_live.catalog import _server as server_mod

from ._helpers import InlineDetector, n_spots

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

NX, NY = 4, 3
DOWN_AT, UP_AT = 4, 8  # frames 4..7 are analysed while the server is down


@pytest.fixture
def short_client_retries(monkeypatch):
    # Tiled's client retries a refused connection for up to 45 s; a 1 s window makes the outage
    # "longer than the client waits" in a bounded test (TILED_RETRY_TIMEOUT does the same in production).
    import tiled.client.utils as tu

    monkeypatch.setattr(tu, "TILED_RETRY_ATTEMPTS", 2)
    monkeypatch.setattr(tu, "TILED_RETRY_TIMEOUT", 1.0)


def _check(run, n_frames):
    frames = run["frames"].base["internal"].read()
    spots = run["spots"].base["internal"].read()
    assert sorted(frames["frame"]) == list(range(n_frames)), "every frame once in the frames stream"
    assert not frames["failed"].any()
    expected = {i: n_spots(i) for i in range(n_frames)}
    assert spots.groupby("frame").size().to_dict() == expected, "every spot row once"
    assert not spots.duplicated(["frame", "spot"]).any()
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run.metadata["start"]["raw_uid"]
    return frames, spots


def _scan_through_outage(catalog, spool, analyzer, RE, stop, start):
    """A 12-frame live scan whose writes meet an outage: ``stop()`` before frame 4, ``start()`` before 8.

    Returns the journal's replay result after checking that every frame is in Tiled once.
    """
    spooled = SpooledAnalysisWriter(catalog, spool, max_delay_s=0.05, retry_interval_s=0.2,
                                    max_retry_interval_s=2.0)
    events = {"down": threading.Event(), "up": threading.Event()}

    def on_trigger(i):  # runs on the RunEngine thread, before frame i is taken
        if i == DOWN_AT:
            spooled.writer.flush(30)  # frames 0..3 are in Tiled for sure
            stop()
            events["down"].set()
        elif i == UP_AT:
            # the analysis of frames 4..7 must have met the outage (a loaded machine may lag)
            deadline = time.monotonic() + 60
            while spooled.writer.stats["errors"] == 0 and time.monotonic() < deadline:
                time.sleep(0.05)  # bounded wait on another thread's progress
            start()
            events["up"].set()

    det = InlineDetector(name="laue", on_trigger=on_trigger)
    router = make_run_router([spooled], analyzer=analyzer, batch_size=2)
    RE.subscribe(router)
    (raw_uid,) = RE(grid_scan([det], motor1, 0, 1, NX, motor2, 0, 1, NY))
    assert events["down"].is_set() and events["up"].is_set()
    assert router.wait(120)
    assert spooled.wait_synced(120), f"journal not replayed: {spooled.pending}"
    spooled.close(60)
    # the writer really failed during the outage, and the journal made up for it
    assert spooled.writer.stats["errors"] > 0
    res = spooled.results[0]
    assert res.frames_replayed > 0 and res.spot_rows_replayed > 0
    assert not list(spool.glob("*.journal"))
    run = catalog.analysis.search(Key("raw_uid") == raw_uid).values().first()
    _check(run, NX * NY)
    return res


def test_server_restart_mid_scan_journal_replayed(
    tmp_path, new_tiled_server, tiled_store, analyzer, RE, monkeypatch, short_client_retries, fault_report
):
    server = new_tiled_server().start()
    port = server.port

    def start():
        monkeypatch.setattr(server_mod, "free_port", lambda host="127.0.0.1": port)
        server.start()  # same data directory, same port

    try:
        res = _scan_through_outage(open_catalog(server.settings), tmp_path / "spool", analyzer, RE,
                                   server.stop, start)
        assert server.port == port
    finally:
        server.stop()
    fault_report.add(
        "Tiled",
        f"server stopped at frame 4 of 12, restarted (same port, same data) at frame 8 ({tiled_store})",
        f"scan completed; {res.frames_replayed} frames / {res.spot_rows_replayed} spot rows "
        "written from the local journal on reconnection; every frame once, no row twice",
        0,
    )


def test_catalog_serve_restarted_on_its_port_under_a_live_scan(
    tmp_path, tiled_data_dir, analyzer, RE, short_client_retries, fault_report
):
    """`laue-live catalog serve --port P` stopped by SIGTERM mid-scan and started again: the writer,
    which knows only ``http://127.0.0.1:P``, reconnects by itself and loses nothing.
    """
    import subprocess
    import sys

    from laue_live.catalog import CatalogSettings, free_port

    port = free_port()
    cmd = [sys.executable, "-c", "from laue_live.cli import main; main()", "catalog", "serve",
           "--data-dir", str(tiled_data_dir), "--port", str(port)]
    procs = []

    def start():
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        for line in iter(proc.stdout.readline, ""):  # bounded: the test's timeout; the line comes first
            if "Tiled server running at" in line:
                assert f"127.0.0.1:{port}" in line
                return
        raise AssertionError(f"catalog serve exited with {proc.wait()}")

    def stop():
        procs[-1].terminate()  # SIGTERM, as systemd sends
        assert procs[-1].wait(60) == 0

    start()
    try:
        settings = CatalogSettings(uri=f"http://127.0.0.1:{port}",
                                   api_key=(tiled_data_dir / "api_key").read_text())
        res = _scan_through_outage(open_catalog(settings), tmp_path / "spool", analyzer, RE, stop, start)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(60)
            proc.stdout.close()
    assert len(procs) == 2 and all(p.returncode == 0 for p in procs)
    fault_report.add(
        "Tiled",
        "`laue-live catalog serve --port P` stopped by SIGTERM at frame 4 of 12, started again at frame 8",
        f"the writer reconnected to the same address by itself; {res.frames_replayed} frames / "
        f"{res.spot_rows_replayed} spot rows from the local journal; every frame once, no row twice",
        0,
    )


def test_database_restart_mid_scan_journal_replayed(
    tmp_path, tiled_data_dir_pg, postgres_cluster, analyzer, RE, short_client_retries, fault_report
):
    """PostgreSQL (catalog and tables) stops under a running Tiled and comes back on its port."""
    from laue_live.catalog import LocalTiledServer

    port = postgres_cluster.port

    def start():
        postgres_cluster.requested_port = port
        try:
            postgres_cluster.start()
        finally:
            postgres_cluster.requested_port = None

    with LocalTiledServer(tiled_data_dir_pg, postgres=postgres_cluster) as server:
        try:
            res = _scan_through_outage(open_catalog(server.settings), tmp_path / "spool", analyzer, RE,
                                       postgres_cluster.stop, start)
        finally:
            if postgres_cluster.process is None:
                start()  # the session's other tests need it
        assert postgres_cluster.port == port and server.process.poll() is None, "Tiled stayed up"
    fault_report.add(
        "Tiled",
        "PostgreSQL (catalog + tables) stopped at frame 4 of 12 under a running Tiled, restarted at "
        "frame 8",
        f"scan completed; Tiled answered 500 meanwhile and reconnected by itself; {res.frames_replayed} "
        f"frames / {res.spot_rows_replayed} spot rows written from the local journal; every frame once, "
        "no row twice",
        0,
    )


def test_journal_left_by_a_dead_process_is_replayed_once(tmp_path, any_tiled_client, tiled_store,
                                                         fault_report):
    """A journal whose run never reached Tiled (the process died) is written whole, and only once."""
    from laue_live.catalog import DocumentJournal, synthetic_analysis_documents

    journal = DocumentJournal(tmp_path / "spool")
    docs = list(synthetic_analysis_documents(5, 3))
    for name, doc in docs:
        journal(name, doc)
    journal.close()
    (res,) = replay_spool(tmp_path / "spool", any_tiled_client.analysis)
    assert res.created and res.stopped and res.frames_in_journal == 5
    assert not list((tmp_path / "spool").glob("*.journal"))
    # replaying the same journal again writes nothing
    for name, doc in docs:
        journal(name, doc)
    journal.close()
    (again,) = replay_spool(tmp_path / "spool", any_tiled_client.analysis)
    assert not again.created and again.frames_replayed == 0 and again.spot_rows_replayed == 0
    run = any_tiled_client.analysis[res.run_uid]
    frames = run["frames"].base["internal"].read()
    assert sorted(frames["frame"]) == list(range(5))
    fault_report.add(
        "Tiled",
        f"process died before its run reached Tiled; journal replayed twice ({tiled_store})",
        "run written whole from the journal once; second replay wrote 0 rows",
        0,
    )


def test_torn_journal_record_is_ignored(tmp_path):
    from laue_live.catalog import DocumentJournal, read_journal, synthetic_analysis_documents

    journal = DocumentJournal(tmp_path)
    docs = list(synthetic_analysis_documents(2, 3))
    for name, doc in docs[:-1]:
        journal(name, doc)
    journal.close()
    (path,) = tmp_path.glob("*.journal")
    with open(path, "ab") as f:
        f.write(b"\x00\x00\x10\x00partial")  # a crash in the middle of a record
    assert [n for n, _ in read_journal(path)] == [n for n, _ in docs[:-1]]
