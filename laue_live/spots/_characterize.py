"""Descriptors of a batch of cutouts, from the exact Gaussian fit or (lazily) from the CNN."""

from __future__ import annotations

import logging

import numpy as np

from laue_live._errors import FrameError, ModelError
from laue_live.spots._descriptors import sim_from_sim0
from laue_live.spots._fit import fit_gaussians

__all__ = ["characterize", "DESCRIPTOR_COLUMNS", "AREA_REPORT_MAX", "D_REPORT_RANGE"]

log = logging.getLogger(__name__)

#: Columns of the table :func:`characterize` returns, in order.
DESCRIPTOR_COLUMNS = ("sim0", "sim", "d_row", "d_col", "asp", "area", "sigma_row", "sigma_col", "amplitude",
                      "background", "converged", "intensity", "peak_intensity", "saturated")
#: Reporting clip of ``area`` (SCIENCE.md), px^2.
AREA_REPORT_MAX = 25 * np.pi
#: Reporting clip of ``d_row``, ``d_col`` (SCIENCE.md): the cutout, px.
D_REPORT_RANGE = (-16.0, 15.0)

_FIT_KEYS = ("dtype", "max_iter", "xtol", "ftol", "start", "backend", "num_threads")


def _check_cutouts(cutouts) -> np.ndarray:
    c = np.asarray(cutouts)
    if c.dtype.kind not in "iuf":
        raise FrameError(f"cutouts must be real numbers, got dtype {c.dtype}")
    if c.ndim != 3 or c.shape[1] != c.shape[2] or c.shape[1] < 4:
        raise FrameError(f"cutouts must have shape (N, S, S) with S >= 4, got {c.shape}")
    if c.dtype.kind == "f" and not np.isfinite(c).all():
        raise FrameError("cutouts hold NaN or infinite values")
    return c


