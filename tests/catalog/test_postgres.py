"""Tiled on PostgreSQL: the project's own PostgreSQL server, writers at once without a lock, many writers.

PostgreSQL is started by the session fixture ``postgres_cluster`` (tests/conftest.py); where the
machine has no PostgreSQL these tests skip with the reason (CI installs it and requires them).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from bluesky import RunEngine
from bluesky.plans import count, grid_scan
from bluesky_tiled_plugins import TiledWriter
from ophyd.sim import SynAxis
from tiled.queries import Key

from laue_live import SettingsError
from laue_live.catalog import (
    LocalPostgres,
    make_analysis_writer,
    synthetic_analysis_documents,
    table_store,
)
from laue_live.catalog import _serialize as serialize_mod
from laue_live.stream import DocumentPublisher, SafeProxy
from laue_live.testing import SHAPE, make_inline_detector, n_spots, synthetic_frame

WAIT = 120.0  # seconds: bound on the slowest wait (a service start imports torch and tiled)


def _count_locked_calls(monkeypatch) -> list:
    """Count the table requests that take laue-live's DuckDB lock from now on."""
    calls = []
    real = serialize_mod._call_locked

    def counting(method, args, kwargs):
        calls.append(method.__name__)
        return real(method, args, kwargs)

    monkeypatch.setattr(serialize_mod, "_call_locked", counting)
    return calls


