"""The descriptor vector the CNN learns, ``Desc = (Sim, Pos*_row, Pos*_col, Asp, Area*)``, and back.

The transforms are those of :mod:`laue_live._rules` (``SCIENCE.md``, section "Descriptors").
:func:`cnn_columns` turns network outputs into the descriptor columns of the fit; it is written
once against the array layer (:mod:`laue_live._xp`), so that the CPU predictor (numpy) and the torch
pipeline (cutouts on the device) compute the same columns.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from laue_live._rules import (
    AREA_REPORT_MAX,
    SATURATION,
    area_from_star,
    area_star,
    pos_from_star,
    pos_star,
    sim0_from_sim,
)
from laue_live._xp import ops_of
from laue_live.spots import descriptor_table

__all__ = [
    "DESC_NAMES",
    "WIDTH_LOG_RANGE",
    "AREA_WIDTHS_FROM",
    "width_star",
    "width_from_star",
    "desc_from_table",
    "cnn_columns",
    "table_from_desc",
]

#: Names of the five network outputs, in order.
DESC_NAMES = ("sim", "pos_star_row", "pos_star_col", "asp", "area_star")
#: ln(sigma) range of the width outputs ``W*`` of networks that have them: sigma 0.25 - 8 px.
WIDTH_LOG_RANGE = (math.log(0.25), math.log(8.0))
#: Area* from which a network with width outputs reports the area of its widths instead.
AREA_WIDTHS_FROM = 0.95


def width_star(sigma):
    """``W* = (ln sigma - ln 0.25) / (ln 8 - ln 0.25)`` clipped to [0, 1] (numpy or torch; sigma in px)."""
    xp = ops_of(sigma, np.float64)
    lo, hi = WIDTH_LOG_RANGE
    return xp.clip((xp.log(xp.clip(xp.asarray(sigma), 1e-6)) - lo) / (hi - lo), 0.0, 1.0)


def width_from_star(w):
    """Inverse of :func:`width_star`: sigma in px (numpy or torch)."""
    xp = ops_of(w, np.float64)
    lo, hi = WIDTH_LOG_RANGE
    return xp.exp(lo + (hi - lo) * xp.asarray(w))


def desc_from_table(table: pd.DataFrame) -> np.ndarray:
    """Training targets ``(N, 5)`` float32 from fit columns ``sim, d_row, d_col, asp, area``.

    Non-finite descriptors (a failed fit) become the values of a bad spot: Sim 0, Pos* and Asp 0.5
    in the middle of their range, Area* 1 (the spot fills the clip); callers usually drop such rows.
    """
    sim = np.nan_to_num(table["sim"].to_numpy(np.float64), nan=0.0)
    pr = np.nan_to_num(pos_star(table["d_row"].to_numpy()), nan=0.5)
    pc = np.nan_to_num(pos_star(table["d_col"].to_numpy()), nan=0.5)
    asp = np.nan_to_num(table["asp"].to_numpy(np.float64), nan=0.5)
    ar = np.nan_to_num(area_star(table["area"].to_numpy()), nan=1.0)
    return np.clip(np.stack([sim, pr, pc, asp, ar], axis=1), 0.0, 1.0).astype(np.float32)


def cnn_columns(desc, cutouts, saturation: float = SATURATION) -> dict:
    """Descriptor columns from network outputs and the raw cutouts, on numpy or on the device.

    Predicted: ``sim``, ``d_row``, ``d_col``, ``asp``, ``area`` (through the inverse transforms;
    positions saturate at +-1.1 px and areas at 5 pi px^2, the ranges the network is trained on).
    Derived, documented in ``docs/cnn.md``:

    * ``sim0 = 0.85 + 0.15 * sim`` (for ``sim`` ~ 0 only the bound ``sim0 <= 0.85`` is known);
    * ``sigma_row, sigma_col``: ``sqrt(area * asp / pi)`` and ``sqrt(area / (pi * asp))``, the larger
      one put along the axis with the larger second moment of the background-subtracted cutout
      (the CNN predicts Asp, not the orientation);
    * ``background``: median of the cutout's border pixels; ``intensity``: sum of the cutout minus
      that background; ``amplitude`` (alpha, the Gaussian's integral) = ``intensity``;
      ``peak_intensity``, ``saturated`` from the raw pixels; ``converged`` is always true.

    Parameters
    ----------
    desc
        (N, 5) network outputs ``(Sim, Pos*_row, Pos*_col, Asp, Area*)`` in [0, 1] (numpy or torch),
        or (N, 7) with the width outputs ``W*_row, W*_col`` of a :class:`~laue_live.cnn.SpotNet`
        after them: then the wider axis is the one they say, and from ``Area* >= 0.95`` on the
        area is that of the predicted widths (up to 25 pi) instead of the saturated ``Area*``.
    cutouts
        (N, H, W) raw cutouts of the same kind, ADU, the initial peak at ``(H // 2, W // 2)``.
    saturation
        Pixel value counted as saturated, ADU.

    Returns
    -------
    dict
        :data:`laue_live.spots.DESCRIPTOR_COLUMNS` -> (N,) arrays of the kind of ``desc``: floats in
        float64 (``peak_intensity`` in the cutouts' dtype), ``converged`` and ``saturated`` bool.
    """
    xp = ops_of(desc, np.float64)
    desc = xp.asarray(desc)
    n, h, w = cutouts.shape
    sim = desc[:, 0]
    d_row, d_col = pos_from_star(desc[:, 1]), pos_from_star(desc[:, 2])
    asp = xp.clip(desc[:, 3], 1e-3, 1.0)
    area = area_from_star(xp.clip(desc[:, 4], 1e-4, 1.0))
    border = xp.cat([cutouts[:, 0, :], cutouts[:, -1, :], cutouts[:, 1:-1, 0], cutouts[:, 1:-1, -1]], 1)
    background = xp.asarray(xp.median_rows(border))  # a robust stand-in for the fit's beta
    intensity = xp.row_sums(cutouts) - background * (h * w)
    if desc.shape[1] >= 7:  # a network with width outputs: it says which axis is wider
        s_row, s_col = width_from_star(desc[:, 5]), width_from_star(desc[:, 6])
        row_wide = s_row >= s_col
        # Area* saturates at 5 pi: from Area* >= 0.95 on, the area of the predicted widths (<= 25 pi)
        wide = xp.clip(math.pi * s_row * s_col, None, AREA_REPORT_MAX)
        area = xp.where(desc[:, 4] >= AREA_WIDTHS_FROM, xp.maximum(wide, area), area)
    else:  # which axis is wider: second moments of the background-subtracted cutout about Pos
        x = xp.clip(xp.asarray(cutouts) - background[:, None, None], 0.0)
        r = xp.asarray(np.arange(h))[None, :] - (h // 2 + d_row[:, None])
        c = xp.asarray(np.arange(w))[None, :] - (w // 2 + d_col[:, None])
        row_wide = xp.einsum("nij,ni->n", x, r * r) >= xp.einsum("nij,nj->n", x, c * c)
    s_small = xp.sqrt(area * asp / math.pi)
    s_large = xp.sqrt(area / (math.pi * asp))
    return {
        "sim0": sim0_from_sim(sim),
        "sim": sim,
        "d_row": d_row,
        "d_col": d_col,
        "asp": asp,
        "area": area,
        "sigma_row": xp.where(row_wide, s_large, s_small),
        "sigma_col": xp.where(row_wide, s_small, s_large),
        "amplitude": intensity,
        "background": background,
        "converged": xp.full_bool((n,), True),
        "intensity": intensity,
        "peak_intensity": cutouts[:, h // 2, w // 2],
        "saturated": (cutouts.reshape(n, h * w) >= saturation).any(1),
    }


def table_from_desc(desc: np.ndarray, cutouts: np.ndarray) -> pd.DataFrame:
    """Build the descriptor table of ``characterize`` from predicted ``Desc`` ``(N, 5)`` and raw cutouts.

    The columns of :func:`cnn_columns`, floats in float32.
    """
    return descriptor_table(cnn_columns(np.asarray(desc, dtype=np.float64), np.asarray(cutouts)))
