"""Descriptors of a batch of cutouts from the exact Gaussian fit: the fit's half of ``characterize``.

:func:`fit_columns` is written once against the array layer (:mod:`laue_live._xp`): the CPU path
(:func:`fit_descriptors`, numpy) and the torch pipeline (:mod:`laue_live.pipeline`, cutouts on the
device) compute the same columns with it.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from laue_live._errors import FrameError
from laue_live._rules import (
    D_REPORT_RANGE,
    SATURATION,
    check_sim_variant,
    shape_descriptors,
    sim0_separable,
    sim_from_sim0,
)
from laue_live._xp import ops_of
from laue_live.spots._fit import GaussFit, fit_gaussians

__all__ = [
    "DESCRIPTOR_COLUMNS",
    "FLAG_COLUMNS",
    "check_cutouts",
    "descriptor_table",
    "fit_columns",
    "fit_descriptors",
]

log = logging.getLogger(__name__)

#: Columns of a descriptor table (the fit's or the CNN's), in order.
DESCRIPTOR_COLUMNS = ("sim0", "sim", "d_row", "d_col", "asp", "area", "sigma_row", "sigma_col", "amplitude",
                      "background", "converged", "intensity", "peak_intensity", "saturated")
#: The boolean columns of a descriptor table; every other one is float32.
FLAG_COLUMNS = ("converged", "saturated")


def check_cutouts(cutouts) -> np.ndarray:
    """Return ``cutouts`` as an (N, S, S) array of real numbers, S >= 4, finite.

    Raises
    ------
    FrameError
        Wrong dtype or shape, NaN or Inf.
    """
    c = np.asarray(cutouts)
    if c.dtype.kind not in "iuf":
        raise FrameError(f"cutouts must be real numbers, got dtype {c.dtype}")
    if c.ndim != 3 or c.shape[1] != c.shape[2] or c.shape[1] < 4:
        raise FrameError(f"cutouts must have shape (N, S, S) with S >= 4, got {c.shape}")
    if c.dtype.kind == "f" and not np.isfinite(c).all():
        raise FrameError("cutouts hold NaN or infinite values")
    return c


def fit_columns(cutouts, fit: GaussFit, *, sim_variant: str = "background", saturation: float = SATURATION,
                mask=None) -> dict:
    """Descriptor columns of fitted cutouts, on numpy or on the cutouts' torch device.

    Parameters
    ----------
    cutouts
        (N, S, S) numpy array or torch tensor, ADU, the initial peak at index ``S // 2``.
    fit
        :class:`GaussFit` of these cutouts (numpy arrays on the host).
    sim_variant
        ``"background"`` or ``"raw"`` Sim0 (:func:`laue_live._rules.sim0_from_fit`).
    saturation
        Pixel value counted as saturated, ADU.
    mask
        Optional bool (N, S, S) of the cutouts' kind, True on masked detector pixels: Sim0,
        ``intensity`` and ``saturated`` ignore them.

    Returns
    -------
    dict
        :data:`DESCRIPTOR_COLUMNS` -> (N,) array of the cutouts' kind: the float columns in float64
        (``d_row, d_col`` clipped to [-16, 15] px, ``area`` to 25 pi px^2), ``converged`` (the fit
        converged to finite parameters) and ``saturated`` as bool.
    """
    xp = ops_of(cutouts, np.float64)
    img = xp.asarray(cutouts)
    amp, beta, mr, mc, sr, sc = (xp.asarray(getattr(fit, k)) for k in
                                 ("amplitude", "background", "mu_row", "mu_col", "sigma_row", "sigma_col"))
    height = amp / (2 * math.pi * sr * sc)
    weights = None if mask is None else xp.asarray(~mask)
    sim0, intensity = sim0_separable(img, mr, mc, sr, sc, height, beta, sim_variant, weights)
    finite = xp.isfinite(xp.stack([amp, beta, mr, mc, sr, sc], 1)).all(1)
    sim0 = xp.where(finite, sim0, math.nan)
    asp, area = shape_descriptors(sr, sc)
    n, s, _ = img.shape
    return {
        "sim0": sim0,
        "sim": sim_from_sim0(sim0),
        "d_row": xp.clip(mr, *D_REPORT_RANGE),
        "d_col": xp.clip(mc, *D_REPORT_RANGE),
        "asp": asp,
        "area": area,
        "sigma_row": sr,
        "sigma_col": sc,
        "amplitude": amp,
        "background": beta,
        "converged": xp.mask(fit.converged) & finite,
        "intensity": intensity,
        "peak_intensity": img[:, s // 2, s // 2],
        "saturated": ((cutouts >= saturation) if mask is None else ((cutouts >= saturation) & ~mask)
                      ).reshape(n, s * s).any(1),
    }


def descriptor_table(columns: dict) -> pd.DataFrame:
    """Build a descriptor table from :data:`DESCRIPTOR_COLUMNS` arrays: floats in float32, flags bool."""
    return pd.DataFrame({k: np.asarray(columns[k]).astype(bool if k in FLAG_COLUMNS else np.float32)
                         for k in DESCRIPTOR_COLUMNS})


def fit_descriptors(cutouts, *, device=None, sim_variant: str = "background", saturation: float = SATURATION,
                    mask=None, **fit_options) -> pd.DataFrame:
    """Descriptors of every cutout from the exact Gaussian fit: one table row per cutout.

    Parameters
    ----------
    cutouts
        (N, S, S) array, ADU, the initial peak ``s`` at index ``(S // 2, S // 2)`` (as made by
        :func:`extract_cutouts`, S = 32).
    device
        torch device of the fit (``None``: numpy on the CPU), see :func:`fit_gaussians`.
    sim_variant
        ``"background"`` (default, SCIENCE.md): Sim0 on the background-subtracted cutout; ``"raw"``:
        the paper's formula on the raw cutout. Recorded in ``DataFrame.attrs["sim_variant"]``.
    saturation
        Pixel value (ADU) counted as saturated.
    mask
        Optional bool (N, S, S), True on masked detector pixels
        (:func:`~laue_live.spots.cutout_pixel_mask`): zero weight in the fit, left out of Sim0,
        ``intensity`` and ``saturated``.
    **fit_options
        Passed to :func:`fit_gaussians` (``dtype``, ``max_iter``, ``xtol``, ``ftol``, ``start``,
        ``backend``, ``num_threads``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`DESCRIPTOR_COLUMNS`: ``sim0, sim`` (Sim0 and Sim), ``d_row, d_col`` (Pos - s,
        px, clipped to [-16, 15]), ``asp``, ``area`` (px^2, clipped to 25 pi), ``sigma_row, sigma_col``
        (px), ``amplitude`` (alpha, ADU px^2), ``background`` (beta, ADU), ``converged``,
        ``intensity`` (sum of ``I - beta`` over the cutout, ADU), ``peak_intensity`` (raw value at
        ``s``, ADU), ``saturated`` (a pixel >= ``saturation``).

    Raises
    ------
    ValueError
        Unknown ``sim_variant``.
    FrameError
        Cutouts of the wrong shape or with NaN/Inf.
    """
    check_sim_variant(sim_variant)
    cut = check_cutouts(cutouts)
    n = len(cut)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != cut.shape:
            raise FrameError(f"cutout mask has shape {mask.shape}, cutouts {cut.shape}")
        if not mask.any():
            mask = None
    if n == 0:
        df = descriptor_table({k: np.empty(0) for k in DESCRIPTOR_COLUMNS})
    else:
        fit = fit_gaussians(cut, device=device, mask=mask, **fit_options)
        with np.errstate(all="ignore"):
            df = descriptor_table(fit_columns(cut, fit, sim_variant=sim_variant, saturation=saturation,
                                              mask=mask))
        n_bad = int((~df["converged"]).sum())
        if n_bad:
            log.debug("%d of %d fits did not converge", n_bad, n)
    df.attrs["sim_variant"] = sim_variant
    return df
