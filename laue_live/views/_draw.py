"""A detector frame with its spots, drawn as what they are: the fitted ellipses, by quality, with counts.

One drawing for every picture of a frame in matplotlib: the live frame view
(:class:`~laue_live.views.LiveSpotFrame`), the demo's picture and ``laue-live analyze --plot``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.collections import EllipseCollection
from matplotlib.colors import LogNorm, to_rgba
from matplotlib.lines import Line2D

from laue_live._schema import SPOT_COLUMNS

__all__ = ["SPOT_STYLE", "ELLIPSE_SIGMAS", "draw_frame", "spot_counts"]

#: Colour of each quality class (the same words as the printed counts: good and bad).
SPOT_STYLE = {"good": "#1a9850", "bad": "#d73027", "saturated": "#fdae61", "double": "#4575b4"}
#: The drawn ellipse reaches this many Gaussian sigmas from the spot's centre along each axis.
ELLIPSE_SIGMAS = 3.0
#: Size (points^2) of the ring drawn around each spot, so that it stays visible on a whole 2k x 2k
#: frame, where a spot's ellipse is a few screen pixels; zoomed in, the ellipse shows its shape.
_RING_SIZE = 70

_UNITS = {c.name: c.unit for c in SPOT_COLUMNS}


def _flag(table: Mapping[str, Any], name: str, n: int) -> np.ndarray:
    values = table.get(name) if hasattr(table, "get") else None
    if values is None:
        return np.zeros(n, bool)
    return np.asarray(values).astype(bool)


def spot_counts(table: Mapping[str, Any]) -> dict[str, int]:
    """Return the spot counts as a frame's summary prints them.

    ``spots``, ``good``, ``bad`` (= spots - good), and among them ``edge``, ``masked`` (where the
    table has that flag), ``saturated`` and ``double`` (components of double spots).
    """
    n = len(np.asarray(table["row"]))
    good = int(_flag(table, "good", n).sum())
    component = np.asarray(table["component"]) if "component" in table else np.zeros(n)
    return {"spots": n, "good": good, "bad": n - good, "edge": int(_flag(table, "edge", n).sum()),
            "masked": int(_flag(table, "masked", n).sum()),
            "saturated": int(_flag(table, "saturated", n).sum()), "double": int((component > 0).sum())}


def draw_frame(ax, image: np.ndarray | None, table: Mapping[str, Any] | None, *, color_by: str = "good",
               colorbars: dict | None = None, legend: bool = True) -> dict:
    """Draw a frame (log grey scale, labelled colour bar) and its spots on a matplotlib Axes.

    Each spot is the ellipse of its fitted Gaussian, :data:`ELLIPSE_SIGMAS` sigmas along rows and
    columns, inside a ring of fixed screen size that keeps it visible on a whole frame, green when
    good and red when bad; the legend counts partition the spots as the printed summary does (good + bad =
    all), and says how many of them are at the frame edge (dashed), saturated (orange cross) or
    components of double spots (blue dot).

    Parameters
    ----------
    ax
        matplotlib Axes.
    image
        The frame, ADU (``None``: the spots on an empty detector area).
    table
        The frame's spot table (DataFrame or mapping column -> array), or ``None``.
    color_by
        ``"good"`` (quality classes) or a spot column (``"sim"``, ``"intensity"``...) for a colour scale.
    colorbars
        The colour bars of an earlier drawing on these axes (this function's return value), updated
        instead of adding more.
    legend
        Draw the legend (quality classes only).

    Returns
    -------
    dict
        The colour bars drawn, by name (``"image"``, ``"spots"``), to pass back as ``colorbars``.
    """
    colorbars = dict(colorbars or {})
    if image is not None:
        img = np.asarray(image, dtype=np.float32)
        finite = img[np.isfinite(img)]
        base = float(np.median(finite)) if finite.size else 0.0
        above = np.clip(img - base, 1.0, None)
        # white up to the upper quartile of the pixels (the background and its noise), black at the
        # brightest 0.1 %: the spots stand out on a log scale
        low = max(float(np.percentile(above, 75)), 1.0)
        high = max(float(np.percentile(above, 99.9)), 10.0 * low)
        im = ax.imshow(above, cmap="gray_r", norm=LogNorm(vmin=low, vmax=high, clip=True), origin="upper",
                       interpolation="nearest")
        label = "ADU above the frame's median (log scale)"
        if "image" in colorbars:
            colorbars["image"].update_normal(im)
        else:
            colorbars["image"] = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label=label)
    else:
        ax.set_facecolor("0.95")
        if not ax.yaxis_inverted():
            ax.invert_yaxis()
    if table is not None and len(np.asarray(table["row"])):
        _draw_spots(ax, table, color_by, colorbars, legend)
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")
    return colorbars


def _draw_spots(ax, table, color_by: str, colorbars: dict, legend: bool) -> None:
    rows, cols = np.asarray(table["row"], float), np.asarray(table["col"], float)
    n = len(rows)
    sr = np.asarray(table["sigma_row"], float) if "sigma_row" in table else np.ones(n)
    sc = np.asarray(table["sigma_col"], float) if "sigma_col" in table else np.ones(n)
    sr, sc = np.nan_to_num(sr, nan=1.0), np.nan_to_num(sc, nan=1.0)
    heights, widths = 2 * ELLIPSE_SIGMAS * sr, 2 * ELLIPSE_SIGMAS * sc
    offsets = np.column_stack([cols, rows])
    good = _flag(table, "good", n)
    edge = _flag(table, "edge", n)
    if color_by == "good":
        colors = np.where(good[:, None], np.array(to_rgba(SPOT_STYLE["good"]))[None],
                          np.array(to_rgba(SPOT_STYLE["bad"]))[None])
    else:
        values = np.asarray(table[color_by], float)
        scale = ax.scatter([], [], c=[], cmap="plasma")  # a mappable for the colour bar
        scale.set_array(values)
        scale.autoscale()
        colors = scale.to_rgba(values)
        label = f"{color_by} ({_UNITS[color_by]})" if _UNITS.get(color_by) else color_by
        if "spots" in colorbars:
            colorbars["spots"].update_normal(scale)
        else:
            colorbars["spots"] = ax.figure.colorbar(scale, ax=ax, fraction=0.046, pad=0.02, label=label)
    masked = _flag(table, "masked", n)
    styles = ["--" if e else ":" if m else "-" for e, m in zip(edge, masked, strict=True)]
    ellipses = EllipseCollection(widths, heights, np.zeros(n), units="xy", offsets=offsets,
                                 offset_transform=ax.transData, facecolors="none", linewidths=1.2,
                                 edgecolors=colors, linestyles=styles)
    ax.scatter(cols, rows, s=_RING_SIZE, facecolors="none", edgecolors=colors, linewidths=0.8,
               linestyles=styles, alpha=0.9)
    ax.add_collection(ellipses)
    saturated = _flag(table, "saturated", n)
    if saturated.any():
        ax.plot(cols[saturated], rows[saturated], "+", color=SPOT_STYLE["saturated"], ms=7, mew=1.2)
    component = np.asarray(table["component"]) if "component" in table else np.zeros(n)
    double = component > 0
    if double.any():
        ax.plot(cols[double], rows[double], ".", color=SPOT_STYLE["double"], ms=4)
    if legend and color_by == "good":
        counts = spot_counts(table)
        handles = [_ring(SPOT_STYLE["good"], f"good ({counts['good']})"),
                   _ring(SPOT_STYLE["bad"], f"bad ({counts['bad']})")]
        if counts["edge"]:
            handles.append(Line2D([], [], color="0.3", ls="--", lw=1.1,
                                  label=f"of these, at the frame edge ({counts['edge']})"))
        if counts["masked"]:
            handles.append(Line2D([], [], color="0.3", ls=":", lw=1.1,
                                  label=f"of these, touching the mask ({counts['masked']})"))
        if counts["saturated"]:
            handles.append(Line2D([], [], ls="none", marker="+", color=SPOT_STYLE["saturated"], mew=1.2,
                                  label=f"of these, saturated ({counts['saturated']})"))
        if counts["double"]:
            handles.append(Line2D([], [], ls="none", marker=".", color=SPOT_STYLE["double"],
                                  label=f"of these, double-spot components ({counts['double']})"))
        ax.legend(handles=handles, loc="upper right", fontsize="x-small", framealpha=0.85,
                  title=f"{counts['spots']} spots (ellipses: {ELLIPSE_SIGMAS:g}σ of each Gaussian)",
                  title_fontsize="x-small")


def _ring(color, label: str) -> Line2D:
    return Line2D([], [], ls="none", marker="o", mfc="none", mec=color, mew=1.1, ms=8, label=label)
