"""Read an analysis run's indexing back: its grains, the Miller indices of its spots, the per-frame status.

The tables are the run's ``grains``, ``indexed_spots`` and ``indexing`` streams
(:mod:`laue_live._run`; columns in :mod:`laue_live._schema`), written live by the indexing stage or
added to a finished run by :func:`laue_live.catalog.index_run`. What was used (materials,
calibration, band, options) is the run's ``indexing`` entry: in the start document for live
indexing, in the run's metadata when the indexing was added afterwards (:func:`indexing_info`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from laue_live._run import FRAMES_STREAM, GRAINS_STREAM, INDEXING_KEY, INDEXING_STREAM, SPOT_INDEX_STREAM
from laue_live._schema import GRAIN_COLUMNS, INDEXING_COLUMNS, SPOT_INDEX_COLUMNS, empty_table
from laue_live.catalog._layout import read_stream_table
from laue_live.catalog._runs import get_run

__all__ = ["indexing_info", "indexing_summary", "get_grains", "get_spot_indices", "run_materials"]

logger = logging.getLogger(__name__)


def _resolve(run, catalog):
    if isinstance(run, str | int):
        if catalog is None:
            raise TypeError("a run given by uid or scan id needs catalog=")
        return get_run(catalog, run)
    return run


def indexing_info(run, *, catalog=None) -> dict[str, Any]:
    """Return what the run's indexing used: ``enabled``, ``material(s)``, ``calibration``... ({} if none).

    Live indexing records it in the start document; indexing added to a finished run
    (:func:`laue_live.catalog.index_run`) records it in the run's metadata, with its counts.
    """
    run = _resolve(run, catalog)
    info = dict(run.metadata["start"].get(INDEXING_KEY) or {})
    info.update(run.metadata.get(INDEXING_KEY) or {})
    return info


def _typed(df, columns):
    out = {}
    for c in columns:
        if c.name not in df.columns:
            continue
        out[c.name] = df[c.name].to_numpy() if c.dtype == "str" else df[c.name].to_numpy().astype(c.dtype)
    return df.assign(**out)[[c.name for c in columns if c.name in df.columns]]


def indexing_summary(run, *, catalog=None):
    """Return the ``indexing`` stream: a row per frame (status, grains, spots indexed, time, best candidate).

    A frame indexed again later (e.g. ``not_indexed`` live, then by ``laue-live index RUN``) keeps
    its last row. Sorted by frame; empty (with the columns) if the run is not indexed.
    """
    run = _resolve(run, catalog)
    df = read_stream_table(run, INDEXING_STREAM)
    if not len(df):
        return empty_table(INDEXING_COLUMNS)
    df = df.drop_duplicates("frame", keep="last").sort_values("frame", kind="stable").reset_index(drop=True)
    return _typed(df, INDEXING_COLUMNS)


def get_grains(run, frames: tuple[int, int] | int | None = None, *, positions: bool = True, catalog=None):
    """Return the grains of an analysis run: a row per grain and frame (``_schema.GRAIN_COLUMNS``).

    Parameters
    ----------
    run
        Analysis-run client, or a uid / scan id with ``catalog``.
    frames
        ``(first, last)`` inclusive frame range, a single frame, or None for all.
    positions
        Add the frame's stage position ``x, y`` (motor units) from the ``frames`` stream.
    catalog
        Catalog to look ``run`` up in when it is a uid.

    Returns
    -------
    pandas.DataFrame
        Sorted by (frame, grain); empty with the columns if the run has no grains.
    """
    run = _resolve(run, catalog)
    df = read_stream_table(run, GRAINS_STREAM)
    df = _typed(df, GRAIN_COLUMNS) if len(df) else empty_table(GRAIN_COLUMNS)
    df = df.drop_duplicates(["frame", "grain"], keep="last")  # never twice; a replay must not show it
    if frames is not None:
        lo, hi = (frames, frames) if isinstance(frames, int | np.integer) else frames
        df = df[(df["frame"] >= lo) & (df["frame"] <= hi)]
    df = df.sort_values(["frame", "grain"], kind="stable").reset_index(drop=True)
    if positions:
        pos = read_stream_table(run, FRAMES_STREAM, ["frame", "x", "y"])
        if len(pos):
            pos = pos.drop_duplicates("frame", keep="last").set_index("frame")
            df = df.assign(x=pos["x"].reindex(df["frame"]).to_numpy(float),
                           y=pos["y"].reindex(df["frame"]).to_numpy(float))
        else:
            df = df.assign(x=np.nan, y=np.nan)
    return df


def get_spot_indices(run, *, catalog=None):
    """Return the ``indexed_spots`` stream: ``frame, spot, grain, h, k, l, deviation_px`` of indexed spots."""
    run = _resolve(run, catalog)
    df = read_stream_table(run, SPOT_INDEX_STREAM)
    if not len(df):
        return empty_table(SPOT_INDEX_COLUMNS)
    df = _typed(df, SPOT_INDEX_COLUMNS).drop_duplicates(["frame", "spot"], keep="last")
    return df.sort_values(["frame", "spot"], kind="stable").reset_index(drop=True)


def run_materials(run, *, catalog=None) -> dict:
    """Return the materials the run was indexed with, by name (for their symmetry in maps)."""
    from laue_live.indexing import materials_from_indexing  # why: the indexer loads with the first map

    return materials_from_indexing(indexing_info(run, catalog=catalog))
