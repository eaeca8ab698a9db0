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
Run: ``.venv/bin/python benchmarks/bench_tiled_sink.py [--frames 300 --spots 1000]``.
"""

from __future__ import annotations

import argparse
import logging
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


def main() -> None:
    from laue_live.catalog import LocalTiledServer, open_catalog

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=300, help="frames of the batched runs")
    p.add_argument("--spots", type=int, default=1000, help="spots per frame")
    p.add_argument("--per-frame-frames", type=int, default=40, help="frames of the per-frame TiledWriter run")
    p.add_argument("--max-rows", type=int, default=200_000, help="rows per append of the batched writers")
    p.add_argument("--max-delay", type=float, default=0.5, help="max age of a pending row, s")
    p.add_argument("--tabular", choices=["duckdb", "sqlite"], default="duckdb")
    p.add_argument("--repeat", type=int, default=2, help="repetitions of the laue-live writer and ceiling")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="bench-tiled-") as d, \
            LocalTiledServer(d, tabular=a.tabular) as server:
        cat = open_catalog(server.settings)
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

    print(f"\nTiled sink, {a.tabular} tabular storage, {a.spots} spots/frame, 24 schema columns "
          f"(+ seq_num, time; ts_* where said)")
    print(f"{'path':<52} {'rows/s':>10} {'caller ms/frame':>16}  note")
    for name, r, c, note in rows:
        print(f"{name:<52} {r:>10,.0f} {c:>16.2f}  {note}")


if __name__ == "__main__":
    main()
