"""Continue writing an analysis run that is already in Tiled (recovery of an interrupted analysis).

A run written by :func:`laue_live.catalog.make_analysis_writer` keeps each stream's rows in an
appendable SQL table with TiledWriter's columns (``seq_num``, ``time``, data keys, ``ts_<key>``;
:mod:`laue_live.catalog._layout`). :class:`ResumeSink` appends the missing frames' rows to those
same tables and finally writes the stop document into the run's metadata, so the recovered run
looks exactly like one written in one go, with no row twice. Used by :func:`reprocess_run` with
``resume`` and by the replay of journals (:func:`replay_journal`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyarrow as pa

from laue_live._run import SUMMARY_STREAMS
from laue_live.catalog._layout import (
    column_dtype,
    create_stream_table,
    ensure_stream_nodes,
    stream_table_node,
)

__all__ = ["ResumeSink"]

logger = logging.getLogger(__name__)


class ResumeSink:
    """A document sink that appends an analysis run's new rows to the run's existing Tiled tables.

    The ``start`` document is not written again (the run exists); descriptors are matched to
    the existing streams by name (a stream the run lacks is created); ``event``/``event_page``
    rows are buffered and appended in batches of ``max_rows``; ``stop`` flushes and writes the stop
    document into the metadata.

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
        self._known: set[str] = set()

    def __call__(self, name: str, doc: dict) -> None:
        if name == "descriptor":
            self._names[doc["uid"]] = doc["name"]
            self._keys[doc["name"]] = doc["data_keys"]
            if doc["name"] not in self._known:
                # a stream the run lacks (e.g. indexing added to a finished run): made as TiledWriter would
                for made in ensure_stream_nodes(self.run, [doc]):
                    logger.info("run %s: stream %r created", self.run.metadata["start"]["uid"][:8], made)
                self._known.add(doc["name"])
        elif name == "event":
            self._add(doc["descriptor"], {"seq_num": [doc["seq_num"]], "time": [doc["time"]],
                                          **{k: [v] for k, v in doc["data"].items()},
                                          **{f"ts_{k}": [v] for k, v in doc["timestamps"].items()}})
        elif name == "event_page":
            self._add(doc["descriptor"], {"seq_num": doc["seq_num"], "time": doc["time"], **doc["data"],
                                          **{f"ts_{k}": v for k, v in doc["timestamps"].items()}})
        elif name == "stop":
            self.flush()
            self.run.update_metadata(metadata={"stop": doc}, drop_revision=True)

    def _add(self, desc_uid: str, cols: dict[str, Any]) -> None:
        stream = self._names[desc_uid]
        self._buf.setdefault(stream, []).append(cols)
        self._n[stream] = self._n.get(stream, 0) + len(cols["seq_num"])
        if self._n[stream] >= self.max_rows:
            if stream in SUMMARY_STREAMS:
                self.flush()
            else:
                self._flush(stream)

    @property
    def pending(self) -> int:
        """Rows buffered, not yet appended."""
        return sum(self._n.values())

    def flush(self) -> None:
        """Append every buffered row now (summaries last: a summary row means its frame's rows are there)."""
        for stream in sorted(self._buf, key=lambda name: name in SUMMARY_STREAMS):
            self._flush(stream)

    def _flush(self, stream: str) -> None:
        chunks = self._buf.pop(stream, [])
        self._n[stream] = 0
        if not chunks:
            return
        names = list(chunks[0])
        keys = self._keys.get(stream, {})
        arrays = {}
        for k in names:
            dk = keys.get(k, {})
            if dk.get("dtype") == "string":
                arrays[k] = [v for c in chunks for v in c[k]]
            else:  # columns arrive as lists (events) or numpy arrays (spot pages)
                dt = column_dtype(dk)
                arrays[k] = np.concatenate([np.asarray(c[k], dtype=dt) for c in chunks])
        table = stream_table_node(self.run, stream)
        new = pa.table(arrays)
        if table is None:
            table = create_stream_table(self.run, stream, new.schema, dict(keys))
        else:
            schema = table.structure().arrow_schema_decoded
            new = new.select([n for n in schema.names if n in new.column_names]).cast(
                pa.schema([schema.field(n) for n in schema.names if n in new.column_names]))
        table.append_partition(0, new)
        self.rows_written += new.num_rows
        logger.debug("appended %d %s rows to %s", new.num_rows, stream, self.run.uri)
