"""Re-analyse a raw run already in Tiled, or finish an analysis run that was interrupted.

The frames are read from the raw run in Tiled, analysed by the same worker and composer as the live
analysis (:mod:`laue_live.analysis`), and written by the same writer (:func:`make_analysis_writer`);
an interrupted analysis run is completed in place through a :class:`ResumeSink`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from laue_live._errors import DocumentError
from laue_live._run import (
    ANALYSIS_KIND,
    FRAMES_STREAM,
    INDEXING_STREAMS,
    RAW_UID,
    SPOTS_STREAM,
    position_fields,
)
from laue_live.analysis import (
    AnalysisRunComposer,
    AnalysisWorker,
    FrameAnalyzer,
    FrameTask,
    IndexingConfig,
    IndexingSetup,
    make_analyzer,
)
from laue_live.catalog._grains import indexing_info, indexing_summary
from laue_live.catalog._index import index_run, indexing_setup_of
from laue_live.catalog._layout import frames_node, read_stream_table, written_frames
from laue_live.catalog._resume import ResumeSink
from laue_live.catalog._runs import find_analysis_runs, get_run, run_finished
from laue_live.catalog._writer import make_analysis_writer

__all__ = ["ReprocessResult", "reprocess_run"]

logger = logging.getLogger(__name__)


@dataclass
class ReprocessResult:
    """What :func:`reprocess_run` did.

    Attributes
    ----------
    raw_uid, analysis_uid
        The raw run and the analysis run written (new, or the one resumed).
    resumed
        True if an interrupted analysis run was completed rather than a new one written.
    frames_total, frames_skipped
        Frames in the raw run; frames already written and therefore not analysed again.
    stop
        The analysis run's stop document (counts of frames analysed/failed).
    """

    raw_uid: str
    analysis_uid: str
    resumed: bool
    frames_total: int
    frames_skipped: int
    stop: dict


def _positions(raw, stream: str, n: int, start: dict) -> tuple[np.ndarray, np.ndarray]:
    """Stage positions (x, y) of the ``n`` frames of a raw run, from its stream's table (NaN if unknown)."""
    x = np.full(n, math.nan)
    y = np.full(n, math.nan)
    try:
        table = read_stream_table(raw, stream)
    except Exception as exc:  # no scalar table: positions unknown
        logger.info("no position table in the raw run (%s)", exc)
        return x, y
    if "seq_num" not in table:
        return x, y
    idx = table["seq_num"].to_numpy().astype(int) - 1
    ok = (idx >= 0) & (idx < n)
    for out, col in zip((x, y), position_fields(start, table.columns), strict=True):
        if col is not None:
            out[idx[ok]] = table[col].to_numpy()[ok]
    return x, y


