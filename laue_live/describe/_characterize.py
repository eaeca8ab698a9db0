"""Descriptors of a batch of cutouts by the method asked for: the exact fit or the spot CNN."""

from __future__ import annotations

import logging

import pandas as pd

from laue_live._errors import FrameError
from laue_live._rules import CUTOUT_SIZE, SATURATION, check_sim_variant
from laue_live.describe._steps import cnn_describer
from laue_live.spots import check_cutouts, fit_descriptors

__all__ = ["METHODS", "characterize", "check_method", "choose_method"]

#: The descriptor methods; ``"auto"`` stands for one of them (:func:`choose_method`).
METHODS = ("fit", "cnn")

log = logging.getLogger(__name__)

_FIT_KEYS = ("dtype", "max_iter", "xtol", "ftol", "start", "backend", "num_threads")


def check_method(method: str) -> str:
    """Return ``method`` if it names a descriptor method (or ``"auto"``); raise ``ValueError`` otherwise."""
    if method not in (*METHODS, "auto"):
        raise ValueError(f"unknown method {method!r}: expected 'fit', 'cnn' or 'auto'")
    return method


def _device_kind(device) -> str:
    """Return ``"cuda"`` or ``"cpu"``: the kind of ``device`` (``None``: CPU; ``"auto"``: CUDA if present)."""
    if device is None:
        return "cpu"
    if str(device) == "auto":
        import torch  # why: only "auto" needs to ask whether CUDA is present

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if str(device).startswith("cuda") else "cpu"


def choose_method(device=None, model=None) -> str:
    """Return what ``method="auto"`` means on ``device``: accuracy first, then speed, as measured.

    The model file records, from the evaluation that shipped it (``laue-live train --report``,
    ``docs/report/REPORT.md``), the method that met the accuracy targets and was faster on each kind of
    device (``info["auto"]``, e.g. ``{"cpu": "cnn"}``) and whether the CNN met the targets at all
    (``info["auto"]["accuracy_met"]``). A kind of device without a measurement (CUDA, so far) gets the
    CNN when it met the accuracy targets, else the fit. No model, an unreadable one, or a model
    without that record: the exact fit (which is always there).

    Parameters
    ----------
    device
        torch device or ``"auto"``; ``None`` is the CPU.
    model
        CNN model file (default: the shipped one).

    Returns
    -------
    str
        ``"fit"`` or ``"cnn"``.
    """
    try:
        from laue_live.cnn import default_model_path, read_metadata  # why: torch loads only for the CNN

        info = read_metadata(model or default_model_path()).get("info") or {}
    except Exception as exc:  # no CNN package or weights: the exact fit is always there
        log.debug("method='auto': no usable CNN model (%s); using the fit", exc)
        return "fit"
    auto = info.get("auto") if isinstance(info.get("auto"), dict) else {}
    kind = _device_kind(device)
    choice = auto.get(kind)
    if choice not in METHODS:
        choice = "cnn" if auto.get("accuracy_met") is True else "fit"
    log.info("method='auto' on %s: %s", kind, choice)
    return choice


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
        ``ftol``, ``start``, ``backend``, ``num_threads``) or, for the CNN, ``model`` and ``polish``
        (iterations of the exact fit started at the network's prediction; default: the model's
        recommendation, see :class:`laue_live.cnn.Predictor`).

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
    if method == "auto":
        method = choose_method(device, kw.get("model"))
        if method == "fit":
            kw.pop("model", None)
            kw.pop("polish", None)
    if method == "cnn" and cut.shape[1] != CUTOUT_SIZE:
        raise FrameError(f"the CNN reads {CUTOUT_SIZE} x {CUTOUT_SIZE} cutouts (its training window), got "
                         f"{cut.shape[1]} x {cut.shape[2]}: cut them with laue_live.spots.extract_cutouts, "
                         "or use method='fit', which takes any size")
    if method == "cnn":
        model, polish = kw.pop("model", None), kw.pop("polish", None)
        if kw:
            raise TypeError(f"characterize(method='cnn') got unexpected argument(s) {sorted(kw)}")
        return cnn_describer(model, device, polish)(cut)
    unknown = set(kw) - set(_FIT_KEYS)
    if unknown:
        raise TypeError(f"characterize(method='fit') got unexpected argument(s) {sorted(unknown)}")
    return fit_descriptors(cut, device=device, sim_variant=sim_variant, saturation=saturation, mask=mask,
                           **kw)
