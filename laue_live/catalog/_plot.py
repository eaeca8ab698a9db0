"""Quality map of a raster scan as a PNG (matplotlib, Agg backend: no window, works headless)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from laue_live._run import imshow_extent
from laue_live.catalog._query import quality_map, raster_geometry
from laue_live.catalog._runs import get_run

__all__ = ["plot_quality_map"]

logger = logging.getLogger(__name__)

_LABELS = {"n_good": "good spots per frame", "n_spots": "spots per frame", "mean_sim": "mean Sim",
           "seconds": "analysis time per frame (s)", "good_fraction": "fraction of good spots"}


def plot_quality_map(run, path: str | Path, value: str = "n_good", *, catalog=None,
                     title: str | None = None, cmap: str = "viridis") -> Path:
    """Draw :func:`quality_map` over the raster's motor extents and save it as a PNG.

    Parameters
    ----------
    run
        Analysis-run client (or uid with ``catalog``).
    path
        Output PNG path (parent folders are created).
    value
        Per-frame value to map (see :func:`quality_map`).
    catalog
        Catalog holding the raw run, used for the raster geometry when needed.
    title
        Figure title; default: sample, uid and value.
    cmap
        Matplotlib colour map; missing or failed frames are grey.

    Returns
    -------
    pathlib.Path
        The PNG written.
    """
    import matplotlib  # lazy: matplotlib's figure and pyplot cost ~0.4 s to import

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # lazy: as above
    from matplotlib.figure import Figure  # lazy: as above

    run = get_run(catalog, run)
    geom = raster_geometry(run, catalog=catalog)
    data = quality_map(run, value, catalog=catalog)
    extent = imshow_extent(geom.get("extents"), data.shape)  # cells centred on the stage positions
    fig = Figure(figsize=(6.4, 5.2), dpi=100)
    ax = fig.add_subplot()
    cm = plt.get_cmap(cmap).with_extremes(bad="0.8")  # missing or failed frames in grey
    im = ax.imshow(np.ma.masked_invalid(data), cmap=cm, extent=extent, origin="upper",
                   interpolation="nearest", aspect="auto" if extent else "equal")
    fig.colorbar(im, ax=ax, label=_LABELS.get(value, value))
    motors = geom.get("motors") or []
    ax.set_xlabel(motors[1] if len(motors) > 1 else "column (fast axis)")
    ax.set_ylabel(motors[0] if motors else "row (slow axis)")
    start = run.metadata["start"]
    ax.set_title(title or f"{start.get('sample', '')} {start['uid'][:8]}: {_LABELS.get(value, value)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    logger.info("quality map written to %s", path)
    return path
