"""The analysis worker: a thread that takes frames from a bounded queue and analyses them in batches.

Queue-full policy
-----------------
The producer (the RunEngine thread) calls :meth:`AnalysisWorker.submit`, which never raises and
never waits longer than ``block_timeout``; the policies are those of
:class:`laue_live.analysis._queue.PolicyQueue` (shared with the indexing stage):

``"spill"`` (default, loses nothing)
    When ``queue_size`` frames are waiting, ``submit`` waits up to ``block_timeout`` seconds for
    room (once: while the queue stays over its bound, later frames spill at once, until the
    backlog is down to half the bound), then puts the frame in the queue anyway, beyond its bound
    (counted in ``spilled``).
    Every frame's spot table is written, late rather than never; the price is memory (one frame
    per spilled item if frames arrive inline; a few bytes for frames in detector files, which are
    read only when analysed).
``"drop_newest"``
    After the same (single) wait the new frame is not kept; it is recorded in the ``frames`` stream as a
    failed frame (``error="dropped: ..."``) and counted in ``dropped``, so that a map shows the hole.
``"block"``
    Wait until there is room (slows acquisition down to the analysis rate; never loses a frame).

When the run is indexed, each frame's spot table is handed on to an
:class:`~laue_live.analysis.IndexingStage` (its own thread and queue) once its documents are out, and
the stop document waits for that stage to finish (or to record what it could not index).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from laue_live.analysis._composer import AnalysisRunComposer
from laue_live.analysis._frames import FrameTask
from laue_live.analysis._indexing import IndexingSetup, IndexingStage
from laue_live.analysis._queue import LatencyStats, PolicyQueue, QueueThread

__all__ = ["AnalysisWorker", "WorkerStats"]

logger = logging.getLogger(__name__)


@dataclass
class WorkerStats(LatencyStats):
    """Counters of one worker (read them any time; updated by the worker and the producer)."""

    submitted: int = 0
    analysed: int = 0
    failed: int = 0
    dropped: int = 0
    spilled: int = 0
    batches: int = 0
    max_depth: int = 0
    analysis_seconds: float = 0.0


class AnalysisWorker(QueueThread):
    """Analyse :class:`FrameTask` items in a thread and emit one analysis run through a composer.

    Parameters
    ----------
    composer
        Builds and emits the analysis run's documents (owned by the worker thread from ``start``).
    analyzer
        ``analyzer(frames) -> list[DataFrame]``, one spot table per frame
        (:class:`laue_live.analysis.FrameAnalyzer`).
    queue_size
        Frames waiting before the queue-full policy applies.
    policy
        ``"spill"`` (default), ``"drop_newest"`` or ``"block"``: see the module docstring.
    block_timeout
        Seconds ``submit`` may wait for room before the policy applies (s).
    batch_size
        Most frames analysed in one call (their cutouts go through the model together).
    name
        Thread name (for logs).
    indexing
        The run's :class:`~laue_live.analysis.IndexingSetup` (opened on the worker's thread before the
        start document: it starts the run's :class:`~laue_live.analysis.IndexingStage`), or None.
        Each frame's spot table (or its failure) is handed to the stage after the frame's documents;
        the stage is closed before the stop document.

    Attributes
    ----------
    indexing
        The run's indexing stage once started (None if the run is not indexed).
    """

    def __init__(self, composer: AnalysisRunComposer, analyzer: Callable, *, queue_size: int = 32,
                 policy: str = "spill", block_timeout: float = 0.02, batch_size: int = 8,
                 name: str = "laue-live-analysis", indexing: IndexingSetup | None = None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.composer = composer
        self.analyzer = analyzer
        self._indexing_setup = indexing
        self.indexing: IndexingStage | None = None
        self._name = name
        self.queue_size = queue_size
        self.policy = policy
        self.block_timeout = block_timeout
        self.batch_size = batch_size
        self.stats = WorkerStats()
        self._queue = PolicyQueue(queue_size, policy, block_timeout, alive=lambda: self._thread.is_alive())
        self._stop_args: tuple[str | None, str, bool] = (None, "", False)
        self._done = threading.Event()
        self.stop_doc: dict | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- producer side (RunEngine thread): cheap, never raises ----------------------------------------
    def submit(self, task: FrameTask) -> bool:
        """Queue one frame; returns False if it was dropped by the ``drop_newest`` policy."""
        with self._queue.cond:
            self.stats.submitted += 1
            if self._queue.closing:
                if self._done.is_set() or not self._thread.is_alive():
                    # The stop document is out: the frame cannot join the run. Say so, do not pretend.
                    logger.error("frame %d arrived after the analysis run was closed: not analysed "
                                 "(reprocess the raw run to include it)", task.frame)
                    return False
                logger.error("frame %d submitted after the run was closed; recorded as failed", task.frame)
                task.source, task.error = None, "frame arrived after the run's stop document"
            outcome = self._queue.put(task, on_drop=_mark_dropped, exempt=task.error != "")
            self.stats.dropped, self.stats.spilled = self._queue.dropped, self._queue.spilled
            self.stats.max_depth = self._queue.max_depth
        return outcome != "dropped"

    def close(self, raw_exit_status: str | None = None, reason: str = "", *,
              interrupted: bool = False) -> None:
        """No more frames: the worker analyses what is queued, then emits the stop document.

        ``interrupted=True``: frames are missing (the producer failed); the stop says so
        (``exit_status="fail"``, ``interrupted: True``) and the run stays resumable.
        """
        with self._queue.cond:
            self._stop_args = (raw_exit_status, reason, interrupted)
            self._queue.close()

    # -- worker thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            if self._indexing_setup is not None:
                try:  # resolves the materials and calibration here, off the RunEngine's thread
                    self.indexing = self._indexing_setup.open(self.composer, name=f"{self._name}-indexing")
                except Exception:
                    logger.exception("could not start the indexing stage; the run is not indexed")
            self.composer.start()
            while (batch := self._queue.take(self.batch_size)) is not None:
                self.process(batch)
        except Exception:  # a bug here must not leave the run without a stop document
            logger.exception("analysis worker crashed; remaining frames recorded as failed")
            for t in self._queue.drain():
                self._emit_safely(t, None, 0.0, "analysis worker crashed")
        finally:
            if self.indexing is not None:
                try:  # the stop document counts the frames indexed: let the stage finish (bounded)
                    self.indexing.close()
                except Exception:
                    logger.exception("could not close the indexing stage")
            try:
                raw_status, reason, interrupted = self._stop_args
                self.stop_doc = self.composer.stop(raw_status, reason, interrupted=interrupted)
            except Exception:
                logger.exception("could not emit the analysis run's stop document")
            self._done.set()

    def _emit_safely(self, task: FrameTask, spots, seconds: float, error: str) -> None:
        table = None
        try:
            table = self.composer.frame(task.frame, spots, x=task.x, y=task.y, seconds=seconds, error=error,
                                        dropped=error.startswith("dropped"))
        except Exception:
            logger.exception("frame %d: could not emit its documents", task.frame)
        if self.indexing is not None:
            # after the frame's documents: the spot rows never wait for the indexing
            self.indexing.submit(task.frame, table, error or ("" if table is not None else "no spot table"))
        self.stats.analysed = self.composer.frames_analysed
        self.stats.failed = self.composer.frames_failed
        self.stats.latencies.append(time.monotonic() - task.received)

    def process(self, batch: list[FrameTask]) -> None:
        """Load and analyse a batch of frames and emit their documents (also usable synchronously)."""
        self.stats.batches += 1
        loaded: list[tuple[FrameTask, Any]] = []
        for task in batch:
            if task.error:
                self._emit_safely(task, None, 0.0, task.error)
                continue
            try:
                loaded.append((task, task.load()))
            except Exception as exc:
                self._emit_safely(task, None, 0.0, f"{type(exc).__name__}: {exc}")
        if not loaded:
            return
        t0 = time.perf_counter()
        try:
            tables = list(self.analyzer([f for _, f in loaded]))
            if len(tables) != len(loaded):
                raise RuntimeError(f"analyzer returned {len(tables)} tables for {len(loaded)} frames")
        except Exception as exc:
            if len(loaded) > 1:
                # One bad frame must not fail its batch-mates: analyse them one by one.
                logger.warning("batch of %d frames failed (%s); retrying frame by frame", len(loaded), exc)
                for task, frame in loaded:
                    self._analyse_one(task, frame)
                return
            task = loaded[0][0]
            dt = time.perf_counter() - t0
            self.stats.analysis_seconds += dt
            logger.error("frame %d: analysis failed: %s", task.frame, exc, exc_info=True)
            self._emit_safely(task, None, dt, f"{type(exc).__name__}: {exc}")
            return
        dt = time.perf_counter() - t0
        self.stats.analysis_seconds += dt
        per_frame = dt / len(loaded)  # a batch's time is shared evenly by its frames
        for (task, _), table in zip(loaded, tables, strict=True):
            self._emit_safely(task, table, per_frame, "")

    def _analyse_one(self, task: FrameTask, frame) -> None:
        t0 = time.perf_counter()
        try:
            (table,) = self.analyzer([frame])
            error = ""
        except Exception as exc:
            logger.error("frame %d: analysis failed: %s", task.frame, exc, exc_info=True)
            table, error = None, f"{type(exc).__name__}: {exc}"
        dt = time.perf_counter() - t0
        self.stats.analysis_seconds += dt
        self._emit_safely(task, table, dt, error)


def _mark_dropped(task: FrameTask) -> FrameTask:
    # Keep a tiny marker so that the frame shows up as dropped, not missing.
    task.source = None
    task.error = "dropped: analysis queue full (policy drop_newest)"
    return task
