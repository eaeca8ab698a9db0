"""Compose the analysis run of one raw run (event_model documents) and hand them to the sinks.

One raw run -> one analysis run (the contract is :mod:`laue_live._run`): a start document linked to
the raw run (``raw_uid``), a ``frames`` stream (one event per frame,
:data:`laue_live._schema.FRAME_COLUMNS`) and a ``spots`` stream (one event page per frame, a row per
spot, :data:`laue_live._schema.SPOT_COLUMNS`), and a stop document that counts the frames analysed,
failed and dropped. When the run is indexed, the ``indexing``, ``grains`` and ``indexed_spots``
streams too (:meth:`AnalysisRunComposer.indexed`, called from the indexing stage's thread: emission
is serialised by a lock, the sinks see one document at a time).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import event_model
import numpy as np

import laue_live
from laue_live._run import (
    ANALYSIS_KIND,
    FRAMES_STREAM,
    GRAINS_STREAM,
    INDEXING_KEY,
    INDEXING_STREAM,
    RAW_KEYS_COPIED,
    RAW_UID,
    SPOT_INDEX_STREAM,
    SPOTS_STREAM,
)
from laue_live._schema import (
    FRAME_COLUMNS,
    GRAIN_COLUMNS,
    INDEXING_COLUMNS,
    SCHEMA_VERSION,
    SPOT_COLUMNS,
    SPOT_INDEX_COLUMNS,
    conform_spot_table,
)

__all__ = ["AnalysisRunComposer", "Sink", "analysis_data_keys"]

logger = logging.getLogger(__name__)

Sink = Callable[[str, dict], Any]

_JSON_DTYPE = {"i": "integer", "u": "integer", "f": "number", "b": "boolean"}


def _data_key(col, source: str) -> dict[str, Any]:
    if col.dtype == "str":
        return {"source": source, "dtype": "string", "shape": [], "units": col.unit or None,
                "dtype_numpy": "<U0"}
    dt = np.dtype(col.dtype)
    dk = {"source": source, "dtype": _JSON_DTYPE[dt.kind], "shape": [], "dtype_numpy": dt.str}
    if col.unit:
        dk["units"] = col.unit
    return {k: v for k, v in dk.items() if v is not None}


_STREAM_COLUMNS = {SPOTS_STREAM: SPOT_COLUMNS, FRAMES_STREAM: FRAME_COLUMNS, GRAINS_STREAM: GRAIN_COLUMNS,
                   SPOT_INDEX_STREAM: SPOT_INDEX_COLUMNS, INDEXING_STREAM: INDEXING_COLUMNS}
_GRAIN_NAMES = [c.name for c in GRAIN_COLUMNS]
_GRAIN_DTYPES = {c.name: (object if c.dtype == "str" else np.dtype(c.dtype)) for c in GRAIN_COLUMNS}
_INDEX_NAMES = [c.name for c in SPOT_INDEX_COLUMNS]


def analysis_data_keys(stream: str, source: str = "laue_live") -> dict[str, dict]:
    """Event-descriptor ``data_keys`` of a stream of an analysis run.

    ``stream`` is ``"spots"``, ``"frames"``, or one of the indexing streams (``"grains"``,
    ``"indexed_spots"``, ``"indexing"``). The one layout of every stream: the composer's descriptors,
    and any other writer of analysis documents (the synthetic runs of :mod:`laue_live.catalog` for
    tests and benchmarks, indexing a run already in the catalog).
    """
    return {c.name: _data_key(c, source) for c in _STREAM_COLUMNS[stream]}


def _clean(md: Mapping[str, Any]) -> dict[str, Any]:
    # The RunStart schema refuses None values: drop them (recursively).
    out = {}
    for k, v in md.items():
        if v is None:
            continue
        out[k] = _clean(v) if isinstance(v, Mapping) else v
    return out


class AnalysisRunComposer:
    """Build the documents of one analysis run and emit each to every sink.

    Parameters
    ----------
    sinks
        Callables ``sink(name, doc)`` (Tiled writer, 0MQ publisher, live views). A sink that
        raises is logged and counted in :attr:`sink_errors`; the others still get the document.
    raw_start
        The raw run's start document (its ``uid`` becomes ``raw_uid``).
    analyzer_md
        ``{"method", "model": {"name", "version"}, ...}`` from :meth:`FrameAnalyzer.describe`.
    image_field
        Data key of the frames in the raw run.
    metadata
        Extra start-document metadata.
    uid
        The analysis run's uid (default: a new one); see :meth:`resume`.
    indexing
        What the indexing stage uses (``ResolvedIndexing.metadata()``: ``enabled``, materials,
        calibration...), recorded as the start document's ``indexing`` entry; when enabled, the
        indexing streams' descriptors are emitted with the others. None: not indexed (or set later
        with :meth:`set_indexing`).
    """

    def __init__(self, sinks: Iterable[Sink], raw_start: Mapping[str, Any], analyzer_md: Mapping[str, Any],
                 *, image_field: str | None = None, metadata: Mapping[str, Any] | None = None,
                 uid: str | None = None, indexing: Mapping[str, Any] | None = None) -> None:
        self.sinks = list(sinks)
        self.sink_errors = 0
        self._lock = threading.RLock()  # the analysis and the indexing threads both emit
        self.raw_start = dict(raw_start)
        raw_uid = self.raw_start["uid"]
        model = dict(analyzer_md.get("model", {}))
        md: dict[str, Any] = {
            "kind": ANALYSIS_KIND,
            RAW_UID: raw_uid,
            "original_run_uid": raw_uid,
            "method": analyzer_md.get("method"),
            "model": model,
            "model_name": model.get("name"),
            "model_version": model.get("version"),
            "analysis_params": dict(analyzer_md.get("params", {})),
            "image_field": image_field,
            "laue_live_version": laue_live.__version__,
            "spot_schema_version": SCHEMA_VERSION,
            "raw_plan_name": self.raw_start.get("plan_name"),
        }
        for key in RAW_KEYS_COPIED:
            if key in self.raw_start and key not in ("plan_name", "scan_id"):
                md[key] = self.raw_start[key]
        if "scan_id" in self.raw_start:
            md["raw_scan_id"] = self.raw_start["scan_id"]
        md["plan_name"] = "laue_live_analysis"
        md.update(metadata or {})
        self._bundle = event_model.compose_run(uid=uid, metadata=_clean(md), validate=False)
        self.start_doc = self._bundle.start_doc
        self.uid = self.start_doc["uid"]
        self._frames = self._bundle.compose_descriptor(
            name=FRAMES_STREAM, data_keys=analysis_data_keys(FRAMES_STREAM),
            hints={"laue_live": {"fields": ["n_spots", "n_good", "mean_sim"]}}, validate=False)
        self._spots = self._bundle.compose_descriptor(
            name=SPOTS_STREAM, data_keys=analysis_data_keys(SPOTS_STREAM),
            hints={"laue_live": {"fields": ["sim", "row", "col"]}}, validate=False)
        self._started = False
        self._stopped = False
        self.indexing_enabled = False
        self._index_descs: dict[str, Any] = {}
        if indexing is not None:
            self.set_indexing(indexing)
        self.frames_analysed = 0
        self.frames_failed = 0
        self.frames_dropped = 0
        self.spots_written = 0
        #: indexing counts: frames by status (``indexed``, ``no_grain``, ``failed``, ``not_indexed``), grains
        self.index_counts = {"indexed": 0, "no_grain": 0, "failed": 0, "not_indexed": 0, "grains": 0}

    def set_indexing(self, indexing: Mapping[str, Any] | None) -> None:
        """Record what the indexing stage uses (the start document's ``indexing`` entry).

        Call before :meth:`start`. With ``indexing["enabled"]`` true, the indexing streams'
        descriptors are emitted with the others.
        """
        with self._lock:
            if self._started and self.indexing_enabled != bool(indexing and indexing.get("enabled")):
                raise RuntimeError("set_indexing after the start document was emitted")
            if indexing is None:
                self.start_doc.pop(INDEXING_KEY, None)
            else:
                self.start_doc[INDEXING_KEY] = _clean(indexing)
            self.indexing_enabled = bool(indexing and indexing.get("enabled"))
            if self.indexing_enabled and not self._index_descs:
                self._index_descs = {name: self._bundle.compose_descriptor(
                    name=name, data_keys=analysis_data_keys(name), validate=False)
                    for name in (GRAINS_STREAM, SPOT_INDEX_STREAM, INDEXING_STREAM)}

    # -- emission -------------------------------------------------------------------------------------
    def emit(self, name: str, doc: dict) -> None:
        """Send one document to every sink; a failing sink never stops the others."""
        with self._lock:
            for sink in self.sinks:
                try:
                    sink(name, doc)
                except Exception:
                    self.sink_errors += 1
                    logger.exception("analysis run %s: sink %r failed on %s document", self.uid[:8], sink,
                                     name)

    def start(self) -> None:
        """Emit the start document and the stream descriptors."""
        with self._lock:
            if self._started:
                return
            self._started = True
            self.emit("start", self.start_doc)
            self._emit_descriptors()

    def _emit_descriptors(self) -> None:
        self.emit("descriptor", self._frames.descriptor_doc)
        self.emit("descriptor", self._spots.descriptor_doc)
        for bundle in self._index_descs.values():
            self.emit("descriptor", bundle.descriptor_doc)

    def resume(self, start_doc: Mapping[str, Any], *, frame_rows: int, spot_rows: int, analysed: int = 0,
               failed: int = 0, dropped: int = 0, index_rows: Mapping[str, int] | None = None,
               index_counts: Mapping[str, int] | None = None) -> None:
        """Continue an analysis run already written in part (its start document is not emitted again).

        Parameters
        ----------
        start_doc
            The existing run's start document (its uid must be this composer's ``uid``).
        frame_rows, spot_rows
            Rows already in its ``frames`` and ``spots`` streams: sequence numbers continue after them.
        analysed, failed, dropped
            Frame counts already recorded, carried into the stop document.
        index_rows
            Rows already in each indexing stream (by stream name), when the run is indexed.
        index_counts
            Indexing counts already recorded (keys of :attr:`index_counts`).
        """
        if start_doc["uid"] != self.uid:
            raise ValueError("resume: the composer must be created with the existing run's uid")
        self.start_doc = dict(start_doc)
        self._started = True
        counters = self._frames.compose_event.event_counters
        counters[FRAMES_STREAM], counters[SPOTS_STREAM] = frame_rows + 1, spot_rows + 1
        for name, rows in (index_rows or {}).items():
            counters[name] = rows + 1
        self.frames_analysed, self.frames_failed, self.frames_dropped = analysed, failed, dropped
        self.index_counts.update(index_counts or {})
        self.spots_written = spot_rows
        self._emit_descriptors()

    def resume_indexing(self, *, index_rows: Mapping[str, int]) -> None:
        """Add the indexing streams to a run already complete in the catalog (``laue-live index RUN``).

        Only the indexing streams' descriptors are emitted (the run's start, streams and stop exist);
        sequence numbers continue after ``index_rows`` (rows already in each indexing stream).
        """
        if not self.indexing_enabled:
            raise ValueError("resume_indexing: the composer was made without indexing")
        self._started = True
        counters = self._frames.compose_event.event_counters
        for name, rows in index_rows.items():
            counters[name] = rows + 1
        for bundle in self._index_descs.values():
            self.emit("descriptor", bundle.descriptor_doc)

    def summary(self, row: Mapping[str, Any]) -> None:
        """Emit a ``frames`` event from a ready summary row (used when the spot rows exist already)."""
        with self._lock:
            self.start()
            now = time.time()
            row = {c.name: row[c.name] for c in FRAME_COLUMNS}
            self.emit("event", self._frames.compose_event(data=row, timestamps={k: now for k in row},
                                                          validate=False))
            if row["failed"]:
                self.frames_failed += 1
            else:
                self.frames_analysed += 1

    def frame(self, frame: int, spots=None, *, x: float = math.nan, y: float = math.nan,
              seconds: float = 0.0, error: str = "", dropped: bool = False) -> None:
        """Emit the spot page (if any spots) and the summary event of one frame.

        Parameters
        ----------
        frame
            Frame number, 0-based.
        spots
            The frame's spot table (DataFrame with the schema's columns), or None if it failed.
        x, y
            Stage position (motor units).
        seconds
            Analysis time of the frame (s).
        error
            Why the frame failed (non-empty means failed).
        dropped
            The frame was dropped by the queue policy (counted apart from failures).

        Returns
        -------
        pandas.DataFrame or None
            The frame's spot table as written (schema columns, ``frame`` set), None if it failed.
        """
        with self._lock:
            return self._frame(frame, spots, x=x, y=y, seconds=seconds, error=error, dropped=dropped)

    def _frame(self, frame, spots, *, x, y, seconds, error, dropped):
        self.start()
        now = time.time()
        table = None
        failed = bool(error) or spots is None
        if failed and not error:
            error = "no spot table"
        n = n_good = 0
        mean_sim = math.nan
        if not failed:
            try:
                table = conform_spot_table(spots, frame=int(frame))
            except Exception as exc:  # the analysis returned something off-schema: a failed frame
                failed, error = True, f"spot table off schema: {exc}"
            else:
                n = len(table)
                if n:
                    n_good = int(table["good"].sum())
                    mean_sim = float(table["sim"].mean())
                    # numpy columns, not lists: .tolist() halved the writer's rows/s; every sink
                    # (Tiled writer, 0MQ codec, views, spool, ResumeSink) takes arrays.
                    data = {c: table[c].to_numpy() for c in table.columns}
                    self.emit("event_page", self._spots.compose_event_page(
                        data=data, timestamps={c: [now] * n for c in data}, time=[now] * n,
                        validate=False))
                    self.spots_written += n
        if dropped:
            self.frames_dropped += 1
        elif failed:
            self.frames_failed += 1
        else:
            self.frames_analysed += 1
        if failed:
            logger.warning("analysis run %s: frame %d failed: %s", self.uid[:8], frame, error)
        row = {"frame": int(frame), "x": float(x), "y": float(y), "n_spots": n, "n_good": n_good,
               "mean_sim": mean_sim, "seconds": float(seconds), "failed": failed, "error": str(error)}
        self.emit("event", self._frames.compose_event(
            data=row, timestamps={k: now for k in row}, validate=False))
        return None if failed else table

    def indexed(self, frame: int, result=None, *, n_spots: int = 0, seconds: float = 0.0,
                status: str | None = None, reason: str = "") -> None:
        """Emit one frame's indexing: its ``grains`` and ``indexed_spots`` pages, then its ``indexing`` row.

        Parameters
        ----------
        frame
            Frame number, 0-based.
        result
            The :class:`laue_live.indexing.IndexResult` of the frame's spot table (its ``spots`` keep
            the table's ``spot`` column), or None when the frame was not searched.
        n_spots
            Spots in the frame's table (when ``result`` is None).
        seconds
            Indexing time (s).
        status
            ``failed`` or ``not_indexed`` when ``result`` is None (``indexed`` / ``no_grain`` follow
            from the result).
        reason
            Why the frame failed or was not indexed.
        """
        if not self.indexing_enabled:
            raise RuntimeError("this analysis run is not indexed")
        with self._lock:
            self.start()
            now = time.time()
            row = {"frame": int(frame), "status": status or "failed", "n_grains": 0, "n_indexed": 0,
                   "n_spots": int(n_spots), "seconds": float(seconds), "reason": str(reason),
                   "best_n_matched": -1, "best_matched_fraction": math.nan, "best_deviation_px": math.nan}
            if result is not None:
                grains = result.grains_table()
                spots = result.spots
                labelled = spots[spots["grain"].to_numpy() >= 0]
                row.update(n_grains=len(grains), n_indexed=len(labelled), n_spots=len(spots),
                           status="indexed" if len(grains) else "no_grain")
                best = result.best_rejected
                if not len(grains):
                    row["reason"] = best.reason if best is not None else "no candidate orientation"
                    if best is not None:
                        row.update(best_n_matched=int(best.n_matched),
                                   best_matched_fraction=float(best.matched_fraction),
                                   best_deviation_px=float(best.deviation_px))
                if len(grains):
                    data = {c: (np.full(len(grains), int(frame), np.int64) if c == "frame" else
                                grains[c].to_numpy().astype(_GRAIN_DTYPES[c], copy=False))
                            for c in _GRAIN_NAMES}
                    self._page(GRAINS_STREAM, data, now)
                    self.index_counts["grains"] += len(grains)
                if len(labelled):
                    ids = (labelled["spot"].to_numpy() if "spot" in labelled.columns
                           else np.flatnonzero(spots["grain"].to_numpy() >= 0))
                    cols = {"frame": np.full(len(labelled), int(frame)), "spot": ids,
                            "grain": labelled["grain"], "h": labelled["h"], "k": labelled["k"],
                            "l": labelled["l"], "deviation_px": labelled["deviation_px"]}
                    data = {c.name: np.asarray(cols[c.name]).astype(c.dtype, copy=False)
                            for c in SPOT_INDEX_COLUMNS}
                    self._page(SPOT_INDEX_STREAM, data, now)
            self.index_counts[row["status"]] += 1
            self.emit("event", self._index_descs[INDEXING_STREAM].compose_event(
                data=row, timestamps={k: now for k in row}, validate=False))

    def _page(self, stream: str, data: dict[str, np.ndarray], now: float) -> None:
        n = len(next(iter(data.values())))
        self.emit("event_page", self._index_descs[stream].compose_event_page(
            data=data, timestamps={c: [now] * n for c in data}, time=[now] * n, validate=False))

    def stop(self, raw_exit_status: str | None = None, reason: str = "", *,
             interrupted: bool = False) -> dict:
        """Emit the stop document; returns it.

        ``exit_status`` is ``"success"`` when every frame was analysed, ``"fail"`` otherwise; the
        counts ``frames_analysed``, ``frames_failed``, ``frames_dropped`` and ``spots`` are in it.
        ``interrupted=True`` (the analysis stopped before all frames were handed over) gives
        ``exit_status="fail"`` and ``interrupted: True``: the run is unfinished and may be resumed.
        """
        with self._lock:
            return self._stop(raw_exit_status, reason, interrupted)

    def _stop(self, raw_exit_status, reason, interrupted) -> dict:
        self.start()
        if self._stopped:
            raise RuntimeError(f"analysis run {self.uid} already stopped")
        self._stopped = True
        bad = self.frames_failed + self.frames_dropped
        status = "success" if bad == 0 and not interrupted else "fail"
        parts = [f"{self.frames_analysed} frames analysed, {self.frames_failed} failed"]
        if self.frames_dropped:
            parts.append(f"{self.frames_dropped} dropped")
        if raw_exit_status and raw_exit_status != "success":
            parts.append(f"raw run ended with {raw_exit_status}")
        if self.indexing_enabled:
            c = self.index_counts
            parts.append(f"{c['indexed']} frames indexed ({c['grains']} grains), {c['no_grain']} without "
                         f"a grain, {c['failed']} failed, {c['not_indexed']} not indexed")
        if reason:
            parts.append(reason)
        doc = self._bundle.compose_stop(exit_status=status, reason="; ".join(parts), validate=False)
        doc = dict(doc)
        doc.update(frames_analysed=self.frames_analysed, frames_failed=self.frames_failed,
                   frames_dropped=self.frames_dropped, spots=self.spots_written,
                   raw_exit_status=raw_exit_status or "unknown", interrupted=bool(interrupted))
        if self.indexing_enabled:
            doc.update(frames_indexed=self.index_counts["indexed"],
                       frames_no_grain=self.index_counts["no_grain"],
                       frames_index_failed=self.index_counts["failed"],
                       frames_not_indexed=self.index_counts["not_indexed"],
                       grains=self.index_counts["grains"])
        self.emit("stop", doc)
        return doc