def reprocess_run(catalog, run_id: str | int, *, method: str = "auto", model: str | None = None,
                  analyzer: FrameAnalyzer | Callable | None = None, resume: bool | str = False,
                  sinks: Iterable[Callable] = (), image_field: str | None = None, stream: str = "primary",
                  batch_size: int = 8, progress: bool = True, writer_kwargs: dict | None = None,
                  indexing: IndexingConfig | bool | None = None, **analyzer_kwargs: Any) -> ReprocessResult:
    """Analyse a raw run from the catalog (frames read from Tiled) and write an analysis run.

    Parameters
    ----------
    catalog
        A :class:`laue_live.catalog.Catalog` (``raw`` and ``analysis`` containers).
    run_id
        Raw run uid, uid prefix or scan id.
    method, model, analyzer
        How to analyse: ``"fit"``, ``"cnn"`` or ``"auto"``, a CNN model, or a ready analyser.
    resume
        False: write a new analysis run. True: complete the newest analysis run of this raw run
        that has no stop document (interrupted live analysis), skipping the frames it already
        holds; a new run is written if there is none. A uid string: complete that analysis run.
    sinks
        Further document sinks (0MQ publisher, live views) besides the Tiled writer.
    image_field
        Data key of the frames (default: the stream's 2-D data key).
    stream
        Event stream of the raw run holding the frames.
    batch_size
        Frames per analysis call.
    progress
        Show a tqdm progress bar.
    writer_kwargs
        Passed to :func:`make_analysis_writer` (new runs only).
    indexing
        Index the frames too (as the live path does): an :class:`~laue_live.analysis.IndexingConfig`
        (its material and calibration, if given, win over the raw run's start document), ``False``
        never; default: when the raw run's start document names a material and a calibration. A
        resumed run continues with what it was indexed with (frames that have spot rows but no
        indexing row are indexed from Tiled first).

    Returns
    -------
    ReprocessResult

    Raises
    ------
    NotInCatalogError
        (a :class:`~laue_live._errors.DocumentError`) If the raw run, its stream or its image field
        cannot be found.
    """
    # the analyser first: a bad method or device is one clear error before anything is read or written
    analyzer = make_analyzer(method, analyzer, model=model, **analyzer_kwargs)
    raw = get_run(catalog, run_id, "raw")
    start = dict(raw.metadata["start"])
    field, frames = frames_node(raw, stream, image_field)
    n = int(frames.shape[0])
    xs, ys = _positions(raw, stream, n, start)

    target = None
    if resume:
        if isinstance(resume, str):
            target = get_run(catalog, resume, "analysis")
        else:
            open_runs = [r for r in find_analysis_runs(catalog, start["uid"]) if not run_finished(r)]
            target = open_runs[-1] if open_runs else None
    writer = None
    skip: set[int] = set()
    setup = None
    if not isinstance(indexing, IndexingConfig):
        indexing = IndexingConfig(enabled=indexing is not False)
    if target is not None:
        tstart = dict(target.metadata["start"])
        if tstart.get("kind") != ANALYSIS_KIND or tstart.get(RAW_UID) != start["uid"]:
            raise DocumentError(f"{tstart.get('uid')} is not an analysis run of raw run {start['uid']}")
        done_frames, done_spots = written_frames(target)
        frames_tab = read_stream_table(target, FRAMES_STREAM, ["frame", "failed", "n_spots"])
        # A summary row whose spot rows never arrived (the process died between the two appends):
        # analyse that frame again and write only its spot rows.
        redo: set[int] = set()
        if len(frames_tab):
            lost = frames_tab[(frames_tab["n_spots"] > 0) & ~frames_tab["frame"].isin(list(done_spots))]
            redo = set(lost["frame"].astype(int).tolist())
        skip = (done_frames | done_spots) - redo
        n_failed = int(frames_tab["failed"].astype(bool).sum()) if len(frames_tab) else 0
        index_md, index_rows, index_counts = None, None, None
        if indexing_info(target).get("enabled") and indexing.enabled:
            # the frames already analysed but not indexed: indexed now from their rows in Tiled
            index_run(catalog, target, frames=skip, progress=False, record=False)
            resolved = indexing_setup_of(target, catalog)
            setup, index_md = IndexingSetup(resolved, indexing), resolved.metadata()
            index_rows = {name: len(read_stream_table(target, name, ["frame"])) for name in INDEXING_STREAMS}
            status = indexing_summary(target)["status"]
            index_counts = {k: int((status == k).sum()) for k in ("indexed", "no_grain", "failed",
                                                                   "not_indexed")}
            index_counts["grains"] = len(read_stream_table(target, "grains", ["frame"]))
        composer = AnalysisRunComposer(
            [_SkipSummaries(ResumeSink(target), redo), *sinks], start,
            {"method": tstart.get("method"), "model": tstart.get("model", {}),
             "params": tstart.get("analysis_params", {})},
            image_field=field, uid=tstart["uid"], indexing=index_md)
        composer.resume(tstart, frame_rows=len(frames_tab),
                        spot_rows=len(read_stream_table(target, SPOTS_STREAM, ["frame"])),
                        analysed=len(frames_tab) - n_failed - len(redo), failed=n_failed,
                        index_rows=index_rows, index_counts=index_counts)
        # Frames whose spot rows are written but whose summary row is not: summarise from the rows.
        _summarise_orphans(composer, target, done_spots - done_frames, xs, ys)
        if analyzer.method != tstart.get("method"):
            logger.warning("resuming %s analysed with %r using %r", tstart["uid"][:8],
                           tstart.get("method"), analyzer.method)
    else:
        writer = make_analysis_writer(catalog, **(writer_kwargs or {}))
        composer = AnalysisRunComposer([writer, *sinks], start, analyzer.describe(), image_field=field,
                                       metadata={"reprocessed": True, "raw_stream": stream})
        setup = IndexingSetup.for_run(start, indexing)
    worker = AnalysisWorker(composer, analyzer, queue_size=2 * batch_size, policy="block",
                            batch_size=batch_size, name="laue-live-reprocess", indexing=setup)
    todo = [i for i in range(n) if i not in skip]
    logger.info("%s raw run %s: %d frames, %d to analyse into %s", "resuming" if target else "reprocessing",
                start["uid"][:8], n, len(todo), composer.uid[:8])
    submitted = 0
    abort = ""
    try:
        for i in tqdm(todo, desc=f"reprocess {start['uid'][:8]}", unit="frame", disable=not progress):
            task = FrameTask(i, float(xs[i]), float(ys[i]))
            try:
                task.source = np.asarray(frames[i])  # read here, analysed in the worker thread
            except Exception as exc:
                task.error = f"cannot read frame from Tiled: {type(exc).__name__}: {exc}"
            worker.submit(task)
            submitted += 1
    except BaseException as exc:
        # Frames are missing: the stop must say so (a "success" stop would make the run look done
        # and a retry would skip it); resume=True and campaigns treat it as unfinished.
        abort = (f"interrupted after {submitted} of {len(todo)} frames: {type(exc).__name__}: {exc}")
        raise
    finally:
        worker.close(start.get("exit_status") or (raw.metadata.get("stop") or {}).get("exit_status"),
                     abort, interrupted=bool(abort))
        worker.join()
        if writer is not None:
            writer.close()
    return ReprocessResult(start["uid"], composer.uid, target is not None, n, len(skip),
                           worker.stop_doc or {})


class _SkipSummaries:
    """Sink wrapper that drops the ``frames`` events of ``frames`` (their summary row exists already)."""

    def __init__(self, sink: Callable, frames: set[int]) -> None:
        self.sink, self.frames, self._names = sink, frames, {}

    def __call__(self, name: str, doc: dict) -> None:
        if name == "descriptor":
            self._names[doc["uid"]] = doc.get("name")
        elif (name == "event" and self.frames and self._names.get(doc["descriptor"]) == FRAMES_STREAM
              and int(doc["data"]["frame"]) in self.frames):
            return
        self.sink(name, doc)


def _summarise_orphans(composer: AnalysisRunComposer, run, frames: set[int], xs, ys) -> None:
    if not frames:
        return
    spots = read_stream_table(run, SPOTS_STREAM, ["frame", "good", "sim"])
    for f in sorted(frames):
        rows = spots[spots["frame"] == f]
        composer.summary({"frame": f, "x": float(xs[f]) if f < len(xs) else math.nan,
                          "y": float(ys[f]) if f < len(ys) else math.nan, "n_spots": len(rows),
                          "n_good": int(rows["good"].sum()), "mean_sim": float(rows["sim"].mean()),
                          "seconds": math.nan, "failed": False, "error": ""})
