"""Descriptors of a batch of cutouts by the method asked for: the exact fit or the spot CNN."""

from __future__ import annotations

import pandas as pd

from laue_live._errors import FrameError
from laue_live._rules import CUTOUT_SIZE, SATURATION, check_sim_variant
from laue_live.describe._steps import cnn_describer
from laue_live.spots import check_cutouts, fit_descriptors

__all__ = ["METHODS", "characterize", "check_method"]

#: The descriptor methods.
METHODS = ("fit", "cnn")

_FIT_KEYS = ("dtype", "max_iter", "xtol", "ftol", "start", "backend", "num_threads")


def check_method(method: str) -> str:
    """Return ``method`` if it names a descriptor method; raise ``ValueError`` otherwise."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: expected 'fit' or 'cnn'")
    return method


def characterize(cutouts, method: str = "fit", *, device=None, sim_variant: str = "background",
                 saturation: float = SATURATION, mask=None, **kw) -> pd.DataFrame:
    """Descriptors of every cutout: one table row per cutout.

    Parameters
    ----------
    cutouts
        (N, S, S) array, ADU, the initial peak ``s`` at index ``(S // 2, S // 2)`` (as made by
        :func:`laue_live.spots.extract_cutouts`, S = 32). The fit takes any S >= 4; the CNN
        needs S = 32.
    method
        ``"fit"``: exact least-squares Gaussian fit (:func:`laue_live.spots.fit_descriptors`);
        ``"cnn"``: the network of :mod:`laue_live.cnn` (``model=`` selects the weights).
    device
        torch device for the fit or the network (``None``: CPU for the fit, ``"auto"`` for the CNN).
    sim_variant
        ``"background"`` (default, SCIENCE.md): Sim0 on the background-subtracted cutout; ``"raw"``:
        the paper's formula on the raw cutout. Recorded in ``DataFrame.attrs["sim_variant"]``.
    saturation
        Pixel value (ADU) counted as saturated.
    mask
        Optional bool (N, S, S), True on masked detector pixels: the fit gives them zero weight and
        Sim0, ``intensity``, ``saturated`` ignore them. The CNN sees the cutouts as they are (masked
        pixels already filled with the local median by :func:`laue_live.spots.extract_cutouts`).
    **kw
        Passed to :func:`laue_live.spots.fit_gaussians` (``dtype``, ``max_iter``, ``xtol``,
        ``ftol``, ``start``, ``backend``, ``num_threads``) or, for the CNN, ``model``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`laue_live.spots.DESCRIPTOR_COLUMNS`: ``sim0, sim`` (Sim0 and Sim),
        ``d_row, d_col`` (Pos - s, px, clipped to [-16, 15]), ``asp``, ``area`` (px^2, clipped to
        25 pi), ``sigma_row, sigma_col`` (px), ``amplitude`` (alpha, ADU px^2), ``background``
        (beta, ADU), ``converged``, ``intensity`` (sum of ``I - beta`` over the cutout, ADU),
        ``peak_intensity`` (raw value at ``s``, ADU), ``saturated`` (a pixel >= ``saturation``).

    Raises
    ------
    ValueError
        Unknown ``method`` or ``sim_variant``.
    FrameError
        Cutouts of the wrong shape or with NaN/Inf.
    ModelError
        ``method="cnn"`` but the CNN or its weights are unavailable.
    """
    check_method(method)
    check_sim_variant(sim_variant)
    cut = check_cutouts(cutouts)
    if method == "cnn" and cut.shape[1] != CUTOUT_SIZE:
        raise FrameError(f"the CNN reads {CUTOUT_SIZE} x {CUTOUT_SIZE} cutouts (its training window), got "
                         f"{cut.shape[1]} x {cut.shape[2]}: cut them with laue_live.spots.extract_cutouts, "
                         "or use method='fit', which takes any size")
    if method == "cnn":
        model = kw.pop("model", None)
        if kw:
            raise TypeError(f"characterize(method='cnn') got unexpected argument(s) {sorted(kw)}")
        return cnn_describer(model, device)(cut)
    unknown = set(kw) - set(_FIT_KEYS)
    if unknown:
        raise TypeError(f"characterize(method='fit') got unexpected argument(s) {sorted(unknown)}")
    return fit_descriptors(cut, device=device, sim_variant=sim_variant, saturation=saturation, mask=mask,
                           **kw)
