"""Spot descriptors of the paper (Sim, Pos, Asp, Area), their adjusted forms and the good-spot rule.

All functions are vectorized over numpy arrays (scalars work too) and follow ``SCIENCE.md``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SIM0_THRESHOLD",
    "POS_CLIP",
    "AREA_MAX_STAR",
    "sim_from_sim0",
    "pos_star",
    "pos_from_star",
    "area_star",
    "area_from_star",
    "is_good_spot",
    "sim0_from_fit",
]

#: Sim0 at or under which Sim is 0.
SIM0_THRESHOLD = 0.85
#: Pos* clips d = Pos - s to [-1.1, 1.1] px.
POS_CLIP = 1.1
#: Area* saturates at this area, px^2.
AREA_MAX_STAR = 5 * np.pi


def sim_from_sim0(sim0):
    """``Sim = 0 if Sim0 <= 0.85 else (Sim0 - 0.85) / 0.15`` (NaN gives 0).

    Parameters
    ----------
    sim0
        Cosine similarity of cutout and fitted model, in [-1, 1].

    Returns
    -------
    numpy.ndarray
        Sim in [0, 1] (values of ``sim0`` above 1 by rounding are clipped to 1).
    """
    s0 = np.asarray(sim0, dtype=np.float64)
    sim = np.where(s0 > SIM0_THRESHOLD, (s0 - SIM0_THRESHOLD) / (1 - SIM0_THRESHOLD), 0.0)
    return np.clip(np.nan_to_num(sim, nan=0.0), 0.0, 1.0)


def pos_star(d):
    """Compute the adjusted position ``Pos* = clip((d + 1.1) / 2.2, 0, 1)`` of ``d = Pos - s`` (px)."""
    d = np.asarray(d, dtype=np.float64)
    return np.clip((d + POS_CLIP) / (2 * POS_CLIP), 0.0, 1.0)


def pos_from_star(p):
    """Inverse of :func:`pos_star`: ``d = 2.2 p - 1.1`` px (exact for ``|d| < 1.1``)."""
    p = np.asarray(p, dtype=np.float64)
    return 2 * POS_CLIP * p - POS_CLIP


def area_star(area):
    """Compute the adjusted area ``Area* = min(Area / (5 pi), 1)`` (area in px^2)."""
    a = np.asarray(area, dtype=np.float64)
    return np.clip(a / AREA_MAX_STAR, 0.0, 1.0)


def area_from_star(a):
    """Inverse of :func:`area_star`: ``Area = 5 pi Area*`` px^2 (exact for ``Area < 5 pi``)."""
    return np.asarray(a, dtype=np.float64) * AREA_MAX_STAR


def is_good_spot(sim, d_row, d_col):
    """Good-quality spot: ``Sim > 0.5`` and ``||Pos - s||_2 <= 0.9`` px. NaN gives False.

    Parameters
    ----------
    sim
        Sim in [0, 1].
    d_row, d_col
        ``Pos - s``, px.

    Returns
    -------
    numpy.ndarray
        bool.
    """
    sim = np.asarray(sim, dtype=np.float64)
    dist = np.hypot(np.asarray(d_row, dtype=np.float64), np.asarray(d_col, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        return (sim > 0.5) & (dist <= 0.9)


def sim0_from_fit(cutouts: np.ndarray, model: np.ndarray, background, variant: str = "background"):
    """Cosine similarity ``Sim0`` between cutouts and their fitted models.

    Parameters
    ----------
    cutouts, model
        (N, S, S), ADU.
    background
        (N,) fitted ``beta``, ADU.
    variant
        ``"background"`` (SCIENCE.md's decision): ``cos(I - beta, M - beta)``; ``"raw"`` (the paper's
        formula): ``cos(I, M)``, which the ~1000 ADU pedestal pushes to 1 for every spot.

    Returns
    -------
    numpy.ndarray
        (N,) float64 in [-1, 1]; NaN where a vector is all zero.
    """
    i = np.asarray(cutouts, dtype=np.float64)
    m = np.asarray(model, dtype=np.float64)
    if variant == "background":
        bg = np.asarray(background, dtype=np.float64)[:, None, None]
        i, m = i - bg, m - bg
    elif variant != "raw":
        raise ValueError(f"sim_variant must be 'background' or 'raw', got {variant!r}")
    num = (i * m).sum(axis=(1, 2))
    den = np.sqrt((i * i).sum(axis=(1, 2)) * (m * m).sum(axis=(1, 2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
