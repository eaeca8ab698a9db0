"""Concurrent appends to DuckDB-backed appendable tables fail or duplicate rows (tiled 0.2.20).

Standalone: needs only ``pip install "tiled[all]==0.2.20"`` (numpy, pyarrow, httpx come with it).
It starts ``tiled serve catalog`` on 127.0.0.1 with a temporary catalog, file storage and one SQL
storage (DuckDB by default), creates one appendable table per writer thread, lets the threads append
at once through the ordinary Python client, then reads every table back and counts rows.

    python tiled_duckdb_concurrent_appends.py                 # DuckDB, 4 writers: fails (exit code 1)
    python tiled_duckdb_concurrent_appends.py --writers 1     # DuckDB, one writer: passes
    PGUSER=... PGPASSWORD=... python tiled_duckdb_concurrent_appends.py --postgres postgresql://host:5432/db
                                                              # same load on PostgreSQL: passes
    python tiled_duckdb_concurrent_appends.py --store sqlite  # SQLite: fails too ("database is locked")

Expected: every table holds exactly ``batches x rows`` rows, each (batch, i) once, no request fails.
Seen on tiled 0.2.20 / duckdb 1.5.6 / adbc-driver-duckdb 1.13.0 with 4 writers: failed requests
(HTTP 500 "No active transaction" / "cannot commit", or connection errors when the server dies),
and tables with more rows than were sent: the client retries a 500 whose insert had in fact been
committed, so the batch lands twice.

Cause: ``tiled/storage.py`` gives every DuckDB ``SQLStorage`` a ``sqlalchemy.pool.StaticPool``
(``pool_size=1``, "DuckDB does not support pooling"), i.e. one ADBC connection shared by all of
the server's threads, while the append path opens a transaction on the connection it gets; two
requests served at once interleave their transactions on that one connection. PostgreSQL and
SQLite get a ``QueuePool`` (a connection per request). DuckDB supports many connections to one
database within a process (``adbc_clone``/``cursor``): a pool of cloned connections, or a lock
around the connection's use, would fix it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import numpy as np
import pyarrow as pa


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    """Run the reproducer; return 0 when every row arrived once, 1 otherwise."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", choices=["duckdb", "sqlite"], default="duckdb")
    p.add_argument("--postgres", metavar="URI",
                   help="an empty PostgreSQL database as the table storage, URI without user or password "
                        "(tiled 0.2.20 turns a user without password into user:None): use PGUSER, PGPASSWORD")
    p.add_argument("--writers", type=int, default=4, help="threads appending at once")
    p.add_argument("--batches", type=int, default=40, help="appends per writer")
    p.add_argument("--rows", type=int, default=2000, help="rows per append")
    a = p.parse_args()

    # the client retries a failed request for up to 45 s by default; 10 s keeps a dead server's report short
    os.environ.setdefault("TILED_RETRY_TIMEOUT", "10")
    import tiled
    from tiled.client import from_uri

    tmp = tempfile.mkdtemp(prefix="tiled-repro-")
    key, port = secrets.token_hex(8), _free_port()
    tiled_exe = shutil.which("tiled") or os.path.join(os.path.dirname(sys.executable), "tiled")
    table_storage = a.postgres or f"{a.store}:///{tmp}/tables.{a.store}"
    store = "postgresql" if a.postgres else a.store
    cmd = [tiled_exe, "serve", "catalog", f"{tmp}/catalog.db", "--init", "-w", f"{tmp}/data",
           "-w", table_storage, "--api-key", key, "--host", "127.0.0.1", "--port", str(port)]
    log = open(f"{tmp}/server.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{uri}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                print(f"server did not start; see {tmp}/server.log")
                return 2
            time.sleep(0.2)

        client = from_uri(uri, api_key=key)
        schema = pa.schema([("writer", pa.int64()), ("batch", pa.int64()), ("i", pa.int64()),
                            ("x", pa.float64())])
        keys = [f"t{w}" for w in range(a.writers)]
        for k in keys:
            client.create_appendable_table(schema, key=k)
        errors: list[str] = []

        def writer(w: int) -> None:
            c = from_uri(uri, api_key=key)  # one client per thread, as separate processes would have
            table = c[keys[w]]
            for b in range(a.batches):
                if server.poll() is not None:  # the server died: its client would retry for minutes
                    errors.append(f"writer {w} batch {b}: server exited with code {server.returncode}")
                    return
                batch = pa.table({"writer": np.full(a.rows, w), "batch": np.full(a.rows, b),
                                  "i": np.arange(a.rows), "x": np.random.default_rng(b).random(a.rows)},
                                 schema=schema)
                try:
                    table.append_partition(0, batch)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    first_line = str(exc).splitlines()[0][:110]
                    errors.append(f"writer {w} batch {b}: {type(exc).__name__}: {first_line}")

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(a.writers)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        dt = time.perf_counter() - t0

        print(f"tiled {tiled.__version__}, {store} table storage, {a.writers} writers x {a.batches} "
              f"appends x {a.rows} rows, {dt:.1f} s")
        bad = bool(errors)
        alive = server.poll() is None
        for k in keys if alive else []:
            try:
                df = from_uri(uri, api_key=key)[k].read()
            except Exception as exc:  # noqa: BLE001
                print(f"  {k}: cannot read back ({type(exc).__name__}: {str(exc)[:100]})")
                bad = True
                continue
            dup = int(df.duplicated(["batch", "i"]).sum())
            expected = a.batches * a.rows
            print(f"  {k}: {len(df)} rows (expected {expected}), {dup} duplicated rows")
            bad |= len(df) != expected or dup > 0
        state = "alive" if alive else f"DEAD (exit code {server.returncode}; log {tmp}/server.log)"
        print(f"  failed requests: {len(errors)}; server {state}")
        for e in errors[:5]:
            print(f"    {e}")
        bad |= not alive
        print("FAIL: concurrent appends lost or duplicated rows" if bad else "OK")
        return 1 if bad else 0
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        if server.returncode in (0, -15):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
