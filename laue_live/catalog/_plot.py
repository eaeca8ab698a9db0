"""Quality map of a raster scan as a PNG (matplotlib, Agg backend: no window, works headless)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from laue_live._maps import MapValue, draw_map, map_extent, map_geometry, map_title, map_value
from laue_live.catalog._query import frame_summary, quality_map, raster_geometry
from laue_live.catalog._runs import get_run

__all__ = ["plot_quality_map"]

logger = logging.getLogger(__name__)


def plot_quality_map(run, path: str | Path, value: str | MapValue = "n_good", *, catalog=None,
                     title: str | None = None, cmap: str = "viridis", spots: str | None = None,
                     statistic: str = "mean") -> Path:
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
        Matplotlib colour map; frames not analysed or failed are grey.

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
    data = quality_map(run, value, catalog=catalog)
    geometry = map_geometry(geom["start"])
    start = dict(run.metadata["start"])
    left, right, bottom, top = map_extent(geometry)
    aspect = abs(bottom - top) / max(abs(right - left), 1e-12) if geometry["unit"] in ("µm", "point") else 0.8
    width = 6.4  # the map's height follows the sample's: room for the title, labels and colour bar
    fig = Figure(figsize=(width, min(max((width - 1.6) * aspect + 1.4, 3.0), 9.0)), dpi=100,
                 layout="constrained")
    ax = fig.add_subplot()
    missing = int(np.isnan(data).sum())
    draw_map(ax, data, geometry, value, cmap=cmap,
             title=title or map_title(value, start, data.size - missing, data.size))
    if missing:
        ax.annotate(f"grey: {missing} frame(s) without a value (failed, not analysed, or no such spots)",
                    (0, 0), xycoords="figure fraction", xytext=(4, 4), textcoords="offset points",
                    fontsize="x-small", color="0.3")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    logger.info("quality map written to %s", path)
    return path
