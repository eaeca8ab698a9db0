"""The paper's rules, in one place: the cutout window, Sim0 and Sim, Pos* and Area*, the good-spot rule.

``SCIENCE.md`` defines them (after the paper, sections 2-3). Everything that computes, learns or
reports a descriptor uses these names: the exact fit (:mod:`laue_live.spots`), the CNN's targets
and inverse transforms (:mod:`laue_live.cnn`), the torch pipeline (:mod:`laue_live.pipeline`),
the components of double spots (:mod:`laue_live.doubles`), the evaluation reports and the
column descriptions of :mod:`laue_live._schema`.

The transforms take numpy arrays (or scalars, returned as float64 numpy values) or torch tensors
(returned as tensors of the same dtype and device); :mod:`laue_live._xp` supplies the operations.
:func:`is_good_spot` decides on the host's spot tables (numpy).
"""

from __future__ import annotations

import math

import numpy as np

from laue_live._xp import ops_of

__all__ = [
    "CUTOUT_SIZE",
    "CUTOUT_CENTRE",
    "SIM0_THRESHOLD",
    "SIM0_SPAN",
    "GOOD_SIM",
    "GOOD_DISTANCE",
    "POS_CLIP",
    "AREA_CLIP",
    "AREA_REPORT_MAX",
    "D_REPORT_RANGE",
    "SIM_VARIANTS",
    "SATURATION",
    "sim_from_sim0",
    "sim0_from_sim",
    "pos_star",
    "pos_from_star",
    "area_star",
    "area_from_star",
    "is_good_spot",
    "shape_descriptors",
    "check_sim_variant",
    "cosine_similarity",
    "sim0_from_fit",
    "sim0_separable",
]

#: Side of a cutout ``A(s)``, px: the window of the fit and the CNN's input.
CUTOUT_SIZE = 32
#: Index of the initial peak ``s`` in a cutout (row and column): rows ``s - 16 .. s + 15``.
CUTOUT_CENTRE = CUTOUT_SIZE // 2
#: Sim0 at or under which Sim is 0.
SIM0_THRESHOLD = 0.85
#: Range of Sim0 mapped onto Sim in [0, 1]: ``Sim = (Sim0 - 0.85) / 0.15``.
SIM0_SPAN = 1 - SIM0_THRESHOLD
#: A good spot has Sim above this.
GOOD_SIM = 0.5
#: ... and its sub-pixel position within this distance of the initial peak, ``||Pos - s||_2``, px.
GOOD_DISTANCE = 0.9
#: Pos* clips ``d = Pos - s`` to [-1.1, 1.1] px.
POS_CLIP = 1.1
#: Area* saturates at this area (5 pi), px^2.
AREA_CLIP = 5 * math.pi
#: Reporting clip of ``area`` (25 pi), px^2.
AREA_REPORT_MAX = 25 * math.pi
#: Reporting clip of ``d_row``, ``d_col``: the cutout, [-16, 15] px.
D_REPORT_RANGE = (float(-CUTOUT_CENTRE), float(CUTOUT_SIZE - 1 - CUTOUT_CENTRE))
#: Variants of Sim0: SCIENCE.md's background-subtracted cosine, the paper's raw one.
SIM_VARIANTS = ("background", "raw")
#: Pixel value counted as saturated by default: the top of a 16-bit detector, ADU.
SATURATION = 65535.0


def sim_from_sim0(sim0):
    """``Sim = 0 if Sim0 <= 0.85 else (Sim0 - 0.85) / 0.15``, NaN -> 0, clipped to [0, 1].

    Parameters
    ----------
    sim0
        Cosine similarity of cutout and fitted model, in [-1, 1] (numpy, scalar or tensor).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Sim in [0, 1] (values of ``sim0`` above 1 by rounding are clipped to 1).
    """
    xp = ops_of(sim0, np.float64, keep_tensor_dtype=True)
    s0 = xp.asarray(sim0)
    sim = xp.where(s0 > SIM0_THRESHOLD, (s0 - SIM0_THRESHOLD) / SIM0_SPAN, 0.0)
    return xp.clip(xp.nan_to_num(sim), 0.0, 1.0)


