"""Quality map of a raster scan as a PNG (matplotlib, Agg backend: no window, works headless)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from laue_live._run import imshow_extent
from laue_live.catalog._query import quality_map, raster_geometry
from laue_live.catalog._runs import get_run

__all__ = ["plot_quality_map", "value_label", "axis_labels"]

logger = logging.getLogger(__name__)

_LABELS = {"n_good": "good spots per frame", "n_spots": "spots per frame", "mean_sim": "mean Sim",
           "seconds": "analysis time per frame (s)", "good_fraction": "fraction of good spots",
           "n_indexed": "spots indexed per frame"}


def value_label(value: str) -> str:
    """Return the colour-bar label of a map value, with its unit (``laue_live.indexing.GRAIN_MAP_VALUES``)."""
    if value in _LABELS:
        return _LABELS[value]
    from laue_live.indexing import GRAIN_MAP_VALUES  # why: the indexer loads with a grain map

    return GRAIN_MAP_VALUES[value].axis_label if value in GRAIN_MAP_VALUES else value


def axis_labels(geom: dict) -> tuple[str, str]:
    """Return ``(x, y)`` axis labels of a raster map: the fast and slow motors, with their units if known."""
    motors = geom.get("motors") or []
    unit = geom.get("unit_label") or ""
    suffix = f" ({unit})" if unit else ""
    return ((motors[1] if len(motors) > 1 else "column (fast axis)") + suffix,
            (motors[0] if motors else "row (slow axis)") + suffix)


def plot_quality_map(run, path: str | Path, value: str = "n_good", *, catalog=None,
                     title: str | None = None, cmap: str | None = None, **map_options) -> Path:
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
        Matplotlib colour map (default viridis; a diverging one centred on 0 for strain components);
        missing or failed frames are grey.
    **map_options
        ``grain``, ``reference`` of :func:`quality_map` (grain values).

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
    data = quality_map(run, value, catalog=catalog, **map_options)
    extent = imshow_extent(geom.get("extents"), data.shape)  # cells centred on the stage positions
    fig = Figure(figsize=(6.4, 5.2), dpi=100)
    ax = fig.add_subplot()
    label = value_label(value)
    diverging = value.startswith("strain_")
    # missing or failed frames in grey
    cm = plt.get_cmap(cmap or ("RdBu_r" if diverging else "viridis")).with_extremes(bad="0.8")
    clim = None
    if diverging and np.isfinite(data).any():
        half = float(np.nanmax(np.abs(data))) or 1.0
        clim = (-half, half)
    im = ax.imshow(np.ma.masked_invalid(data), cmap=cm, extent=extent, origin="upper",
                   interpolation="nearest", aspect="auto" if extent else "equal",
                   **({"vmin": clim[0], "vmax": clim[1]} if clim else {}))
    fig.colorbar(im, ax=ax, label=label)
    xlabel, ylabel = axis_labels(geom)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    start = run.metadata["start"]
    ax.set_title(title or f"{start.get('sample', '')} {start['uid'][:8]}: {label}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    logger.info("quality map written to %s", path)
    return path
