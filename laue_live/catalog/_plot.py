"""Quality and grain maps of a raster scan as a PNG (matplotlib, Agg backend: no window, works headless)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from laue_live._maps import ORIENTATION, MapValue, draw_map, map_extent, map_geometry, map_title, map_value
from laue_live.catalog._grains import indexing_summary
from laue_live.catalog._query import _place, frame_summary, orientation_map, quality_map, raster_geometry
from laue_live.catalog._runs import get_run

__all__ = ["plot_quality_map"]

logger = logging.getLogger(__name__)


def plot_quality_map(run, path: str | Path, value: str | MapValue = "n_good", *, catalog=None,
                     title: str | None = None, cmap: str | None = None, spots: str | None = None,
                     statistic: str = "mean", grain: str | int = "largest", reference="first",
                     direction="z") -> Path:
    """Draw :func:`quality_map` at the stage positions (µm when the motors' units are lengths) as a PNG.

    Parameters
    ----------
    run
        Analysis-run client (or uid with ``catalog``).
    path
        Output PNG path (parent folders are created).
    value, spots, statistic
        What to map (see :func:`quality_map`); the colour scale is labelled with it and its unit.
    catalog
        Catalog holding the raw run, used for the raster geometry when needed.
    title
        Figure title; default: the value in words, the scan id, sample and analysis method.
    cmap
        Matplotlib colour map (default viridis; centred RdBu for strain components); frames not
        analysed or failed are grey.
    grain, reference
        Grain values of an indexed run: which grain of a frame, and the misorientation's reference
        (see :func:`quality_map`).
    direction
        ``orientation``: the sample direction coloured (``x`` beam, ``y``, ``z`` up); the map has an
        inverse-pole-figure colour key per material instead of a colour scale, frames without a grain
        in black.

    Returns
    -------
    pathlib.Path
        The PNG written.
    """
    import matplotlib  # lazy: matplotlib's figure costs ~0.4 s to import

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # lazy: as above

    run = get_run(catalog, run)
    if not isinstance(value, MapValue):
        value = map_value(value, spots, statistic, frame_columns=list(frame_summary(run).columns))
    geom = raster_geometry(run, catalog=catalog)
    sectors = {}
    if value is ORIENTATION:
        data, sectors = orientation_map(run, direction, grain=grain, catalog=catalog)
        data = np.where(np.isnan(data) & _indexed_cells(run, geom), 0.0, data)  # no grain: black
    else:
        data = quality_map(run, value, catalog=catalog, grain=grain, reference=reference)
    geometry = map_geometry(geom["start"])
    start = dict(run.metadata["start"])
    left, right, bottom, top = map_extent(geometry)
    aspect = abs(bottom - top) / max(abs(right - left), 1e-12) if geometry["unit"] in ("µm", "point") else 0.8
    width = 6.4  # the map's height follows the sample's: room for the title, labels and colour bar
    height = min(max((width - 1.6) * aspect + 1.4, 3.0), 9.0)
    fig = Figure(figsize=(width + (1.8 if sectors else 0.0), height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    cells = data if data.ndim == 2 else data[..., 0]
    missing = int(np.isnan(cells).sum())
    what = value if value is not ORIENTATION else MapValue(
        value.name, f"{value.label}, IPF-{direction}", value.unit)
    draw_map(ax, data, geometry, what, cmap=cmap,
             title=title or map_title(what, start, cells.size - missing, cells.size))
    if sectors:
        from laue_live.indexing import draw_ipf_key  # why: the indexer loads with an orientation map

        for i, sector in enumerate(sectors.values()):
            key = ax.inset_axes((1.04, 1.0 - (i + 1) / len(sectors), 0.35, 0.9 / len(sectors)))
            draw_ipf_key(key, sector, direction)
    if missing:
        ax.annotate(f"grey: {missing} frame(s) without a value (failed, not analysed, or no such spots)",
                    (0, 0), xycoords="figure fraction", xytext=(4, 4), textcoords="offset points",
                    fontsize="x-small", color="0.3")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    logger.info("quality map written to %s", path)
    return path


def _indexed_cells(run, geom) -> np.ndarray:
    """Cells of the raster whose frame was indexed (with or without a grain)."""
    done = indexing_summary(run)
    done = done[done["status"].isin(["indexed", "no_grain"])] if len(done) else done
    frames = done["frame"].to_numpy(np.int64) if len(done) else np.zeros(0, np.int64)
    return _place(frames, np.ones(len(frames)), geom["shape"], geom["snaking"])[..., None] == 1