def characterize(cutouts, method: str = "fit", *, device=None, sim_variant: str = "background",
                 saturation: float = 65535.0, **kw):
    """Descriptors of every cutout: one table row per cutout.

    Parameters
    ----------
    cutouts
        (N, S, S) array, ADU, the initial peak ``s`` at index ``(S // 2, S // 2)`` (as made by
        :func:`extract_cutouts`, S = 32).
    method
        ``"fit"``: exact least-squares Gaussian fit (:func:`fit_gaussians`); ``"cnn"``: the network of
        :mod:`laue_live.cnn` (``model=`` selects the weights).
    device
        torch device for the fit or the network (``None``: CPU for the fit, ``"auto"`` for the CNN).
    sim_variant
        ``"background"`` (default, SCIENCE.md): Sim0 on the background-subtracted cutout; ``"raw"``:
        the paper's formula on the raw cutout. Recorded in ``DataFrame.attrs["sim_variant"]``.
    saturation
        Pixel value (ADU) counted as saturated.
    **kw
        Passed to :func:`fit_gaussians` (``dtype``, ``max_iter``, ``xtol``, ``ftol``, ``start``,
        ``backend``, ``num_threads``) or, for
        the CNN, ``model`` and ``polish`` (iterations of the fit started at the network's
        prediction; default: the model's recommendation, see :class:`laue_live.cnn.Predictor`).

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
        Unknown ``method`` or ``sim_variant``.
    FrameError
        Cutouts of the wrong shape or with NaN/Inf.
    ModelError
        ``method="cnn"`` but the CNN or its weights are unavailable.
    """
    import pandas as pd

    if method not in ("fit", "cnn"):
        raise ValueError(f"unknown method {method!r}: expected 'fit' or 'cnn'")
    if sim_variant not in ("background", "raw"):
        raise ValueError(f"sim_variant must be 'background' or 'raw', got {sim_variant!r}")
    cut = _check_cutouts(cutouts)
    if method == "cnn":
        return _characterize_cnn(cut, device=device, **kw)
    unknown = set(kw) - set(_FIT_KEYS)
    if unknown:
        raise TypeError(f"characterize(method='fit') got unexpected argument(s) {sorted(unknown)}")
    n, s, _ = cut.shape
    if n == 0:
        df = pd.DataFrame({k: np.empty(0, dtype=bool if k in ("converged", "saturated") else np.float32)
                           for k in DESCRIPTOR_COLUMNS})
        df.attrs["sim_variant"] = sim_variant
        return df
    fit = fit_gaussians(cut, device=device, **kw)
    with np.errstate(all="ignore"):
        sim0, intensity = _sim0_separable(cut, fit, sim_variant)
        finite = np.isfinite(np.c_[fit.amplitude, fit.background, fit.mu_row, fit.mu_col, fit.sigma_row,
                                   fit.sigma_col]).all(axis=1)
        sim0 = np.where(finite, sim0, np.nan)
        sr, sc = fit.sigma_row, fit.sigma_col
        asp = np.minimum(sr, sc) / np.maximum(sr, sc)
        area = np.minimum(np.pi * sr * sc, AREA_REPORT_MAX)
    df = pd.DataFrame({
        "sim0": sim0.astype(np.float32),
        "sim": sim_from_sim0(sim0).astype(np.float32),
        "d_row": np.clip(fit.mu_row, *D_REPORT_RANGE).astype(np.float32),
        "d_col": np.clip(fit.mu_col, *D_REPORT_RANGE).astype(np.float32),
        "asp": asp.astype(np.float32),
        "area": area.astype(np.float32),
        "sigma_row": sr.astype(np.float32),
        "sigma_col": sc.astype(np.float32),
        "amplitude": fit.amplitude.astype(np.float32),
        "background": fit.background.astype(np.float32),
        "converged": fit.converged & finite,
        "intensity": intensity.astype(np.float32),
        "peak_intensity": cut[:, s // 2, s // 2].astype(np.float32),
        "saturated": (cut >= saturation).any(axis=(1, 2)),
    })
    df.attrs["sim_variant"] = sim_variant
    n_bad = int((~df["converged"]).sum())
    if n_bad:
        log.debug("%d of %d fits did not converge", n_bad, n)
    return df


def _sim0_separable(cut: np.ndarray, fit, variant: str):
    """Sim0 and the integrated intensity without forming model images.

    With ``M = beta + A u v^T`` (``A`` the peak height, ``u``, ``v`` the 1-D profiles), every sum of
    the cosine similarity reduces to ``u^T I v``, ``sum I``, ``sum I^2`` and the 1-D sums of ``u``,
    ``v``: the same numbers as :func:`sim0_from_fit` on :func:`gaussian_model` (to rounding), in a
    third of the passes over the cutouts.

    Returns
    -------
    tuple of numpy.ndarray
        Sim0 (N,) (NaN where a vector is all zero) and ``sum (I - beta)`` (N,), ADU.
    """
    n, s, _ = cut.shape
    npix = s * s
    img = cut.astype(np.float64)
    x = np.arange(s, dtype=np.float64) - s // 2
    u = np.exp(-0.5 * ((x - fit.mu_row[:, None]) / fit.sigma_row[:, None]) ** 2)
    v = np.exp(-0.5 * ((x - fit.mu_col[:, None]) / fit.sigma_col[:, None]) ** 2)
    a, beta = fit.peak_height, fit.background
    flat = img.reshape(n, 1, npix)
    s2 = (flat @ flat.swapaxes(1, 2)).reshape(n)  # sum I^2
    s1 = img.sum(axis=(1, 2))
    uiv = np.einsum("ni,ni->n", u, (img @ v[:, :, None])[:, :, 0])  # u^T I v
    su, sv = u.sum(axis=1), v.sum(axis=1)
    g2 = a * a * (u * u).sum(axis=1) * (v * v).sum(axis=1)  # |A u v^T|^2
    if variant == "background":
        num = a * (uiv - beta * su * sv)
        ii = s2 - 2 * beta * s1 + npix * beta * beta
        mm = g2
    else:
        num = beta * s1 + a * uiv
        ii = s2
        mm = npix * beta * beta + 2 * beta * a * su * sv + g2
    den = np.sqrt(np.clip(ii, 0, None) * mm)
    sim0 = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(sim0, -1.0, 1.0), s1 - npix * beta


def _characterize_cnn(cut: np.ndarray, *, device=None, model=None, polish=None, **kw):
    try:
        from laue_live.cnn import get_predictor
    except ImportError as exc:
        raise ModelError(f"method='cnn' needs laue_live.cnn, which cannot be imported: {exc}") from exc
    if kw:
        raise TypeError(f"characterize(method='cnn') got unexpected argument(s) {sorted(kw)}")
    return get_predictor(model=model, device=device or "auto", polish=polish).predict(cut)
