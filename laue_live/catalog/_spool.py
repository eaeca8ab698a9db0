"""A local journal of analysis runs, replayed into Tiled when the server comes back.

Why: the analysis must not lose a spot table because Tiled was restarted in the middle of a scan.
Every document of an analysis run goes to an append-only journal file on local disk *before* the
Tiled writer sees it. When the run's stop document has been handled, a background thread checks
the run in Tiled and writes what is missing (frames whose rows never arrived, the stop document),
keyed by run uid and frame number so that no row is written twice; then the journal is removed.
While the server is unreachable the check is retried with a bounded back-off, so a run finished
during an outage is completed on reconnection. Journals left by a process that died are replayed
by :func:`replay_spool` (``laue-live serve`` at start-up, or by hand).

The journal is a :class:`laue_live._journal.DocumentJournal` (length-prefixed msgpack records in
laue-live's encoding, no pickle; a torn last record, a crash mid-write, is ignored).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from laue_live._errors import LaueLiveError
from laue_live._journal import JOURNAL_SUFFIX, DocumentJournal, read_journal
from laue_live._run import FRAMES_STREAM, SPOTS_STREAM
from laue_live.catalog._layout import ensure_stream_nodes, stream_frames
from laue_live.catalog._resume import ResumeSink
from laue_live.catalog._writer import make_analysis_writer

__all__ = ["ReplayResult", "SpooledAnalysisWriter", "replay_journal", "replay_spool"]

logger = logging.getLogger(__name__)


# -------------------------------------------------------------------------------------------- replay
@dataclass
class ReplayResult:
    """What :func:`replay_journal` did to one run.

    Attributes
    ----------
    run_uid
        The analysis run.
    created
        True if the run was not in Tiled at all and was written whole from the journal.
    frames_in_journal
        Frames recorded in the journal's ``frames`` stream.
    frames_replayed, spot_rows_replayed
        ``frames`` rows and ``spots`` rows written now (the others were already in Tiled).
    other_rows_replayed
        Rows of the other streams (the indexing streams) written now.
    stopped
        True if the journal holds the stop document (then the run is complete in Tiled).
    """

    run_uid: str
    created: bool = False
    frames_in_journal: int = 0
    frames_replayed: int = 0
    spot_rows_replayed: int = 0
    other_rows_replayed: int = 0
    stopped: bool = False
    frames: set[int] = field(default_factory=set, repr=False)


def _frames_of(name: str, doc: dict) -> list[int]:
    data = doc.get("data", {})
    if "frame" not in data:
        return []
    f = data["frame"]
    return [int(f)] if name == "event" else [int(v) for v in f]


def _filter_page(doc: dict, skip: set[int]) -> dict | None:
    """Return the event page without the rows of frames in ``skip`` (None if nothing is left)."""
    frames = np.asarray(doc["data"]["frame"], dtype=np.int64)
    keep = ~np.isin(frames, np.fromiter(skip, dtype=np.int64, count=len(skip)))
    if keep.all():
        return doc
    if not keep.any():
        return None
    idx = np.flatnonzero(keep)

    def take(v):
        return np.asarray(v)[idx] if isinstance(v, np.ndarray) else [v[i] for i in idx]

    return {**doc, "seq_num": take(doc["seq_num"]), "time": take(doc["time"]),
            "data": {k: take(v) for k, v in doc["data"].items()},
            "timestamps": {k: take(v) for k, v in doc.get("timestamps", {}).items()},
            "filled": {k: take(v) for k, v in doc.get("filled", {}).items()}}


def replay_journal(path: str | os.PathLike, container, *, timeout: float = 120.0) -> ReplayResult:
    """Write into Tiled whatever of a journaled run is not there yet; rows keyed by (run uid, frame).

    Parameters
    ----------
    path
        A journal file written by :class:`DocumentJournal`.
    container
        Tiled container of the analysis runs (``CatalogOfBlueskyRuns``).
    timeout
        Bound in seconds on writing a run that is not in Tiled at all.

    Returns
    -------
    ReplayResult

    Raises
    ------
    CatalogWriteError
        If Tiled refused or could not be reached (the journal is kept; try again later).
    """
    docs = list(read_journal(path))
    if not docs or docs[0][0] != "start":
        raise LaueLiveError(f"journal {path} does not begin with a start document")
    start = docs[0][1]
    result = ReplayResult(run_uid=start["uid"])
    result.stopped = any(n == "stop" for n, _ in docs)
    stream_of = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    for n, d in docs:
        if n in ("event", "event_page") and stream_of.get(d["descriptor"]) == FRAMES_STREAM:
            result.frames.update(_frames_of(n, d))
    result.frames_in_journal = len(result.frames)
    try:
        run = container[start["uid"]]
    except KeyError:
        run = None
    if run is None:
        # Not in Tiled at all (the start document never arrived): write the whole run.
        writer = make_analysis_writer(container, max_attempts=3)
        for n, d in docs:
            writer(n, d)
        writer.close(timeout)  # raises CatalogWriteError on any failure
        result.created = True
        result.frames_replayed = result.frames_in_journal
        result.spot_rows_replayed = sum(
            len(d["seq_num"]) for n, d in docs
            if n == "event_page" and stream_of.get(d["descriptor"]) == SPOTS_STREAM)
        return result
    for name in ensure_stream_nodes(run, [d for n, d in docs if n == "descriptor"]):
        logger.info("run %s: stream %r created from the journal", start["uid"][:8], name)
    # keyed by (stream, frame): a frame's rows of a stream are one page, written whole or not at all
    have = {stream: stream_frames(run, stream) for stream in set(stream_of.values())}
    sink = ResumeSink(run)
    for n, d in docs:
        if n == "start":
            continue
        if n in ("event", "event_page"):
            stream = stream_of.get(d["descriptor"])
            skip = have.get(stream, set())
            if n == "event":
                if _frames_of(n, d) and _frames_of(n, d)[0] in skip:
                    continue
            elif skip and "frame" in d.get("data", {}):
                d = _filter_page(d, skip)
                if d is None:
                    continue
            rows = 1 if n == "event" else len(d["seq_num"])
            if stream == FRAMES_STREAM:
                result.frames_replayed += rows
            elif stream == SPOTS_STREAM:
                result.spot_rows_replayed += rows
            else:
                result.other_rows_replayed += rows
        replayed = result.frames_replayed or result.spot_rows_replayed or result.other_rows_replayed
        if n == "stop" and run.metadata.get("stop") and not replayed:
            continue  # complete already
        sink(n, d)
    if not result.stopped:
        sink.flush()  # a run cut short: write its rows, leave it without a stop
    return result


def replay_spool(directory: str | os.PathLike, container, *, remove: bool = True) -> list[ReplayResult]:
    """Replay every journal in ``directory`` (e.g. left by a process that died); see :func:`replay_journal`.

    Journals of runs with a stop document are removed once replayed (``remove``); journals of runs
    cut short stay, so that a later resume of the run (``laue-live reprocess --resume``) can
    follow. A journal that cannot be replayed is logged and kept.
    """
    results = []
    for path in sorted(Path(directory).glob(f"*{JOURNAL_SUFFIX}")):
        try:
            res = replay_journal(path, container)
        except Exception as exc:  # noqa: BLE001 - keep the journal, go on with the others
            logger.error("journal %s not replayed: %r", path.name, exc)
            continue
        results.append(res)
        if remove and res.stopped:
            path.unlink()
    return results


# ------------------------------------------------------------------------------------ spooled writer
class SpooledAnalysisWriter:
    """Tiled writer with a local journal: no spot table is lost when Tiled goes away for a while.

    Each document goes to a :class:`DocumentJournal`, then to an
    :class:`~laue_live.catalog.AnalysisWriter` whose failed appends are not retried (they would
    race with the replay): the journal is the single place they are recovered from. When a run's
    stop document has been handled by the writer, a background thread replays the journal against
    Tiled (:func:`replay_journal`), retrying with a back-off while Tiled is unreachable, then
    removes it.

    Parameters
    ----------
    container
        Tiled container of analysis runs, or a :class:`~laue_live.catalog.Catalog`.
    spool_dir
        Folder of the journals; keep it on local disk.
    retry_interval_s, max_retry_interval_s
        First and largest wait (seconds) between replay attempts while Tiled is unreachable.
    **writer_kwargs
        Passed to :class:`~laue_live.catalog.AnalysisWriter` (``max_rows``, ``max_delay_s``...).
    """

    def __init__(self, container, spool_dir: str | os.PathLike, *, retry_interval_s: float = 0.5,
                 max_retry_interval_s: float = 30.0, **writer_kwargs: Any) -> None:
        self.container = getattr(container, "analysis", container)
        self.journal = DocumentJournal(spool_dir)
        writer_kwargs.setdefault("max_attempts", 1)
        writer_kwargs.setdefault("spool_dir", Path(spool_dir) / "rows")
        self.writer = make_analysis_writer(self.container, **writer_kwargs)
        self.retry_interval_s = retry_interval_s
        self.max_retry_interval_s = max_retry_interval_s
        self.results: list[ReplayResult] = []
        self.journal_errors = 0
        self._pending: list[str] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="laue-live-spool", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"SpooledAnalysisWriter(spool_dir={str(self.journal.directory)!r}, pending={self.pending})"

    def __call__(self, name: str, doc: dict) -> None:
        """Journal the document, then hand it to the writer (never raises for Tiled's sake)."""
        try:
            self.journal(name, doc)
        except Exception:  # a full disk must not stop the live path: Tiled may still take it
            self.journal_errors += 1
            logger.exception("journal: cannot record the %s document", name)
        self.writer(name, doc)
        if name == "stop":
            with self._cond:
                self._pending.append(doc["run_start"])
                self._cond.notify_all()

    @property
    def pending(self) -> list[str]:
        """Run uids whose journal is not yet confirmed in Tiled."""
        with self._cond:
            return list(self._pending)

    def wait_synced(self, timeout: float = 60.0) -> bool:
        """Wait until every stopped run is complete in Tiled (journals removed); True if in time."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending, timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Wait (bounded) for the replays, stop the thread and close the writer.

        The writer's own errors (appends that failed during an outage) are not raised when the
        journal has made up for them; journals still pending stay on disk for :func:`replay_spool`.
        """
        self.wait_synced(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        self.journal.close()
        try:
            self.writer.close(timeout)
        except LaueLiveError as exc:
            if self.pending:
                raise
            logger.info("writer errors were made up for by the journal: %s", exc)

    def __enter__(self) -> SpooledAnalysisWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        delay = self.retry_interval_s
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closing)
                if self._closing:
                    return
                run = self._pending[0]
            # The writer has seen the stop document; let it finish that run before comparing.
            self.writer.flush(timeout=self.max_retry_interval_s)
            path = self.journal.path(run)
            try:
                res = replay_journal(path, self.container)
            except Exception as exc:  # noqa: BLE001 - Tiled unreachable: wait and try again
                logger.warning("run %s not yet complete in Tiled (%r); retrying in %.1f s",
                               run[:8], exc, delay)
                with self._cond:
                    self._cond.wait_for(lambda: self._closing, delay)
                delay = min(delay * 2, self.max_retry_interval_s)
                continue
            delay = self.retry_interval_s
            if res.frames_replayed or res.spot_rows_replayed or res.other_rows_replayed:
                logger.warning("run %s: %d frame rows, %d spot rows and %d other rows written from the "
                               "journal", run[:8], res.frames_replayed, res.spot_rows_replayed,
                               res.other_rows_replayed)
            path.unlink(missing_ok=True)
            # the writer's own journal of its failed appends: this journal made up for them
            (self.journal.directory / "rows" / f"{run}{JOURNAL_SUFFIX}").unlink(missing_ok=True)
            with self._cond:
                self.results.append(res)
                self._pending.remove(run)
                self._cond.notify_all()

