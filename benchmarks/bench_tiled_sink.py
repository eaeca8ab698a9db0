"""Spot rows per second into the embedded Tiled server: TiledWriter per frame vs laue-live's writer.

Side by side, in one run, against one local Tiled server process (127.0.0.1, SQL tabular storage):

* ``TiledWriter per frame``: ``bluesky_tiled_plugins.TiledWriter(normalizer=None,
  batch_size=spots_per_frame)``, the ecosystem's writer tuned for live visibility (one append per
  frame), called on the producer's thread;
* ``TiledWriter batched``: the same with ``batch_size=max_rows`` (rows invisible until the batch is
  full: no time bound);
* ``laue-live writer``: :func:`laue_live.catalog.make_analysis_writer` (TiledWriter for the run,
  rows coalesced across frames, appended by size or age on a background thread);
* ``append_partition ceiling``: pre-built Arrow tables of ``max_rows`` rows appended in a loop
  (no documents, no conversion): the most the server takes at that request size.

Rows/s is counted from the first document handed over to the end of ``close()`` (everything
confirmed in Tiled). ``caller ms/frame`` is the time the producer spends per frame handing documents
over. Pages carry Python lists (as ``compose_event_page`` validates them) unless said otherwise.

Then, **concurrent writers per store** (``--stores duckdb,sqlite,postgresql --writers 1,2,4``): for
each SQL store one embedded server (PostgreSQL: catalog and tables in a PostgreSQL cluster started
for the run, with its durable defaults); for each writer count, that many *processes* each write
their own analysis run through the laue-live writer at once (``--conc-frames`` frames each; weak
scaling). Reported: total spot rows/s (all rows / wall time from the common start to the last
``close()``), one writer's share, p50/p99 of the append requests as the writers saw them (lock
waits included: DuckDB writers take turns through laue-live's lock, see catalog/_serialize.py),
rows checked afterwards (every frame once, no duplicated row), and the raw ``append_partition``
ceiling of one process on that store. The load average is printed beside the table.

Run: ``.venv/bin/python benchmarks/bench_tiled_sink.py [--frames 300 --spots 1000] [--part all]``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing as mp
import os
import shutil
import tempfile
import time

import numpy as np


def _docs(n_frames, spots, seed=0, as_lists=True):
    from laue_live.catalog import synthetic_analysis_documents

    return list(synthetic_analysis_documents(n_frames, spots, seed=seed, as_lists=as_lists))


def _feed(writer, docs, spots):
    t0 = time.perf_counter()
    caller = 0.0
    for name, doc in docs:
        t = time.perf_counter()
        writer(name, doc)
        caller += time.perf_counter() - t
    return t0, caller


def bench_tiledwriter(container, n_frames, spots, batch_size):
    from bluesky_tiled_plugins import TiledWriter

    docs = _docs(n_frames, spots, seed=1)
    tw = TiledWriter(container, normalizer=None, batch_size=batch_size)
    t0, caller = _feed(tw, docs, spots)
    dt = time.perf_counter() - t0
    return n_frames * spots / dt, 1000 * caller / n_frames, _count(container, docs)


def bench_laue_live(container, n_frames, spots, max_rows, max_delay_s, timestamps=("frames",),
                    as_lists=True):
    from laue_live.catalog import make_analysis_writer

    docs = _docs(n_frames, spots, seed=2, as_lists=as_lists)
    w = make_analysis_writer(container, max_rows=max_rows, max_delay_s=max_delay_s, timestamps=timestamps)
    t0, caller = _feed(w, docs, spots)
    w.close()
    dt = time.perf_counter() - t0
    s = w.stats
    note = f"{s['appends']} appends, {1000 * s['append_seconds'] / max(s['appends'], 1):.0f} ms each"
    return n_frames * spots / dt, 1000 * caller / n_frames, f"{_count(container, docs)} rows, {note}"


def bench_ceiling(container, n_rows, rows_per_append, timestamps=False):
    import pyarrow as pa

    from laue_live.catalog import random_spot_table

    cols = random_spot_table(0, rows_per_append, np.random.default_rng(3))
    now = time.time()
    table = {"seq_num": np.arange(rows_per_append, dtype=np.int64), "time": np.full(rows_per_append, now),
             **cols}
    if timestamps:
        table.update({f"ts_{k}": np.full(rows_per_append, now) for k in cols})
    table = pa.table(table)
    node = container.create_container()
    t = node.create_appendable_table(table.schema, key="internal")
    n = max(1, n_rows // rows_per_append)
    t0 = time.perf_counter()
    for _ in range(n):
        t.append_partition(0, table)
    return n * rows_per_append / (time.perf_counter() - t0)


def _count(container, docs) -> int:
    uid = docs[0][1]["uid"]
    return len(container[uid]["spots"].base["internal"].read(columns=["frame"]))


def _writer_process(settings, n_frames, spots, max_rows, seed, barrier, out) -> None:
    """One concurrent writer: its own analysis run through the laue-live writer; timings to ``out``."""
    from tiled.client.dataframe import DataFrameClient

    from laue_live.catalog import make_analysis_writer, open_catalog

    cat = open_catalog(settings)  # installs the DuckDB lock (with lock file) where the store needs it
    latencies: list[float] = []
    inner = DataFrameClient.append_partition

    def timed(self, *args, **kwargs):  # the request as the writer sees it, lock wait included
        t = time.perf_counter()
        try:
            return inner(self, *args, **kwargs)
        finally:
            latencies.append(time.perf_counter() - t)

    DataFrameClient.append_partition = timed
    docs = _docs(n_frames, spots, seed=seed)
    barrier.wait(120)
    t0 = time.time()
    w = make_analysis_writer(cat.analysis, max_rows=max_rows, max_delay_s=0.5)
    for name, doc in docs:
        w(name, doc)
    try:
        w.close(timeout=600)
    except Exception as exc:  # noqa: BLE001 - reported in the table, not a crash of the benchmark
        logging.warning("writer %d: %s", seed, exc)
    out.put({"uid": docs[0][1]["uid"], "t0": t0, "t1": time.time(), "latencies": latencies,
             "errors": w.stats["errors"], "rows": w.stats["rows_written"]})


def _check_run(container, uid, n_frames, spots) -> str:
    spots_df = container[uid]["spots"].base["internal"].read(columns=["frame", "spot"])
    frames = container[uid]["frames"].base["internal"].read(columns=["frame"])
    ok = (len(spots_df) == n_frames * spots and not spots_df.duplicated().any()
          and sorted(frames["frame"]) == list(range(n_frames)))
    return "ok" if ok else f"BAD ({len(spots_df)} rows, {len(frames)} frames)"


def bench_concurrent(stores, writer_counts, n_frames, spots, max_rows) -> list[tuple]:
    """Rows of the concurrent-writer table: (store, writers, rows/s, per writer, p50, p99, check, note)."""
    from laue_live.catalog import LocalTiledServer, open_catalog, postgres_unavailable_reason

    ctx = mp.get_context("spawn")
    rows = []
    for store in stores:
        if store == "postgresql" and postgres_unavailable_reason():
            rows.append((store, 0, float("nan"), float("nan"), float("nan"), float("nan"), "skipped",
                         postgres_unavailable_reason()))
            continue
        d = tempfile.mkdtemp(prefix=f"bench-{store}-")
        os.chmod(d, 0o755)  # PostgreSQL runs as another account when we are root: it must reach d
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(shutil.rmtree, d, True)  # after the server stopped (last in, first out)
            server = cleanup.enter_context(LocalTiledServer(os.path.join(d, "data"), tabular=store))
            cat = open_catalog(server.settings)
            ceiling = bench_ceiling(cat.analysis, 4 * max_rows, max_rows)
            for n in writer_counts:
                barrier, out = ctx.Barrier(n), ctx.Queue()
                procs = [ctx.Process(target=_writer_process, args=(server.settings, n_frames, spots, max_rows,
                                                                    100 + i, barrier, out)) for i in range(n)]
                for p in procs:
                    p.start()
                results = [out.get(timeout=900) for _ in procs]
                for p in procs:
                    p.join(60)
                wall = max(r["t1"] for r in results) - min(r["t0"] for r in results)
                lat = np.array([x for r in results for x in r["latencies"]]) * 1000
                checks = {_check_run(cat.analysis, r["uid"], n_frames, spots) for r in results}
                errors = sum(r["errors"] for r in results)
                total = n * n_frames * spots / wall
                rows.append((store, n, total, total / n, float(np.percentile(lat, 50)),
                             float(np.percentile(lat, 99)), ",".join(sorted(checks)),
                             f"{len(lat)} appends, {errors} errors; 1-process ceiling {ceiling:,.0f}/s"))
    return rows


def main() -> None:
    from laue_live.catalog import LocalTiledServer, open_catalog

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=300, help="frames of the batched runs")
    p.add_argument("--spots", type=int, default=1000, help="spots per frame")
    p.add_argument("--per-frame-frames", type=int, default=40, help="frames of the per-frame TiledWriter run")
    p.add_argument("--max-rows", type=int, default=200_000, help="rows per append of the batched writers")
    p.add_argument("--max-delay", type=float, default=0.5, help="max age of a pending row, s")
    p.add_argument("--tabular", choices=["duckdb", "sqlite", "postgresql"], default="duckdb")
    p.add_argument("--repeat", type=int, default=2, help="repetitions of the laue-live writer and ceiling")
    p.add_argument("--part", choices=["all", "writers", "concurrent"], default="all",
                   help="writers: the single-store comparison; concurrent: writers per store")
    p.add_argument("--stores", default="duckdb,sqlite,postgresql", help="stores of the concurrent part")
    p.add_argument("--writers", default="1,2,4", help="writer process counts of the concurrent part")
    p.add_argument("--conc-frames", type=int, default=300, help="frames per concurrent writer")
    p.add_argument("--conc-max-rows", type=int, default=50_000, help="rows per append, concurrent part")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    load_before = os.getloadavg()

    rows: list[tuple[str, float, float, str]] = []
    if a.part in ("all", "writers"):
        with tempfile.TemporaryDirectory(prefix="bench-tiled-") as d:
            os.chmod(d, 0o755)
            with LocalTiledServer(os.path.join(d, "data"), tabular=a.tabular) as server:
                rows = _single_store(server, open_catalog(server.settings), a)
    conc = []
    if a.part in ("all", "concurrent"):
        conc = bench_concurrent(a.stores.split(","), [int(n) for n in a.writers.split(",")],
                                a.conc_frames, a.spots, a.conc_max_rows)
    load_after = os.getloadavg()

    if rows:
        print(f"\nTiled sink, {a.tabular} tabular storage, {a.spots} spots/frame, 24 schema columns "
              f"(+ seq_num, time; ts_* where said)")
        print(f"{'path':<52} {'rows/s':>10} {'caller ms/frame':>16}  note")
        for name, r, c, note in rows:
            print(f"{name:<52} {r:>10,.0f} {c:>16.2f}  {note}")
    if conc:
        print(f"\nConcurrent writers (processes), {a.conc_frames} frames x {a.spots} spots each, "
              f"{a.conc_max_rows} rows per append; load average {load_before[0]:.1f} before, "
              f"{load_after[0]:.1f} after, {os.cpu_count()} CPUs")
        print("| store | writers | spot rows/s (all) | per writer | append p50 ms | append p99 ms "
              "| rows | note |")
        print("|---|---|---|---|---|---|---|---|")
        for store, n, total, per, p50, p99, check, note in conc:
            print(f"| {store} | {n} | {total:,.0f} | {per:,.0f} | {p50:.0f} | {p99:.0f} | {check} | {note} |")


def _single_store(server, cat, a) -> list[tuple[str, float, float, str]]:
    rows: list[tuple[str, float, float, str]] = []
    r, c, n = bench_tiledwriter(cat.analysis, a.per_frame_frames, a.spots, batch_size=a.spots)
    rows.append(("TiledWriter per frame (batch_size=spots)", r, c, f"{n} rows"))
    r, c, n = bench_tiledwriter(cat.analysis, a.frames, a.spots, batch_size=a.max_rows)
    rows.append((f"TiledWriter batched (batch_size={a.max_rows})", r, c, f"{n} rows, no time bound"))
    for i in range(a.repeat):
        r, c, n = bench_laue_live(cat.analysis, a.frames, a.spots, a.max_rows, a.max_delay)
        rows.append((f"laue-live writer (max_rows={a.max_rows}) #{i + 1}", r, c, n))
        r = bench_ceiling(cat.analysis, a.frames * a.spots, a.max_rows)
        rows.append((f"append_partition ceiling ({a.max_rows}/append) #{i + 1}", r, float("nan"),
                     "same columns"))
    r, c, n = bench_laue_live(cat.analysis, a.frames, a.spots, a.max_rows, a.max_delay, as_lists=False)
    rows.append(("laue-live writer, pages of numpy arrays", r, c, n))
    r, c, n = bench_laue_live(cat.analysis, a.frames, a.spots, a.max_rows // 2, a.max_delay)
    rows.append((f"laue-live writer (max_rows={a.max_rows // 2})", r, c, n))
    r, c, n = bench_laue_live(cat.analysis, a.frames, a.spots, a.max_rows, a.max_delay, timestamps=True)
    rows.append(("laue-live writer, with ts_ columns on spots", r, c, n))
    r = bench_ceiling(cat.analysis, a.frames * a.spots, a.max_rows, timestamps=True)
    rows.append((f"append_partition ceiling ({a.max_rows}/append), ts_", r, float("nan"), "with ts_"))
    return rows


if __name__ == "__main__":
    main()
