"""Index an analysis run already in the catalog: its spot tables from Tiled, its grains written alongside.

The indexing streams (``grains``, ``indexed_spots``, ``indexing``; :mod:`laue_live._run`) are added
to the analysis run itself, with the same stage and composer as the live path
(:class:`laue_live.analysis.IndexingStage`, policy ``block``: nothing dropped) and appended through a
:class:`~laue_live.catalog.ResumeSink`; what was used and the counts go into the run's metadata
(``indexing``, read by :func:`laue_live.catalog.indexing_info`). It is resumable like reprocessing:
frames whose last ``indexing`` row says ``indexed`` or ``no_grain`` are skipped, so an interrupted
pass, or frames the live stage recorded as ``not_indexed``, are completed without a row twice.
To index a run again with another material or calibration, reprocess its raw run into a new
analysis run (``laue-live reprocess RAW --material ... --calibration ...``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from laue_live._errors import SettingsError
from laue_live._run import (
    ANALYSIS_KIND,
    FRAMES_STREAM,
    INDEXING_KEY,
    INDEXING_STREAMS,
    RAW_UID,
    SPOTS_STREAM,
    indexing_request,
)
from laue_live.analysis import (
    AnalysisRunComposer,
    IndexingConfig,
    IndexingStage,
    ResolvedIndexing,
    resolve_indexing,
)
from laue_live.catalog._grains import indexing_info, indexing_summary
from laue_live.catalog._layout import read_stream_table
from laue_live.catalog._resume import ResumeSink
from laue_live.catalog._runs import get_raw_run, get_run

__all__ = ["IndexRunResult", "index_run", "indexing_setup_of"]

logger = logging.getLogger(__name__)

#: Statuses of a frame's last ``indexing`` row that need no new indexing.
_DONE = ("indexed", "no_grain")
_NEEDED = ("frame", "spot", "row", "col", "intensity", "good")


@dataclass
class IndexRunResult:
    """What :func:`index_run` did.

    Attributes
    ----------
    analysis_uid
        The analysis run indexed.
    frames_total
        Frames with a summary row in the run.
    frames_skipped
        Frames already indexed (or whose spot analysis failed and are recorded so), not done again.
    counts
        Frames by status of this pass (``indexed``, ``no_grain``, ``failed``, ``not_indexed``) and ``grains``.
    indexing
        The run's ``indexing`` metadata entry written.
    """

    analysis_uid: str
    frames_total: int
    frames_skipped: int
    counts: dict[str, int]
    indexing: dict[str, Any]


def indexing_setup_of(run, catalog=None, *, material=None, calibration=None, energy_range=None,
                      options: Mapping[str, Any] | None = None) -> ResolvedIndexing:
    """Return what to index an analysis run with.

    The given values, else what the run was indexed with, else its start documents (the analysis
    run's, then its raw run's: ``material``, ``calibration``...).

    Raises
    ------
    SettingsError
        Nothing names a material or a calibration; or the run is already indexed with another
        material or calibration than the ones given.
    """
    info = indexing_info(run)
    given = {"material": material, "calibration": calibration, "energy_range": energy_range,
             **dict(options or {})}
    if info.get("enabled"):
        recorded = {INDEXING_KEY: {"material": info.get("materials") or info.get("material"),
                                   "calibration": info.get("calibration"),
                                   "energy_range": info.get("energy_range"), **(info.get("options") or {})}}
        previous = _resolve(recorded, {}, run)
        if material is None and calibration is None and energy_range is None and not options:
            return previous
        wanted = _resolve(recorded, given, run)
        if wanted.key != previous.key:
            raise SettingsError(
                f"analysis run {run.metadata['start']['uid'][:8]} is already indexed with "
                f"{'+'.join(m.name for m in previous.materials)} "
                f"({previous.calibration_source or 'recorded'} calibration): to index it with other "
                "settings, reprocess its raw run into a new analysis run (laue-live reprocess RAW "
                "--material ... --calibration ...)")
        return previous
    start = dict(run.metadata["start"])
    raw = get_raw_run(catalog, run) if catalog is not None else None
    if raw is not None:
        start = {**dict(raw.metadata["start"]), **start}
    return _resolve(start, given, run)


def _resolve(start: Mapping[str, Any], settings: Mapping[str, Any], run) -> ResolvedIndexing:
    request, why = indexing_request(start, {k: v for k, v in settings.items() if v is not None},
                                    prefer="settings")
    if request is None:
        raise SettingsError(f"cannot index analysis run {run.metadata['start']['uid'][:8]}: {why}; give the "
                            "material and the calibration (--material, --calibration)")
    return resolve_indexing(request)


def index_run(catalog, run_id: str | int, *, material=None, calibration=None, energy_range=None,
              options: Mapping[str, Any] | None = None, frames: Iterable[int] | None = None,
              sinks: Iterable[Callable] = (), progress: bool = True,
              config: IndexingConfig | None = None, record: bool = True) -> IndexRunResult:
    """Index the spot tables of an analysis run in the catalog and write the grains into that run.

    Parameters
    ----------
    catalog
        A :class:`laue_live.catalog.Catalog`.
    run_id
        Analysis run: uid, uid prefix, scan id, ``"latest"``, or a run client.
    material, calibration, energy_range, options
        What to index with (see :class:`laue_live.analysis.IndexingConfig`); by default what the run
        was indexed with live, else what its start documents name.
    frames
        Only these frames (default: every frame not yet indexed).
    sinks
        Further document sinks (0MQ publisher, live views) for the indexing documents.
    progress
        Show a progress bar.
    config
        Queue settings of the stage (the policy is always ``block``: nothing is dropped).
    record
        Write what was used and the counts into the run's metadata (``indexing``); reprocessing's
        resume, which writes the run's stop document afterwards, does not.

    Returns
    -------
    IndexRunResult

    Raises
    ------
    NotInCatalogError
        No such analysis run.
    SettingsError
        Nothing to index with, or other settings than the run's earlier indexing.
    """
    run = get_run(catalog, run_id, "analysis")
    start = dict(run.metadata["start"])
    if start.get("kind") != ANALYSIS_KIND:
        raise SettingsError(f"run {start.get('uid', '')[:8]} is not a laue-live analysis run")
    resolved = indexing_setup_of(run, catalog, material=material, calibration=calibration,
                                 energy_range=energy_range, options=options)
    summary = read_stream_table(run, FRAMES_STREAM, ["frame", "failed"])
    summary = summary.drop_duplicates("frame", keep="last") if len(summary) else summary
    failed = set(summary.loc[summary["failed"].astype(bool), "frame"].astype(int)) if len(summary) else set()
    known = indexing_summary(run)
    done = set(known.loc[known["status"].isin(_DONE), "frame"].astype(int))
    spot_failed = (known["status"] == "failed") & known["frame"].isin(list(failed))
    done |= set(known.loc[spot_failed, "frame"].astype(int))
    all_frames = sorted(int(f) for f in summary["frame"]) if len(summary) else []
    wanted = set(all_frames if frames is None else (int(f) for f in frames))
    todo = [f for f in all_frames if f in wanted and f not in done]
    logger.info("indexing analysis run %s: %d frames, %d to index with %s", start["uid"][:8], len(all_frames),
                len(todo), "+".join(m.name for m in resolved.materials))

    sink = ResumeSink(run)
    composer = AnalysisRunComposer([sink, *sinks], {"uid": start.get(RAW_UID, start["uid"])},
                                   {"method": start.get("method"), "model": start.get("model", {})},
                                   uid=start["uid"], indexing=resolved.metadata())
    rows = {name: len(read_stream_table(run, name, ["frame"])) for name in INDEXING_STREAMS}
    composer.resume_indexing(index_rows=rows)
    config = config or IndexingConfig()
    stage = IndexingStage(composer, resolved, queue_size=config.queue_size, policy="block",
                          name="laue-live-index-run")
    t0 = time.perf_counter()
    try:
        if todo:
            spots = read_stream_table(run, SPOTS_STREAM, [c for c in _NEEDED])
            groups = dict(tuple(spots.groupby("frame", sort=False))) if len(spots) else {}
            empty = spots.iloc[:0]
            for f in tqdm(todo, desc=f"index {start['uid'][:8]}", unit="frame", disable=not progress):
                if f in failed:
                    stage.submit(f, None, "the frame's spot analysis failed")
                else:
                    stage.submit(f, groups.get(f, empty).reset_index(drop=True))
    finally:
        stage.close()
        sink.flush()
    counts = dict(composer.index_counts)
    total = indexing_summary(run)
    md = {**resolved.metadata(), "frames_indexed": int((total["status"] == "indexed").sum()),
          "frames_no_grain": int((total["status"] == "no_grain").sum()),
          "frames_index_failed": int((total["status"] == "failed").sum()),
          "frames_not_indexed": len(all_frames) - int(total["status"].isin([*_DONE, "failed"]).sum()),
          "indexed_by": "laue-live index", "indexed_at": time.time(),
          "seconds": round(time.perf_counter() - t0, 3)}
    if record:
        run.update_metadata(metadata={INDEXING_KEY: md}, drop_revision=True)
    return IndexRunResult(start["uid"], len(all_frames), len(all_frames) - len(todo), counts, md)
