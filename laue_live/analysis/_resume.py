"""Continue writing an analysis run that is already in Tiled (recovery of an interrupted live analysis).

A run written by :func:`laue_live.catalog.make_analysis_writer` keeps each stream's rows in
``<run>/<stream>/internal``, an appendable SQL table with TiledWriter's columns (``seq_num``,
``time``, data keys, ``ts_<key>``). :class:`ResumeSink` appends the missing frames' rows to those
same tables and finally writes the stop document into the run's metadata, so the recovered run
looks exactly like one written in one go, with no row twice.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from laue_live.catalog._query import stream_table_node

__all__ = ["ResumeSink", "read_stream_table", "written_frames"]

logger = logging.getLogger(__name__)


def read_stream_table(run, stream: str, columns: list[str] | None = None):
    """Read the rows of ``stream`` of a run in Tiled as a DataFrame (empty if none yet)."""
    import pandas as pd

    table = stream_table_node(run, stream)
    if table is None:
        return pd.DataFrame()
    return table.read(columns=columns) if columns else table.read()


def written_frames(run) -> tuple[set[int], set[int]]:
    """Frame numbers that have a ``frames`` row, and those that have ``spots`` rows."""
    frames = read_stream_table(run, "frames", ["frame"])
    spots = read_stream_table(run, "spots", ["frame"])
    f = set(frames["frame"].astype(int).tolist()) if len(frames) else set()
    s = set(spots["frame"].astype(int).tolist()) if len(spots) else set()
    return f, s


class ResumeSink:
    """A document sink that appends an analysis run's new rows to the run's existing Tiled tables.

    The ``start`` document is not written again (the run exists); descriptors are matched to
    the existing streams by name; ``event``/``event_page`` rows are buffered and appended in
    batches of ``max_rows``; ``stop`` flushes and writes the stop document into the metadata.

    Parameters
    ----------
    run
        Tiled client of the existing analysis run (``BlueskyRun`` container).
    max_rows
        Rows buffered per stream before an append.
    """

    def __init__(self, run, *, max_rows: int = 20_000) -> None:
        self.run = run
        self.max_rows = max_rows
        self._names: dict[str, str] = {}  # descriptor uid -> stream name
        self._keys: dict[str, dict] = {}  # stream name -> data keys
        self._buf: dict[str, list[dict[str, Any]]] = {}
        self._n: dict[str, int] = {}
        self.rows_written = 0

    def __call__(self, name: str, doc: dict) -> None:
        if name == "descriptor":
            self._names[doc["uid"]] = doc["name"]
            self._keys[doc["name"]] = doc["data_keys"]
        elif name == "event":
            self._add(doc["descriptor"], {"seq_num": [doc["seq_num"]], "time": [doc["time"]],
                                          **{k: [v] for k, v in doc["data"].items()},
                                          **{f"ts_{k}": [v] for k, v in doc["timestamps"].items()}})
        elif name == "event_page":
            self._add(doc["descriptor"], {"seq_num": doc["seq_num"], "time": doc["time"], **doc["data"],
                                          **{f"ts_{k}": v for k, v in doc["timestamps"].items()}})
        elif name == "stop":
            self._flush_all()
            self.run.update_metadata(metadata={"stop": doc}, drop_revision=True)

    def _add(self, desc_uid: str, cols: dict[str, Any]) -> None:
        stream = self._names[desc_uid]
        self._buf.setdefault(stream, []).append(cols)
        self._n[stream] = self._n.get(stream, 0) + len(cols["seq_num"])
        if self._n[stream] >= self.max_rows:
            if stream == "frames":
                self._flush_all()
            else:
                self._flush(stream)

    def _flush_all(self) -> None:
        # Summaries (``frames``) last: a summary row in Tiled means the frame's spot rows are there.
        for stream in sorted(self._buf, key=lambda name: name == "frames"):
            self._flush(stream)

    def _flush(self, stream: str) -> None:
        import pyarrow as pa

        chunks = self._buf.pop(stream, [])
        self._n[stream] = 0
        if not chunks:
            return
        names = list(chunks[0])
        keys = self._keys.get(stream, {})
        arrays = {}
        for k in names:
            dk = keys.get(k, {})
            string = dk.get("dtype") == "string"
            dt = np.dtype(dk["dtype_numpy"]) if dk.get("dtype_numpy") and not string else None
            if string:
                arrays[k] = [v for c in chunks for v in c[k]]
            else:  # columns arrive as lists (events) or numpy arrays (spot pages)
                arrays[k] = np.concatenate([np.asarray(c[k], dtype=dt) for c in chunks])
        table = stream_table_node(self.run, stream)
        new = pa.table(arrays)
        if table is None:
            node = self.run[stream]
            node = getattr(node, "base", node)
            table = node.create_appendable_table(new.schema, key="internal",
                                                 metadata={k: v for k, v in keys.items()})
        else:
            schema = table.structure().arrow_schema_decoded
            new = new.select([n for n in schema.names if n in new.column_names]).cast(
                pa.schema([schema.field(n) for n in schema.names if n in new.column_names]))
        table.append_partition(0, new)
        self.rows_written += new.num_rows
        logger.debug("appended %d %s rows to %s", new.num_rows, stream, self.run.uri)
