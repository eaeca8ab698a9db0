"""Several processes appending to the embedded server at once lose and duplicate no row.

Tiled 0.2.20 shares one DuckDB connection between its server threads, so overlapping appends
fail or are retried into duplicates; open_catalog() makes the writers of one machine take turns
(laue_live/catalog/_serialize.py). On PostgreSQL they append at once. Runs on both stores.
"""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pyarrow as pa


def _append_many(settings, path: str, n_appends: int, rows: int) -> None:
    from laue_live.catalog import open_catalog

    cat = open_catalog(settings)
    table = cat.root[path]
    for i in range(n_appends):
        batch = pa.table({"i": np.full(rows, i, np.int64), "x": np.arange(rows, dtype="f8")})
        table.append_partition(0, batch)


def test_two_processes_and_a_thread_append_at_once_exact_row_counts(any_tiled_client):
    tiled_client = any_tiled_client
    import threading
    import uuid

    schema = pa.schema([("i", pa.int64()), ("x", pa.float64())])
    parent = f"concurrency-{uuid.uuid4().hex[:8]}"
    container = tiled_client.root.create_container(key=parent)
    keys = [f"{parent}/{k}" for k in ("a", "b", "c")]
    for k in keys:
        container.create_appendable_table(schema, key=k.rsplit("/", 1)[1])
    settings = tiled_client.settings
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(settings, k, 15, 400)) for k in keys[:2]]
    for p in procs:
        p.start()
    t = threading.Thread(target=_append_many, args=(settings, keys[2], 15, 400))
    t.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    t.join(180)
    assert not t.is_alive()
    for k in keys:
        df = tiled_client.root[k].read()
        assert len(df) == 15 * 400, k
        assert (df.groupby("i").size() == 400).all(), k
