"""The standalone analysis service: RunEngine documents in (0MQ), analysis runs out (Tiled + 0MQ)."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from laue_live._errors import LaueLiveError
from laue_live._journal import Journal
from laue_live.analysis import FrameAnalyzer, OOMFallbackAnalyzer, runs_on_cuda
from laue_live.callbacks import make_run_router
from laue_live.catalog import SpooledAnalysisWriter, replay_spool, reprocess_run
from laue_live.service._settings import ServiceSettings
from laue_live.stream import SafeRemoteDispatcher, SpotPublisher

__all__ = ["AnalysisService", "RUN_JOURNAL", "open_runs"]

logger = logging.getLogger(__name__)

#: File (in the state directory) of the service's journal of the raw runs it started and ended.
RUN_JOURNAL = "runs.journal"
_LEGACY_JOURNAL = "journal.jsonl"  # the same records as JSON lines (earlier versions): read once


def open_runs(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return the raw runs started and not ended in a sequence of run-journal records, by uid, in order."""
    runs: dict[str, dict[str, Any]] = {}
    for entry in records:
        if entry.get("event") == "start":
            runs[entry["raw_uid"]] = entry
        elif entry.get("event") == "stop":
            runs.pop(entry.get("raw_uid"), None)
    return runs


def _legacy_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash
    return records


class _RunSink:
    """A document sink that may fail without harm to the analysis (the raw runs' Tiled writer).

    Its exceptions are logged and counted; after one, the rest of that raw run is skipped for it
    (a TiledWriter that lost its server mid-run cannot finish that run, and each further try would
    wait for tiled's connection retries); the next run starts afresh.
    """

    def __init__(self, sink, what: str):
        self.sink = sink
        self.what = what
        self.errors = 0
        self.runs_failed = 0
        self.skipped = 0
        self.last_error: str | None = None
        self._run: str | None = None
        self._failed_run: str | None = None

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            self._run = doc.get("uid")
        if self._failed_run is not None and self._failed_run == self._run:
            self.skipped += 1
            return
        try:
            self.sink(name, doc)
        except Exception as exc:  # noqa: BLE001 - a lost Tiled server must not stop the analysis
            self.errors += 1
            self.runs_failed += 1
            self._failed_run = self._run
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.error("%s failed on the %s document of raw run %s (%s): the rest of this run is not "
                         "written there; the analysis goes on", self.what, name, str(self._run)[:8],
                         self.last_error)

    def state(self) -> dict[str, Any]:
        """Counters for the status report: errors, runs failed, documents skipped, the last error."""
        return {"errors": self.errors, "runs_failed": self.runs_failed, "skipped": self.skipped,
                "last_error": self.last_error}

    def close(self, timeout: float | None = None) -> None:
        """Close the wrapped sink if it can be closed (TiledWriter's close takes no timeout)."""
        close = getattr(self.sink, "close", None)
        if close is not None:
            close()