def sim0_from_sim(sim):
    """Inverse of :func:`sim_from_sim0` where Sim > 0: ``Sim0 = 0.85 + 0.15 Sim``.

    For Sim ~ 0 only the bound ``Sim0 <= 0.85`` is known (the CNN predicts Sim, not Sim0).
    """
    xp = ops_of(sim, np.float64, keep_tensor_dtype=True)
    return SIM0_THRESHOLD + SIM0_SPAN * xp.asarray(sim)


def pos_star(d):
    """Compute the adjusted position ``Pos* = clip((d + 1.1) / 2.2, 0, 1)`` of ``d = Pos - s`` (px)."""
    xp = ops_of(d, np.float64, keep_tensor_dtype=True)
    return xp.clip((xp.asarray(d) + POS_CLIP) / (2 * POS_CLIP), 0.0, 1.0)


def pos_from_star(p):
    """Inverse of :func:`pos_star`: ``d = 2.2 p - 1.1`` px (exact for ``|d| < 1.1``)."""
    xp = ops_of(p, np.float64, keep_tensor_dtype=True)
    return 2 * POS_CLIP * xp.asarray(p) - POS_CLIP


def area_star(area):
    """Compute the adjusted area ``Area* = min(Area / (5 pi), 1)`` (area in px^2)."""
    xp = ops_of(area, np.float64, keep_tensor_dtype=True)
    return xp.clip(xp.asarray(area) / AREA_CLIP, 0.0, 1.0)


