"""Write analysis runs (Bluesky documents) into Tiled: TiledWriter for the run, batched appends for rows.

Why not hand every document to ``TiledWriter``: it unpacks each ``event_page`` into one dict per
row and rebuilds an Arrow table with ``Table.from_pylist``, and it writes when ``batch_size`` rows
are cached rather than after a delay, so it either writes every frame (one ~35 ms request per
frame: ~25k rows/s) or holds rows back until the stop document. Measured in
``benchmarks/bench_tiled_sink.py``.

So the run is written by ``bluesky_tiled_plugins.TiledWriter(normalizer=None)``: start, descriptors
(the stream containers with their ``BlueskyEventStream``/``composite`` specs and data-key metadata)
and stop. The rows of every scalar-valued stream (``frames``, ``spots``) are appended by this module
directly into the node where TiledWriter keeps them, ``<run>/<stream>/internal``, an appendable SQL
table with TiledWriter's columns (``seq_num``, ``time``, the data keys, and ``ts_<key>`` for the
streams named in ``timestamps``): readers and ``run["spots"].read()`` see one ordinary TiledWriter
run (``run.documents()`` needs ``timestamps=True``, see :class:`AnalysisWriter`). Rows are
coalesced across frames and appended by size (``max_rows``) or age (``max_delay_s``) on a
background thread, so the caller never waits on HTTP. Tiled's layout itself is known to
:mod:`laue_live.catalog._layout` only.

Rows whose appends failed ``max_attempts`` times are given up, never dropped: kept in memory
(:attr:`AnalysisWriter.unwritten`) or, with ``spool_dir``, written to a local journal
``<spool_dir>/<run uid>.journal`` (:class:`laue_live._journal.DocumentJournal`: the run's start, the
stream's descriptor, the rows as event pages, the stop) that :func:`laue_live.catalog.replay_spool`
writes into Tiled once it is back.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laue_live._errors import LaueLiveError
from laue_live._journal import DocumentJournal
from laue_live._run import FRAMES_STREAM, SPOTS_STREAM, SUMMARY_STREAMS
from laue_live.catalog._layout import column_dtype, create_stream_table

__all__ = ["AnalysisWriter", "CatalogWriteError", "make_analysis_writer"]

logger = logging.getLogger(__name__)

_STOP = object()
# Summary streams (per-frame rows: ``frames``, ``indexing``) are written after the frame's rows of the
# streams they vouch for; a stream's summary, if it has one:
_SUMMARY_OF = {row_stream: summary for summary, rows in SUMMARY_STREAMS.items() for row_stream in rows}


class CatalogWriteError(LaueLiveError, RuntimeError):
    """Documents or rows could not be written into the catalog (raised at ``close``)."""


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Stream:
    """Pending and written rows of one event stream of one run."""

    run_uid: str
    name: str
    data_keys: dict[str, dict]
    batched: bool  # False: stream handed to TiledWriter unchanged (array-valued or external data)
    descriptor: dict = field(default_factory=dict)
    chunks: list[dict[str, np.ndarray]] = field(default_factory=list)
    chunk_frames: list[np.ndarray] = field(default_factory=list)
    n_pending: int = 0
    first_pending: float = 0.0
    table: Any = None  # DataFrameClient once created
    schema: Any = None
    frames_seen: set[int] = field(default_factory=set)
    frames_written: set[int] = field(default_factory=set)
    rows_written: int = 0


class AnalysisWriter:
    """Document callback ``(name, doc)`` that writes runs into a Tiled container.

    Use :func:`make_analysis_writer` to build one. Thread-safe to call from one producer thread;
    the documents of one run must arrive in Bluesky order (start, descriptors, events, stop).

    Parameters
    ----------
    container
        Tiled container client (``CatalogOfBlueskyRuns``) that receives the runs.
    max_rows
        Append a stream's pending rows once this many have accumulated.
    max_delay_s
        Append pending rows at the latest this long (seconds) after the oldest arrived; bounds how
        stale a query during the scan can be.
    timestamps
        Streams that get TiledWriter's ``ts_<key>`` column per data key: ``True`` for all (then
        ``run.documents()`` works for every stream), ``False`` for none, or stream names. Default
        ``("frames",)``: the spot table goes without them, because 24 float64 timestamp columns
        triple the bytes per spot row and cut the append rate by half or more
        (``benchmarks/bench_tiled_sink.py``); a spot's time is its frame's, in ``frames``.
    max_queue
        Documents held before ``__call__`` blocks (back-pressure rather than loss).
    max_attempts
        Appends of one batch tried (with a short back-off) before it is given up and spilled to
        ``spool_dir``.
    spool_dir
        Where batches that could not be appended are journaled (none are lost; see the module
        docstring); default: kept in memory, see :attr:`unwritten`.
    """

    def __init__(self, container, *, max_rows: int = 200_000, max_delay_s: float = 0.5,
                 timestamps: bool | tuple[str, ...] = (FRAMES_STREAM,), max_queue: int = 10_000,
                 max_attempts: int = 3,
                 spool_dir: str | Path | None = None) -> None:
        from bluesky_tiled_plugins import TiledWriter  # lazy: it imports tiled's client, ~1.5-5 s

        if max_rows < 1 or max_delay_s <= 0:
            raise ValueError("max_rows must be >= 1 and max_delay_s > 0")
        self.container = container
        self.max_rows = int(max_rows)
        self.max_delay_s = float(max_delay_s)
        self.timestamps = timestamps
        self.max_attempts = max_attempts
        self.spool_dir = Path(spool_dir) if spool_dir is not None else None
        self._tw = TiledWriter(container, normalizer=None, batch_size=1)
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._streams: dict[str, _Stream] = {}  # descriptor uid -> stream
        self._failed_runs: set[str] = set()
        self._failed_descriptors: set[str] = set()
        self._preset: dict[tuple[str, str], set[int]] = {}  # (run uid, stream) -> frames already in Tiled
        # (run uid, summary stream) -> frames whose rows (spots, grains...) were given up
        self._held: dict[tuple[str, str], set[int]] = {}
        self._lock = threading.Lock()
        self.errors: list[BaseException] = []
        self.unwritten: list[Any] = []  # pyarrow tables given up on (when no spool_dir)
        self._dead_letters: DocumentJournal | None = None  # the journal of spool_dir, once needed
        self._starts: dict[str, dict] = {}  # run uid -> start document (kept while spool_dir is set)
        self._journaled: set[str] = set()  # run and descriptor uids already in the spool journal
        self.stats = {"documents": 0, "appends": 0, "rows_written": 0, "append_seconds": 0.0,
                      "duplicates_skipped": 0, "errors": 0, "retries": 0, "rows_of_failed_runs": 0}
        self._closed = False
        # Two threads: the builder turns documents into Arrow batches while the sender's request is
        # on the wire (the server's ingest and our conversion overlap); 2 batches in flight at most.
        self._send_q: queue.Queue = queue.Queue(maxsize=2)
        self._sender = threading.Thread(target=self._send_loop, name="laue-live-tiled-sender", daemon=True)
        self._sender.start()
        self._thread = threading.Thread(target=self._run, name="laue-live-tiled-writer", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------------------------- producer
    def __call__(self, name: str, doc: dict) -> None:
        """Enqueue one document; returns at once unless ``max_queue`` documents are pending."""
        if self._closed:
            raise CatalogWriteError("the analysis writer is closed")
        self._queue.put((name, doc))

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything enqueued so far; wait at most ``timeout`` s. True if done in time."""
        if not self._thread.is_alive():
            return not self._queue.qsize()
        req = _Flush()
        self._queue.put(req)
        return req.done.wait(timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Flush, stop the background thread, and raise :class:`CatalogWriteError` if anything failed.

        An append that failed and then succeeded on a retry lost nothing: it is counted in
        ``stats["retries"]`` and logged as a warning, not raised here.

        Parameters
        ----------
        timeout
            Bound in seconds on the final flush.
        """
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise CatalogWriteError(f"the analysis writer did not finish within {timeout:.0f} s "
                                    f"({self._queue.qsize()} documents still queued)")
        if self.errors:
            raise CatalogWriteError(
                f"{len(self.errors)} error(s) while writing to Tiled; first: {self.errors[0]!r}"
            ) from self.errors[0]

    def __enter__(self) -> AnalysisWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def frames_written(self, run_uid: str, stream: str = SPOTS_STREAM) -> set[int]:
        """Frame numbers of ``run_uid`` whose rows of ``stream`` are confirmed in Tiled."""
        with self._lock:
            return {f for s in self._streams.values() if s.run_uid == run_uid and s.name == stream
                    for f in s.frames_written}

    def mark_written(self, run_uid: str, frames, stream: str = SPOTS_STREAM) -> None:
        """Declare ``frames`` of ``run_uid`` already in Tiled (e.g. on resume): their rows are skipped.

        May be called before the run's documents arrive; it applies when the stream's descriptor does.
        """
        frames = {int(f) for f in frames}
        with self._lock:
            self._preset.setdefault((run_uid, stream), set()).update(frames)
            for s in self._streams.values():
                if s.run_uid == run_uid and s.name == stream:
                    s.frames_seen.update(frames)
                    s.frames_written.update(frames)

    # --------------------------------------------------------------------------------- consumer
    def _run(self) -> None:
        while True:
            timeout = self._next_deadline()
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._flush_all()
                self._barrier()
                self._send_q.put(_STOP)
                self._sender.join()
                return
            if isinstance(item, _Flush):
                self._flush_all()
                self._barrier()
                item.done.set()
                continue
            if item is not None:
                name, doc = item
                self.stats["documents"] += 1
                try:
                    self._handle(name, doc)
                except Exception as exc:  # noqa: BLE001 - recorded, counted, raised at close
                    run = doc.get("uid") if name == "start" else doc.get("run_start")
                    if name == "start" and run:
                        self._failed_runs.add(run)
                    self._error(f"cannot write {name} document", exc)
            self._flush_due()

    def _next_deadline(self) -> float | None:
        pending = [s.first_pending for s in self._streams.values() if s.n_pending]
        if not pending:
            return None
        return max(0.0, min(pending) + self.max_delay_s - time.monotonic())

    def _error(self, what: str, exc: BaseException) -> None:
        with self._lock:  # both threads report errors
            self.stats["errors"] += 1
            self.errors.append(exc)
        logger.error("%s: %r", what, exc, exc_info=exc if logger.isEnabledFor(logging.DEBUG) else None)

    def _handle(self, name: str, doc: dict) -> None:
        if name == "start":
            self._tw(name, doc)
            if self.spool_dir is not None:
                with self._lock:
                    self._starts[doc["uid"]] = doc
        elif name == "descriptor":
            if doc.get("run_start") in self._failed_runs:
                self._failed_descriptors.add(doc["uid"])
                return
            self._tw(name, doc)
            keys = doc.get("data_keys", {})
            batched = all(not dk.get("shape") and "external" not in dk for dk in keys.values())
            with self._lock:
                s = self._streams[doc["uid"]] = _Stream(doc["run_start"], doc["name"], keys, batched, doc)
                preset = self._preset.get((s.run_uid, s.name), set())
                s.frames_seen.update(preset)
                s.frames_written.update(preset)
        elif name in ("event", "event_page"):
            if doc["descriptor"] in self._failed_descriptors:
                # its run's start failed (error already recorded): count, do not flood the log
                self.stats["rows_of_failed_runs"] += len(doc["seq_num"]) if name == "event_page" else 1
                return
            stream = self._streams.get(doc["descriptor"])
            if stream is None:
                raise KeyError(f"{name} for unknown descriptor {doc['descriptor']}")
            if not stream.batched:
                self._tw(name, doc)
            else:
                self._buffer(stream, doc if name == "event_page" else _pack(doc))
        elif name == "stop":
            run = doc["run_start"]
            if run in self._failed_runs:
                return
            self._flush_all(run_uid=run)
            self._barrier()  # every row of the run is in Tiled before TiledWriter closes its nodes
            for s in self._streams.values():
                if s.run_uid == run and s.table is not None:
                    try:
                        s.table.close_stream()
                    except Exception as exc:  # noqa: BLE001
                        logger.debug("close_stream of %s/%s failed: %r", run, s.name, exc)
            self._tw(name, doc)
            with self._lock:
                self._starts.pop(run, None)
                journaled = run in self._journaled
            if journaled:  # rows of this run were given up: the stop completes their journal
                self._dead_letters("stop", doc)
        else:  # stream_resource, stream_datum, resource, datum...: TiledWriter's business
            self._tw(name, doc)

    def _buffer(self, s: _Stream, page: dict) -> None:
        data = page["data"]
        n = len(page["seq_num"])
        if n == 0:
            return
        cols: dict[str, np.ndarray] = {
            "seq_num": np.asarray(page["seq_num"], dtype=np.int64),
            "time": np.asarray(page["time"], dtype=np.float64),
        }
        for key, dk in s.data_keys.items():
            if key in data:
                cols[key] = np.asarray(data[key], dtype=column_dtype(dk))
        if self.timestamps is True or (self.timestamps and s.name in self.timestamps):
            ts = page.get("timestamps", {})
            for key in s.data_keys:
                if key in data:
                    cols[f"ts_{key}"] = np.asarray(ts.get(key, page["time"]), dtype=np.float64)
        frames = np.asarray(cols["frame"]) if "frame" in cols else np.empty(0, np.int64)
        if frames.size:
            # Idempotent per (run, frame): a page re-sent for a frame already taken is dropped.
            with self._lock:
                seen = s.frames_seen
                if seen:
                    mask = ~np.isin(frames, np.fromiter(seen, dtype=np.int64, count=len(seen)))
                    if not mask.all():
                        self.stats["duplicates_skipped"] += int((~mask).sum())
                        if not mask.any():
                            return
                        cols = {k: v[mask] for k, v in cols.items()}
                        frames = frames[mask]
                seen.update(np.unique(frames).tolist())
        if not s.n_pending:
            s.first_pending = time.monotonic()
        s.chunks.append(cols)
        s.chunk_frames.append(np.unique(frames))
        s.n_pending += len(cols["seq_num"])
        if s.n_pending >= self.max_rows:
            self._flush_stream(s)

    def _flush_due(self) -> None:
        # While a backlog is queued, keep filling batches (a request costs ~35 ms whatever its size)
        # and let the time trigger wait up to twice max_delay_s; otherwise it fires at max_delay_s.
        now = time.monotonic()
        delay = self.max_delay_s if self._queue.empty() else 2 * self.max_delay_s
        due = any(s.n_pending and now - s.first_pending >= delay
                  for s in self._streams.values())
        if due:  # one tick writes every stream with pending rows: fewer, fuller requests
            self._flush_all()

    def _flush_all(self, run_uid: str | None = None) -> None:
        # The per-frame summaries (``frames``) go last: a frame's summary row in Tiled means its
        # spot rows are there too, which is what resume relies on (the sender keeps this order).
        for s in sorted(self._streams.values(), key=lambda s: s.name in SUMMARY_STREAMS):
            if run_uid is None or s.run_uid == run_uid:
                self._flush_stream(s)

    def _barrier(self) -> None:
        """Wait until the sender has handled every batch handed to it so far."""
        done = threading.Event()
        self._send_q.put(done)
        while not done.wait(1.0):
            if not self._sender.is_alive():  # never wait on a dead thread
                return

    def _make_table(self, s: _Stream):
        chunks, s.chunks = s.chunks, []
        frames = np.unique(np.concatenate(s.chunk_frames)) if s.chunk_frames else np.empty(0, np.int64)
        s.chunk_frames, s.n_pending = [], 0
        names = list(chunks[0])
        arrays = {k: np.concatenate([c[k] for c in chunks if k in c]) for k in names}
        if s.schema is None:
            s.schema = pa.table(arrays).schema
        return pa.table(arrays).cast(s.schema), frames

    def _flush_stream(self, s: _Stream) -> None:
        if not s.n_pending:
            return
        if s.name in SUMMARY_STREAMS:  # size trigger on a summary: the rows it vouches for go first
            for other in list(self._streams.values()):
                if (other is not s and other.run_uid == s.run_uid
                        and other.name in SUMMARY_STREAMS[s.name]):
                    self._flush_stream(other)
        if s.run_uid in self._failed_runs:
            s.chunks, s.chunk_frames, s.n_pending = [], [], 0
            return
        try:
            table, frames = self._make_table(s)
        except Exception as exc:  # noqa: BLE001 - malformed rows: recorded, not fatal
            s.chunks, s.chunk_frames, s.n_pending = [], [], 0
            self._error(f"cannot build the {s.name} table of run {s.run_uid}", exc)
            return
        self._send_q.put((s, table, frames))  # blocks while 2 batches are in flight: back-pressure

    def _send_loop(self) -> None:
        while True:
            job = self._send_q.get()
            if job is _STOP:
                return
            if isinstance(job, threading.Event):
                job.set()
                continue
            s, table, frames = job
            if s.name in SUMMARY_STREAMS and self._held.get((s.run_uid, s.name)):
                table, frames = self._hold_back(s, table, frames)
                if table is None:
                    continue
            for attempt in range(1, self.max_attempts + 1):
                try:
                    # An append is not idempotent: a failure after the server took the rows (a
                    # read timeout, a lost response) must not write them twice. Tiled leaves this
                    # check to the caller (``DataFrameClient.append_partition``).
                    if attempt == 1 or not self._landed(s, frames):
                        self._append(s, table)
                    else:
                        logger.warning("the %d %s rows of run %s were in Tiled after a failed "
                                       "append; not appended again", table.num_rows, s.name, s.run_uid)
                except Exception as exc:  # noqa: BLE001 - recorded, counted, raised at close
                    what = (f"append of {table.num_rows} {s.name} rows of run {s.run_uid} failed "
                            f"(attempt {attempt} of {self.max_attempts})")
                    if attempt == self.max_attempts:
                        self._error(what, exc)  # given up: close() reports it
                        self._give_up(s, table)
                        if s.name in _SUMMARY_OF:  # their summaries must not claim them done
                            self._held.setdefault((s.run_uid, _SUMMARY_OF[s.name]), set()).update(
                                frames.tolist())
                    else:
                        # a retry that then succeeds loses nothing: a warning, not an error at close()
                        with self._lock:
                            self.stats["retries"] += 1
                        logger.warning("%s: %r; retrying", what, exc)
                        time.sleep(min(0.25 * 2 ** (attempt - 1), 2.0))  # back-off before a retry
                    continue
                with self._lock:
                    s.frames_written.update(frames.tolist())
                    s.rows_written += table.num_rows
                break

    def _landed(self, s: _Stream, frames) -> bool:
        """Whether the rows of ``frames`` are in ``s``'s table already (read back from Tiled).

        An append is one transaction on the server: its frames are all there or none is. A read
        that fails raises, and counts as one more failed attempt.
        """
        if s.table is None or not len(frames):
            return False
        there = np.asarray(s.table.read(columns=["frame"])["frame"])
        return bool(np.isin(frames, there).all())

    def _hold_back(self, s: _Stream, table, frames):
        """Give up the summary rows of frames whose spot rows were given up (kept with them)."""
        held = self._held[(s.run_uid, s.name)]
        held_arr = pa.array(sorted(held), type=table.schema.field("frame").type)
        out = pc.is_in(table["frame"], value_set=held_arr)
        if pc.any(out).as_py():
            self._give_up(s, table.filter(out))
            table = table.filter(pc.invert(out))
            frames = frames[~np.isin(frames, np.fromiter(held, dtype=np.int64, count=len(held)))]
        return (table, frames) if table.num_rows else (None, frames)

    def _append(self, s: _Stream, table) -> None:
        t0 = time.perf_counter()
        if s.table is None:
            s.table = self._create_table(s, table.schema)
        s.table.append_partition(0, table)
        self.stats["appends"] += 1
        self.stats["rows_written"] += table.num_rows
        self.stats["append_seconds"] += time.perf_counter() - t0

    def _create_table(self, s: _Stream, schema):
        metadata = {k: v for k, v in s.data_keys.items() if k in schema.names}
        return create_stream_table(self.container[s.run_uid], s.name, schema, metadata)

    def _give_up(self, s: _Stream, table) -> None:
        if self.spool_dir is None:
            self.unwritten.append(table)
            return
        with self._lock:
            if self._dead_letters is None:
                self._dead_letters = DocumentJournal(self.spool_dir)
            first_of_run = s.run_uid not in self._journaled
            first_of_stream = s.descriptor["uid"] not in self._journaled
            self._journaled.update((s.run_uid, s.descriptor["uid"]))
            start = self._starts.get(s.run_uid)
        if first_of_run and start is not None:
            self._dead_letters("start", start)
        if first_of_stream:
            self._dead_letters("descriptor", s.descriptor)
        self._dead_letters("event_page", _page_of(s, table))
        logger.error("saved %d unwritten %s rows of run %s to %s", table.num_rows, s.name, s.run_uid,
                     self._dead_letters.path(s.run_uid))


def _page_of(s: _Stream, table) -> dict:
    """Return the rows of an Arrow table of ``s`` (TiledWriter's columns) as an event page."""
    cols = {n: table.column(n).to_numpy(zero_copy_only=False) for n in table.column_names}
    seq_num, times = cols.pop("seq_num"), cols.pop("time")
    timestamps = {n[3:]: cols.pop(n) for n in list(cols) if n.startswith("ts_") and n[3:] in s.data_keys}
    return {"descriptor": s.descriptor["uid"], "seq_num": seq_num, "time": times, "data": cols,
            "timestamps": timestamps, "filled": {}}


def _pack(event: dict) -> dict:
    """Pack an event as a one-row event page (columns of length 1)."""
    return {"descriptor": event["descriptor"], "seq_num": [event["seq_num"]], "time": [event["time"]],
            "data": {k: [v] for k, v in event["data"].items()},
            "timestamps": {k: [v] for k, v in event.get("timestamps", {}).items()}}


def make_analysis_writer(client_or_container, *, max_rows: int = 200_000, max_delay_s: float = 0.5,
                         **kwargs) -> Callable[[str, dict], None]:
    """Build a document callback that writes analysis runs into Tiled, batched, off the caller's thread.

    Parameters
    ----------
    client_or_container
        A :class:`~laue_live.catalog.Catalog` (its ``analysis`` container is used) or any Tiled
        container client.
    max_rows
        Rows per append at most before a stream is written (size trigger). Below it the time
        trigger makes batches of about (arrival rate x ``max_delay_s``) rows, so the batch size
        follows the rate; ``max_rows`` caps the batches of a backlog (~100 bytes per spot row).
    max_delay_s
        Seconds a row may wait before it is written (time trigger): a query during the scan sees
        the frames done up to ~``max_delay_s`` + one request (~35 ms) ago.
    **kwargs
        Passed to :class:`AnalysisWriter` (``timestamps``, ``max_queue``, ``spool_dir`` ...).

    Returns
    -------
    AnalysisWriter
        Call it with ``(name, doc)``; ``flush()`` and ``close()`` are bounded; ``close()`` raises
        :class:`CatalogWriteError` if anything failed.
    """
    container = getattr(client_or_container, "analysis", client_or_container)
    return AnalysisWriter(container, max_rows=max_rows, max_delay_s=max_delay_s, **kwargs)