class AnalysisService:
    """Analyse every run a RunEngine publishes; write the analysis runs to Tiled; publish spot tables.

    Documents come from a 0MQ proxy (:class:`~laue_live.stream.SafeRemoteDispatcher`, no pickle,
    bounded backlog) into the live callback machinery (:func:`laue_live.callbacks.make_run_router`),
    whose analysis runs go to the Tiled writer and to a :class:`~laue_live.stream.SpotPublisher`.
    A run that aborts ends its analysis run like any other; a failing frame, document or sink is
    logged and counted, never fatal. State is reported every ``status_interval`` seconds, and on
    :meth:`request_status` (``SIGUSR1`` in the CLI), to ``state_dir/status.json`` and as a
    ``laue.status`` message.

    Parameters
    ----------
    settings
        :class:`ServiceSettings`.
    catalog
        A :class:`laue_live.catalog.Catalog` (or Tiled container) to write into; ``None``: no Tiled
        output (spot tables are still published).
    analyzer
        A shared :class:`laue_live.analysis.FrameAnalyzer` (default: built from the settings).
    extra_sinks
        More receivers of the analysis documents.
    """

    def __init__(self, settings: ServiceSettings, *, catalog=None, analyzer=None, extra_sinks=()):
        self.settings = settings
        self.state = "starting"
        self._started = time.time()
        self._stop = threading.Event()
        self._status_now = threading.Event()
        self._next_status = 0.0
        self._rate: deque[tuple[float, int]] = deque(maxlen=64)
        self.runs_seen = 0
        self.runs_ended = 0
        self.last_status: dict[str, Any] = {}
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.status_path = settings.state_dir / "status.json"
        # The raw runs started and not ended when the service last stopped; the journal is
        # rewritten compactly with only those, then appended to from here on.
        self.journal = Journal(settings.state_dir / RUN_JOURNAL, fsync=False)
        legacy = settings.state_dir / _LEGACY_JOURNAL
        unfinished = open_runs([*_legacy_records(legacy), *self.journal.records()])
        self.journal.rewrite(unfinished.values())
        legacy.unlink(missing_ok=True)
        self.unfinished_at_start = sorted(unfinished)
        if self.unfinished_at_start:
            logger.warning("runs that were being analysed when the service last stopped: %s; reprocess "
                           "them with `laue-live reprocess RAW_UID`", ", ".join(
                               u[:8] for u in self.unfinished_at_start))
        opts = {k: v for k, v in (("device", settings.device), ("model", settings.model)) if v}
        if analyzer is None:
            # One analyser (one model load) shared by every run the service sees.
            analyzer = FrameAnalyzer(settings.method, pipeline=settings.pipeline, **opts,
                                     **settings.analysis_options())
            if runs_on_cuda(analyzer):
                # a GPU out-of-memory error splits the batch, then sends the frame to the CPU
                analyzer = OOMFallbackAnalyzer(analyzer)
        self.publisher = SpotPublisher(settings.publish_address, hwm=settings.publish_hwm,
                                       curve=settings.publish_curve)
        self.writer = None
        self.raw_writer = None
        self.catalog = catalog
        self.recovery: dict[str, str] = {}  # raw uid -> analysis uid or why not
        self.recovery_thread: threading.Thread | None = None
        # set once run() has started its helper threads, so callers may join or inspect them
        self._running = threading.Event()
        if settings.recover and self.unfinished_at_start:
            if getattr(catalog, "raw", None) is None:
                logger.error("cannot recover unfinished runs: no catalog with raw runs")
            else:  # started by run(), with the dispatcher
                self.recovery_thread = threading.Thread(target=self._recover, name="laue-live-recover",
                                                        daemon=True)
        if catalog is not None:
            # Every document is journaled locally first: a Tiled outage loses no spot table, and
            # journals left by a previous process that died are replayed before new work starts.
            spool = settings.state_dir / "spool"
            for res in replay_spool(spool, getattr(catalog, "analysis", catalog)):
                logger.info("replayed spooled analysis run: %s", res)
            self.writer = SpooledAnalysisWriter(catalog, spool)
            if settings.write_raw:
                from bluesky_tiled_plugins import TiledWriter  # lazy: it imports tiled's client, ~1.5-5 s

                # a Tiled server that goes away mid-scan is logged and counted, never fatal
                self.raw_writer = _RunSink(TiledWriter(getattr(catalog, "raw", catalog), batch_size=1),
                                           "the raw-run Tiled writer (--write-raw)")
        sinks = [s for s in (self.writer, self.publisher, *extra_sinks) if s is not None]
        self.router = make_run_router(sinks, analyzer=analyzer, indexing=settings.indexing_config())
        self.analyzer = self.router.factory.analyzer
        self.device = str(getattr(self.analyzer, "device", None) or opts.get("device") or "cpu")
        self.dispatcher = SafeRemoteDispatcher(
            settings.input_address, prefix=settings.input_prefix, max_backlog=settings.max_backlog,
            max_bytes=settings.max_bytes, curve=settings.input_curve, on_poll=self._tick)
        if self.raw_writer is not None:
            self.dispatcher.subscribe(self.raw_writer)
        self.dispatcher.subscribe(self._track)
        self.dispatcher.subscribe(self.router)
        self.publish_address = self.publisher.address
        logger.info("analysis service: documents from %s, spot tables on %s, method %s, device %s, "
                    "Tiled %s", settings.input_address, self.publish_address, self.analyzer.method,
                    self.device, "on" if self.writer is not None else "off")

    # -- document bookkeeping ---------------------------------------------------------------------
    def _record(self, event: str, raw_uid: str, **extra: Any) -> None:
        try:
            self.journal.append({"event": event, "raw_uid": raw_uid, "time": time.time(), **extra})
        except Exception:  # a full disk must not stop the analysis: only a restart would miss the run
            logger.exception("run journal: cannot record the %s of raw run %s", event, raw_uid[:8])

    def _track(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            self.runs_seen += 1
            self._record("start", doc["uid"], scan_id=doc.get("scan_id"), plan=doc.get("plan_name"))
            logger.info("raw run %s started (scan %s, %s)", doc["uid"][:8], doc.get("scan_id"),
                        doc.get("plan_name"))
            self.state = "analysing"
        elif name == "stop":
            self.runs_ended += 1
            self._record("stop", doc.get("run_start", ""), exit_status=doc.get("exit_status"))
            log = logger.info if doc.get("exit_status") == "success" else logger.warning
            log("raw run %s ended: %s %s", str(doc.get("run_start", ""))[:8], doc.get("exit_status"),
                doc.get("reason", ""))
            self._status_now.set()

    # -- state ---------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Return the service's state now: rates, queue depth, dropped and rejected messages, device, runs."""
        now = time.time()
        callbacks = list(self.router.callbacks)
        analysed = failed = dropped = depth = acquired = 0
        index = dict.fromkeys(("indexed", "no_grain", "failed", "not_indexed", "grains"), 0)
        index_depth = 0
        current = None
        for cb in callbacks:
            worker = cb.worker
            if worker is None:
                continue
            acquired += worker.stats.submitted
            analysed += worker.stats.analysed
            failed += worker.stats.failed
            dropped += worker.stats.dropped
            depth += worker.depth
            if worker.indexing is not None:
                for key in index:
                    index[key] += getattr(worker.indexing.stats, key)
                index_depth += worker.indexing.depth
            if not worker.done:
                current = cb.raw_start["uid"] if cb.raw_start else None
        self._rate.append((now, analysed + failed))
        t0, n0 = self._rate[0]
        fps = (analysed + failed - n0) / (now - t0) if now - t0 > 0 else 0.0
        if self.state == "analysing" and current is None and depth == 0:
            self.state = "idle"
        elif self.state == "idle" and current is not None:
            # a report made between a run's start and its first frame said idle: the run is on now
            self.state = "analysing"
        pub = self.publisher.stats() if not self.publisher.closed else {
            "sent": self.publisher.sent, "dropped": self.publisher.dropped, "subscribers": 0}
        return {
            "state": self.state, "pid": os.getpid(), "host": socket.gethostname(), "time": now,
            "uptime_s": round(now - self._started, 1), "input": self.settings.input_address,
            "publish": self.publish_address, "method": self.analyzer.method, "device": self.device,
            "runs_seen": self.runs_seen, "runs_ended": self.runs_ended,
            "analysis_runs": len(self.router.factory.analysis_uids), "current_run": current,
            "frames_acquired": acquired, "frames_analysed": analysed, "frames_failed": failed,
            "frames_dropped": dropped, "status_interval": self.settings.status_interval,
            "frames_per_s": round(fps, 3), "queue_depth": depth,
            "indexing": bool(self.settings.indexing), "frames_indexed": index["indexed"],
            "frames_no_grain": index["no_grain"], "frames_index_failed": index["failed"],
            "frames_not_indexed": index["not_indexed"], "grains": index["grains"],
            "index_queue_depth": index_depth,
            "messages_received": self.dispatcher.received, "messages_rejected": self.dispatcher.rejected,
            "callback_errors": self.dispatcher.callback_errors,
            "raw_writer": self.raw_writer.state() if self.raw_writer is not None else None,
            "dropped": pub["dropped"], "published": pub["sent"], "subscribers": pub.get("subscribers", 0),
            "unfinished_at_start": self.unfinished_at_start, "recovery": dict(self.recovery),
            "sinks": self._sinks_state(pub),
        }

    def _sinks_state(self, pub: dict[str, Any]) -> dict[str, Any]:
        """State of each output: Tiled (runs not yet confirmed, write errors) and the 0MQ publisher."""
        sinks: dict[str, Any] = {"zmq": {"state": "ok" if not pub["dropped"] else "dropping",
                                         "published": pub["sent"], "dropped": pub["dropped"],
                                         "subscribers": pub.get("subscribers", 0)}}
        if self.writer is not None:
            stats = self.writer.writer.stats
            pending = len(self.writer.pending)
            sinks["tiled"] = {"state": "ok" if not stats["errors"] else "retrying from the spool",
                              "rows_written": stats["rows_written"], "errors": stats["errors"],
                              "runs_pending": pending, "journal_errors": self.writer.journal_errors}
        else:
            sinks["tiled"] = {"state": "off"}
        return sinks

    def request_status(self) -> None:
        """Report the state at the next opportunity (thread- and signal-safe)."""
        self._status_now.set()

    def report(self) -> dict[str, Any]:
        """Write the status file and publish the status message now; returns the status."""
        status = self.status()
        self.last_status = status
        tmp = self.status_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(status, indent=1, default=str))
        os.replace(tmp, self.status_path)  # atomic: readers never see half a file
        if not self.publisher.closed:
            self.publisher.publish_status(status)
        logger.info("status: %s, %.2f frames/s, queue %d, %d frames analysed, %d dropped messages",
                    status["state"], status["frames_per_s"], status["queue_depth"],
                    status["frames_analysed"], status["dropped"])
        return status

    def _tick(self) -> None:
        if not self.publisher.closed:
            self.publisher.stats()  # lets new subscribers attach and get their welcome promptly
        now = time.monotonic()
        if self._status_now.is_set() or now >= self._next_status:
            self._status_now.clear()
            self._next_status = now + self.settings.status_interval
            self.report()

    # -- life cycle ----------------------------------------------------------------------------------
    def _recover(self) -> None:
        for raw_uid in self.unfinished_at_start:
            if self._stop.is_set():
                return
            try:
                result = reprocess_run(self.catalog, raw_uid, analyzer=self.analyzer, resume=True,
                                       sinks=[self.publisher], progress=False)
            except Exception as exc:  # a run that cannot be recovered must not stop the others
                logger.error("recovery of raw run %s failed: %s", raw_uid[:8], exc)
                self.recovery[raw_uid] = f"failed: {exc}"
                continue
            self._record("stop", raw_uid, exit_status="recovered")
            self.recovery[raw_uid] = getattr(result, "analysis_uid", None) or "done"
            logger.info("raw run %s recovered from Tiled", raw_uid[:8])

    def run(self) -> None:
        """Serve until :meth:`stop` (blocks); then drain the analysis and close everything."""
        self.state = "idle"
        if self.recovery_thread is not None:
            self.recovery_thread.start()
        self._running.set()
        self.report()
        try:
            self.dispatcher.start()
        finally:
            self._shutdown()

    def run_in_thread(self) -> threading.Thread:
        """Run :meth:`run` in a daemon thread and return it."""
        thread = threading.Thread(target=self.run, name="laue-live-service", daemon=True)
        thread.start()
        self._running.wait(30.0)  # bounded: run() sets it right after starting its threads
        return thread

    def stop(self) -> None:
        """Ask the service to stop (thread- and signal-safe)."""
        self._stop.set()
        self.dispatcher.stop()

    def _shutdown(self) -> None:
        self.state = "stopping"
        if self.recovery_thread is not None and self.recovery_thread.ident is not None:
            self.recovery_thread.join(self.settings.drain_timeout)
        logger.info("stopping: finishing queued frames (at most %.0f s)", self.settings.drain_timeout)
        for cb in list(self.router.callbacks):
            if cb.worker is not None and not cb.worker.done:
                # The raw run's stop never came: end its analysis run, marked as cut short.
                cb.worker.close(None, "analysis service stopped before the raw run ended")
        if not self.router.wait(self.settings.drain_timeout):
            logger.error("queued frames not finished within %.0f s", self.settings.drain_timeout)
        for closer in (self.writer, self.raw_writer):
            if closer is None:
                continue
            try:
                # bounded like the drain: a Tiled server that is away must not hold the stop for minutes
                closer.close(self.settings.drain_timeout)
            except LaueLiveError as exc:  # Tiled unreachable: the journals stay for the next start
                logger.warning("Tiled not reached before stopping (%s): the analysis runs stay in %s "
                               "and are written when the service next starts", exc,
                               self.settings.state_dir / "spool")
            except Exception:
                logger.exception("closing the Tiled writer failed (see spool/unwritten rows)")
        self.state = "stopped"
        self.journal.close()
        try:
            self.report()
        finally:
            self.publisher.close()
        logger.info("analysis service stopped")