def test_postgres_runs_as_its_own_account_on_loopback_with_a_password(postgres_cluster):
    server = psutil.Process(postgres_cluster.process.pid)
    if os.geteuid() == 0:  # PostgreSQL refuses root: it runs as the postgres account
        assert server.uids().effective != 0
    listen = [c for c in server.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    assert listen and {c.laddr.ip for c in listen} == {"127.0.0.1"}
    assert {c.laddr.port for c in listen} == {postgres_cluster.port}
    assert postgres_cluster.password not in repr(postgres_cluster) and "***" in repr(postgres_cluster)
    assert "laue" not in postgres_cluster.uri("x") and "@" not in postgres_cluster.uri("x")
    import adbc_driver_postgresql.dbapi as pg

    with pytest.raises(Exception, match="password|authentication"):  # noqa: B017 - the driver's own class
        pg.connect(f"postgresql://laue:wrong@127.0.0.1:{postgres_cluster.port}/postgres").close()
    with pytest.raises(SettingsError, match="invalid PostgreSQL database name"):
        postgres_cluster.create_database("x; DROP DATABASE postgres")


def test_postgres_directory_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(SettingsError, match="cannot create the PostgreSQL directory|not a directory"):
        LocalPostgres(tmp_path / "file" / "pg").init()


def test_writers_on_postgresql_append_without_the_lock(any_tiled_server, any_tiled_client, tiled_store,
                                                       monkeypatch):
    """Rows of two writer threads at once: every row once; the lock is taken only on DuckDB."""
    calls = _count_locked_calls(monkeypatch)
    runs = [list(synthetic_analysis_documents(8, 50, seed=s)) for s in (1, 2)]
    writers = [make_analysis_writer(any_tiled_client, max_rows=100, max_delay_s=0.05) for _ in runs]

    def feed(w, docs):
        for name, doc in docs:
            w(name, doc)
        w.close(60)

    threads = [threading.Thread(target=feed, args=(w, docs)) for w, docs in zip(writers, runs, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for docs in runs:
        table = any_tiled_client.analysis[docs[0][1]["uid"]]["spots"].base["internal"]
        spots = table.read(columns=["frame", "spot"])
        assert len(spots) == 8 * 50 and not spots.duplicated().any()
        assert table_store(table) == tiled_store
    if tiled_store == "postgresql":
        # only the first table creations, before the process has seen the server's store
        assert "append_partition" not in calls, "PostgreSQL appends never wait on the DuckDB lock"
        assert set(calls) <= {"create_appendable_table"}
        assert not (any_tiled_server.data_dir / "tables.lock").exists()
    else:
        assert "append_partition" in calls


def _serve_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from laue_live.cli import main; main()", "catalog", "serve", *args]


_LINES: dict[int, queue.Queue] = {}


def _wait_for(proc: subprocess.Popen, needle: str, timeout: float = WAIT) -> str:
    """Stdout up to the first line containing ``needle`` (bounded wait on a reader thread's queue)."""
    if proc.pid not in _LINES:
        q = _LINES[proc.pid] = queue.Queue()
        threading.Thread(target=lambda: [q.put(line) for line in iter(proc.stdout.readline, "")],
                         daemon=True).start()
    deadline, out = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            line = _LINES[proc.pid].get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        out += line
        if needle in line:
            return out
    raise AssertionError(f"{needle!r} not printed within {timeout} s: {out!r}")


@pytest.mark.slow
@pytest.mark.parametrize("store", ["duckdb", "postgresql"])
def test_catalog_serve_stops_everything_on_sigterm(store, tiled_data_dir, postgres_unless_duckdb):
    """What systemd does: SIGTERM to `catalog serve` leaves no Tiled, no PostgreSQL, no server.json."""
    from laue_live.catalog import CatalogSettings, open_catalog

    data_dir = tiled_data_dir if store == "duckdb" else postgres_unless_duckdb / "data"
    args = ["--data-dir", str(data_dir)] + (["--postgres"] if store == "postgresql" else [])
    proc = subprocess.Popen(_serve_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = _wait_for(proc, "Press Ctrl-C")
        assert f"({store} tables" in out and "/ui/" in out
        children = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "tiled" in names and (store == "duckdb" or "postgres -D" in names)
        assert (data_dir / "server.json").exists()
        cat = open_catalog(CatalogSettings(data_dir=data_dir))
        docs = list(synthetic_analysis_documents(3, 4))
        w = make_analysis_writer(cat.analysis, max_delay_s=0.05)
        for name, doc in docs:
            w(name, doc)
        w.close(60)
        assert len(cat.analysis[docs[0][1]["uid"]]["spots"].base["internal"].read()) == 12
        if store == "postgresql":
            assert not (data_dir / "tables.lock").exists(), "no lock file on PostgreSQL"
        else:  # this process takes turns with the other writers of the machine (the first lock file wins)
            assert serialize_mod._lock_fd is not None
        proc.send_signal(15)  # SIGTERM
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()
    assert psutil.wait_procs(children, timeout=30)[1] == [], "a Tiled or PostgreSQL process outlived serve"
    assert not (data_dir / "server.json").exists()


@pytest.fixture
def postgres_unless_duckdb(request):
    """For the PostgreSQL case: a directory PostgreSQL's account can reach (removed afterwards)."""
    import shutil
    import tempfile

    if request.node.callspec.params.get("store") != "postgresql":
        yield None
        return
    request.getfixturevalue("postgres_cluster")  # skips (with the reason) where PostgreSQL cannot run
    root = Path(tempfile.mkdtemp(prefix="laue-live-serve-pg-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_two_services_a_live_scan_and_a_campaign_write_at_once(tmp_path, tiled_server_pg):
    """Two `laue-live serve` processes (two detectors), a live scan through the callback and a Dask
    campaign write into one PostgreSQL-backed Tiled at the same time: every frame once, no row twice.
    """
    import uuid

    from laue_live.callbacks import make_run_router
    from laue_live.catalog import CatalogSettings, open_catalog
    from laue_live.parallel import reprocess_campaign

    prefix = f"multi-{uuid.uuid4().hex[:8]}"
    settings = CatalogSettings(uri=tiled_server_pg.uri, api_key=tiled_server_pg.api_key,
                               raw_path=f"{prefix}/raw", analysis_path=f"{prefix}/analysis")
    cat = open_catalog(settings)
    det = make_inline_detector("laue", synthetic_frame, SHAPE)
    # raw runs for the campaign, written beforehand by TiledWriter like a beamline's own writer
    re_raw = RunEngine({}, call_returns_result=False)
    re_raw.subscribe(TiledWriter(cat.raw, batch_size=1))
    campaign_uids = [re_raw(count([det], 5))[0] for _ in range(2)]

    settings_file = tmp_path / "catalog.yml"
    settings_file.write_text(f"uri: {settings.uri}\nraw_path: {settings.raw_path}\n"
                             f"analysis_path: {settings.analysis_path}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAUE_LIVE_", "TILED_"))}
    env.update(LAUE_LIVE_CATALOG_SETTINGS=str(settings_file), LAUE_LIVE_TILED_API_KEY=settings.api_key)
    services, proxies, expected = [], [], {}
    try:
        for i in range(2):
            proxy = SafeProxy()
            proxy.start_in_thread()
            proxies.append(proxy)
            cmd = [sys.executable, "-c", "from laue_live.cli import main; main()", "serve",
                   "--input", proxy.out_address, "--publish", "127.0.0.1:0", "--method", "fit",
                   "--state-dir", str(tmp_path / f"state{i}"), "--status-interval", "3600"]
            services.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             text=True, env=env))
        for proc in services:
            _wait_for(proc, "spot tables on")

        def detector_scan(proxy, nx, ny):  # a second detector's RunEngine publishing over 0MQ
            publisher = DocumentPublisher(proxy.in_address)
            assert publisher.wait_for_subscribers(1, WAIT)
            re_ = RunEngine({}, call_returns_result=False, context_managers=[])
            re_.subscribe(publisher)
            x, y = SynAxis(name="x"), SynAxis(name="y")
            (uid,) = re_(grid_scan([make_inline_detector("laue", synthetic_frame, SHAPE)],
                                   y, 0, 1, ny, x, 0, 1, nx))
            publisher.close()
            expected[uid] = nx * ny

        def live_scan():  # the live scan through the callback, in this process
            writer = make_analysis_writer(cat.analysis, max_delay_s=0.05)
            router = make_run_router([writer], method="fit", batch_size=2)
            re_ = RunEngine({}, call_returns_result=False, context_managers=[])
            re_.subscribe(router)
            (uid,) = re_(count([make_inline_detector("laue", synthetic_frame, SHAPE)], 10))
            assert router.wait(WAIT)
            writer.close(WAIT)
            expected[uid] = 10

        campaign = {}
        jobs = [threading.Thread(target=detector_scan, args=(proxies[0], 4, 3)),
                threading.Thread(target=detector_scan, args=(proxies[1], 3, 3)),
                threading.Thread(target=live_scan),
                threading.Thread(target=lambda: campaign.update(res=reprocess_campaign(
                    settings, campaign_uids, method="fit", device="cpu", campaign="c-pg", n_workers=2,
                    processes=False, frames_per_call=1, progress=False)))]
        for j in jobs:
            j.start()
        for j in jobs:
            j.join(3 * WAIT)
            assert not j.is_alive()
        assert len(expected) == 3 and not campaign["res"].failed
        expected.update({uid: 5 for uid in campaign_uids})
        deadline = time.monotonic() + WAIT
        for raw_uid, n in expected.items():  # the services finish their runs on their own time
            while time.monotonic() < deadline:
                runs = cat.analysis.search(Key("raw_uid") == raw_uid)
                if len(runs) and runs.values().first().metadata.get("stop"):
                    break
                time.sleep(0.2)  # polling other processes' progress in Tiled (bounded)
            assert len(runs) == 1, f"{len(runs)} analysis runs of {raw_uid}"
            run = runs.values().first()
            frames = run["frames"].base["internal"].read(columns=["frame"])
            spots = run["spots"].base["internal"].read(columns=["frame", "spot"])
            assert sorted(frames["frame"]) == list(range(n)), "every frame once"
            assert not spots.duplicated().any(), "no spot row twice"
            assert spots.groupby("frame").size().to_dict() == {i: n_spots(i) for i in range(n)}
    finally:
        for proc in services:
            if proc.poll() is None:
                proc.send_signal(15)
            proc.communicate(timeout=WAIT)
        for proxy in proxies:
            proxy.stop()
    assert [p.returncode for p in services] == [0, 0]
    assert np.all([len(cat.analysis.search(Key("raw_uid") == u)) == 1 for u in expected])