def area_from_star(a):
    """Inverse of :func:`area_star`: ``Area = 5 pi Area*`` px^2 (exact for ``Area < 5 pi``)."""
    xp = ops_of(a, np.float64, keep_tensor_dtype=True)
    return xp.asarray(a) * AREA_CLIP


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
        bool (compared in float64, whatever the dtype of the inputs).
    """
    sim = np.asarray(sim, dtype=np.float64)
    dist = np.hypot(np.asarray(d_row, dtype=np.float64), np.asarray(d_col, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        return (sim > GOOD_SIM) & (dist <= GOOD_DISTANCE)


def shape_descriptors(sigma_row, sigma_col):
    """``Asp = min(sigma) / max(sigma)`` and ``Area = pi sigma_row sigma_col`` clipped to 25 pi px^2.

    Parameters
    ----------
    sigma_row, sigma_col
        Gaussian standard deviations, px (numpy or torch, same kind).

    Returns
    -------
    tuple
        ``(asp, area)``, area in px^2.
    """
    xp = ops_of(sigma_row)
    asp = xp.minimum(sigma_row, sigma_col) / xp.maximum(sigma_row, sigma_col)
    return asp, xp.clip(math.pi * sigma_row * sigma_col, hi=AREA_REPORT_MAX)


def check_sim_variant(variant: str) -> str:
    """Return ``variant`` if it names a Sim0 variant; raise ``ValueError`` otherwise."""
    if variant not in SIM_VARIANTS:
        raise ValueError(f"sim_variant must be 'background' or 'raw', got {variant!r}")
    return variant


def cosine_similarity(a, b):
    """Cosine similarity of each pair of images ``a[k]``, ``b[k]`` (N, ...); NaN where one is all zero."""
    xp = ops_of(a, np.float64)
    a, b = xp.asarray(a), xp.asarray(b)
    a, b = a.reshape(len(a), math.prod(a.shape[1:])), b.reshape(len(b), math.prod(b.shape[1:]))
    den = xp.sqrt((a * a).sum(1) * (b * b).sum(1))
    return xp.where(den > 0, (a * b).sum(1) / xp.where(den > 0, den, 1.0), math.nan)


def sim0_from_fit(cutouts, model, background, variant: str = "background"):
    """Sim0 of cutouts and their fitted model images.

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
    numpy.ndarray or torch.Tensor
        (N,) float64 in [-1, 1]; NaN where a vector is all zero.
    """
    check_sim_variant(variant)
    xp = ops_of(cutouts, np.float64)
    i, m = xp.asarray(cutouts), xp.asarray(model)
    if variant == "background":
        bg = xp.asarray(background)[:, None, None]
        i, m = i - bg, m - bg
    return cosine_similarity(i, m)


def sim0_separable(cutouts, mu_row, mu_col, sigma_row, sigma_col, height, background,
                   variant: str = "background", weights=None):
    """Sim0 and the integrated intensity of cutouts against the separable model ``beta + A u v^T``.

    ``u``, ``v`` are the 1-D Gaussian profiles along rows and columns. Every sum of the cosine
    similarity reduces to ``u^T I v``, ``sum I``, ``sum I^2`` and the 1-D sums of ``u``, ``v``: the
    numbers of :func:`sim0_from_fit` on the model image (to rounding), in a third of the passes
    over the cutouts and without forming model images.

    Parameters
    ----------
    cutouts
        (N, S, S) numpy array or torch tensor, ADU; the initial peak at index ``S // 2``.
    mu_row, mu_col
        Centre relative to the initial peak, px.
    sigma_row, sigma_col
        Standard deviations, px.
    height
        Peak height above the background ``A = alpha / (2 pi s_r s_c)``, ADU.
    background
        ``beta``, ADU.
    variant
        ``"background"`` or ``"raw"``, see :func:`sim0_from_fit`.
    weights
        Optional (N, S, S) 0/1 pixel weights of the same kind (masked detector pixels 0): every
        sum runs over the weighted pixels (``u^T W v``, ``(u u)^T W (v v)``, ``sum W``).

    Returns
    -------
    tuple
        Sim0 (N,) float64 in [-1, 1] (NaN where a vector is all zero) and ``sum (I - beta)`` (N,),
        ADU; numpy or torch like ``cutouts``.
    """
    check_sim_variant(variant)
    xp = ops_of(cutouts, np.float64)
    img = xp.asarray(cutouts)
    mu_row, mu_col, sigma_row, sigma_col, a, beta = (
        xp.asarray(v) for v in (mu_row, mu_col, sigma_row, sigma_col, height, background))
    n, s, _ = img.shape
    npix = s * s
    x = xp.asarray(np.arange(s)) - s // 2
    u = xp.exp(-0.5 * ((x - mu_row[:, None]) / sigma_row[:, None]) ** 2)
    v = xp.exp(-0.5 * ((x - mu_col[:, None]) / sigma_col[:, None]) ** 2)
    s2 = xp.sum_squares(img)  # sum I^2
    s1 = img.sum(axis=(1, 2))
    uiv = xp.rowdot(u, (img @ v[:, :, None])[:, :, 0])  # u^T I v
    suv = u.sum(axis=1) * v.sum(axis=1)
    g2 = a * a * (u * u).sum(axis=1) * (v * v).sum(axis=1)  # |A u v^T|^2
    if weights is not None:
        w = xp.asarray(weights)
        iw = img * w
        s2 = (iw * img).sum(axis=(1, 2))
        s1 = iw.sum(axis=(1, 2))
        uiv = xp.rowdot(u, (iw @ v[:, :, None])[:, :, 0])
        suv = xp.rowdot(u, (w @ v[:, :, None])[:, :, 0])  # u^T W v
        g2 = a * a * xp.rowdot(u * u, (w @ (v * v)[:, :, None])[:, :, 0])
        npix = w.sum(axis=(1, 2))
    if variant == "background":
        num = a * (uiv - beta * suv)
        ii = s2 - 2 * beta * s1 + npix * beta * beta
        mm = g2
    else:
        num = beta * s1 + a * uiv
        ii = s2
        mm = npix * beta * beta + 2 * beta * a * suv + g2
    den = xp.sqrt(xp.clip(ii, 0.0) * mm)
    sim0 = xp.where(den > 0, num / xp.where(den > 0, den, 1.0), math.nan)
    return xp.clip(sim0, -1.0, 1.0), s1 - npix * beta
