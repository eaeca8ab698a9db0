"""The descriptor vector the CNN learns, ``Desc = (Sim, Pos*_row, Pos*_col, Asp, Area*)``, and back.

The forward and inverse transforms are those of ``SCIENCE.md`` (section "Descriptors"); they are the
same formulas as ``laue_live.spots``' ``pos_star`` / ``area_star`` and their inverses (the tests check
that they agree), kept here as vectorised numpy so that the CNN does not depend on the fit module.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "DESC_NAMES",
    "POS_CLIP",
    "AREA_CLIP",
    "desc_from_table",
    "table_from_desc",
    "cutout_columns",
    "good_mask",
]

#: Names of the five network outputs, in order.
DESC_NAMES = ("sim", "pos_star_row", "pos_star_col", "asp", "area_star")
#: Pos* clips Pos - s to [-POS_CLIP, POS_CLIP] px.
POS_CLIP = 1.1
#: Area* clips the area to AREA_CLIP px^2 (5 pi).
AREA_CLIP = 5 * np.pi
#: ln(sigma) range of the width outputs ``W*`` of networks that have them (sigma 0.25 - 8 px).
WIDTH_LOG_RANGE = (float(np.log(0.25)), float(np.log(8.0)))
#: Area* from which a network with width outputs reports the area of its widths instead.
AREA_WIDTHS_FROM = 0.95
#: Reporting clip of the area (SCIENCE.md), px^2.
AREA_REPORT_MAX = 25 * np.pi
#: Saturation value of the 16-bit detector, ADU.
SATURATION = 65535


def _pos_star(d: np.ndarray) -> np.ndarray:
    return np.clip((np.asarray(d, dtype=np.float64) + POS_CLIP) / (2 * POS_CLIP), 0.0, 1.0)


def _area_star(area: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(area, dtype=np.float64) / AREA_CLIP, 0.0, 1.0)


def desc_from_table(table: pd.DataFrame) -> np.ndarray:
    """Training targets ``(N, 5)`` float32 from fit columns ``sim, d_row, d_col, asp, area``.

    Non-finite descriptors (a failed fit) become the values of a bad spot: Sim 0, Pos* and Asp 0.5
    in the middle of their range, Area* 1 (the spot fills the clip); callers usually drop such rows.
    """
    sim = np.nan_to_num(table["sim"].to_numpy(np.float64), nan=0.0)
    pr = np.nan_to_num(_pos_star(table["d_row"].to_numpy()), nan=0.5)
    pc = np.nan_to_num(_pos_star(table["d_col"].to_numpy()), nan=0.5)
    asp = np.nan_to_num(table["asp"].to_numpy(np.float64), nan=0.5)
    ar = np.nan_to_num(_area_star(table["area"].to_numpy()), nan=1.0)
    return np.clip(np.stack([sim, pr, pc, asp, ar], axis=1), 0.0, 1.0).astype(np.float32)


def good_mask(sim: np.ndarray, d_row: np.ndarray, d_col: np.ndarray) -> np.ndarray:
    """Good-quality spot: ``Sim > 0.5`` and ``||Pos - s||_2 <= 0.9`` px (paper section 3.2)."""
    return (np.asarray(sim) > 0.5) & (np.hypot(d_row, d_col) <= 0.9)


def cutout_columns(cutouts: np.ndarray, background: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Columns measured directly on raw cutouts ``(N, H, W)`` (ADU).

    ``background`` (ADU, one per cutout) defaults to the median of the cutout's border pixels, a
    robust stand-in for the fit's beta. Returns ``background``, ``intensity`` (sum of the
    background-subtracted pixels), ``peak_intensity`` (raw value at the initial peak ``s``, cutout
    index (16, 16), as the fit's table) and ``saturated`` (a pixel >= 65535).
    """
    c = np.asarray(cutouts)
    if background is None:
        border = np.concatenate([c[:, 0, :], c[:, -1, :], c[:, 1:-1, 0], c[:, 1:-1, -1]], axis=1)
        background = np.median(border, axis=1)
    background = np.asarray(background, dtype=np.float64)
    total = c.reshape(len(c), c.shape[1] * c.shape[2]).sum(axis=1, dtype=np.float64)
    return {
        "background": background.astype(np.float32),
        "intensity": (total - background * c.shape[1] * c.shape[2]).astype(np.float32),
        "peak_intensity": c[:, c.shape[1] // 2, c.shape[2] // 2].astype(np.float32),
        "saturated": (c.reshape(len(c), c.shape[1] * c.shape[2]) >= SATURATION).any(axis=1),
    }


def _row_wider(
    cutouts: np.ndarray, background: np.ndarray, d_row: np.ndarray, d_col: np.ndarray
) -> np.ndarray:
    """Tell where the spot is wider along rows than along columns (second moments about Pos)."""
    n, h, w = cutouts.shape
    x = np.clip(cutouts.astype(np.float32) - background[:, None, None], 0, None)
    r = np.arange(h, dtype=np.float32)[None, :] - (h // 2 + d_row[:, None])
    c = np.arange(w, dtype=np.float32)[None, :] - (w // 2 + d_col[:, None])
    var_r = np.einsum("nij,ni->n", x, r * r)
    var_c = np.einsum("nij,nj->n", x, c * c)
    return var_r >= var_c


def table_from_desc(desc: np.ndarray, cutouts: np.ndarray) -> pd.DataFrame:
    """Build the spot columns of ``characterize`` from predicted ``Desc`` and the raw cutouts.

    ``desc`` is ``(N, 5)`` (``Desc``) or ``(N, 7)`` (``Desc`` then the width outputs ``W*_row,
    W*_col`` of a :class:`~laue_live.cnn.SpotNet`). Predicted: ``sim``, ``d_row``, ``d_col``,
    ``asp``, ``area`` (through the inverse transforms; positions saturate at +-1.1 px and areas at
    5 pi px^2, the ranges the network is trained on; with width outputs, an ``Area*`` of 0.95 or
    more gives the area of the predicted widths instead, up to 25 pi). Derived, documented in
    ``docs/cnn.md``:

    * ``sim0 = 0.85 + 0.15 * sim`` (for ``sim`` ~ 0 only the bound ``sim0 <= 0.85`` is known);
    * ``sigma_row, sigma_col``: ``sqrt(area * asp / pi)`` and ``sqrt(area / (pi * asp))``, the larger
      one along the axis the width outputs call wider, or (without width outputs) along the axis
      with the larger second moment of the background-subtracted cutout;
    * ``background``: median of the cutout's border pixels; ``intensity``: sum of the cutout minus
      that background; ``amplitude`` (alpha, the Gaussian's integral) = ``intensity``;
      ``peak_intensity``, ``saturated`` from the raw pixels; ``converged`` is always true.
    """
    desc = np.asarray(desc, dtype=np.float64)
    cutouts = np.asarray(cutouts)
    sim = desc[:, 0]
    d_row = desc[:, 1] * 2 * POS_CLIP - POS_CLIP
    d_col = desc[:, 2] * 2 * POS_CLIP - POS_CLIP
    asp = np.clip(desc[:, 3], 1e-3, 1.0)
    area = np.clip(desc[:, 4], 1e-4, 1.0) * AREA_CLIP
    cols = cutout_columns(cutouts)
    if desc.shape[1] >= 7:  # a network with width outputs: widths along rows and columns predicted
        lo, hi = WIDTH_LOG_RANGE
        s_row, s_col = np.exp(lo + (hi - lo) * desc[:, 5]), np.exp(lo + (hi - lo) * desc[:, 6])
        row_wide = s_row >= s_col
        # Area* saturates at 5 pi: beyond it the widths tell the area (up to the report clip 25 pi)
        wide = desc[:, 4] >= AREA_WIDTHS_FROM
        area = np.where(wide, np.clip(np.pi * s_row * s_col, area, AREA_REPORT_MAX), area)
    elif len(cutouts):
        row_wide = _row_wider(cutouts, cols["background"].astype(np.float64), d_row, d_col)
    else:
        row_wide = np.zeros(0, dtype=bool)
    s_small = np.sqrt(area * asp / np.pi)
    s_large = np.sqrt(area / (np.pi * asp))
    return pd.DataFrame(
        {
            "sim0": (0.85 + 0.15 * sim).astype(np.float32),
            "sim": sim.astype(np.float32),
            "d_row": d_row.astype(np.float32),
            "d_col": d_col.astype(np.float32),
            "asp": asp.astype(np.float32),
            "area": area.astype(np.float32),
            "sigma_row": np.where(row_wide, s_large, s_small).astype(np.float32),
            "sigma_col": np.where(row_wide, s_small, s_large).astype(np.float32),
            "amplitude": cols["intensity"],
            "background": cols["background"],
            "converged": np.ones(len(desc), dtype=bool),
            "intensity": cols["intensity"],
            "peak_intensity": cols["peak_intensity"],
            "saturated": cols["saturated"],
        }
    )
