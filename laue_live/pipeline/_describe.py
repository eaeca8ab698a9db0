"""Descriptor columns computed on the device, the same quantities as :func:`laue_live.characterize`.

Only small ``(N, k)`` arrays leave the device: the cutouts never travel to the host. Each function
mirrors one reference in :mod:`laue_live.spots` or :mod:`laue_live.cnn` (the tests compare them):

* :func:`fit_columns` - ``characterize(method="fit")``: Sim0 from the separable model
  ``beta + A u v^T`` (``u^T I v`` and 1-D sums), as the reference computes it;
* :func:`cnn_columns` - ``laue_live.cnn.table_from_desc`` (inverse transforms, border-median
  background, orientation of the widths from second moments).

Every column is returned in float64 (``HOST_FLOAT_COLUMNS`` order) and the flags as bool; the
host rounds to the schema's float32 exactly as the reference does.
"""

from __future__ import annotations

import math

import torch

__all__ = ["HOST_FLOAT_COLUMNS", "fit_columns", "cnn_columns", "sim_from_sim0_torch"]

#: Float columns of the descriptor block, in the order of the (N, 12) float64 array sent to the host.
HOST_FLOAT_COLUMNS = (
    "sim0",
    "sim",
    "d_row",
    "d_col",
    "asp",
    "area",
    "sigma_row",
    "sigma_col",
    "amplitude",
    "background",
    "intensity",
    "peak_intensity",
)

_SIM0_THRESHOLD = 0.85
_AREA_REPORT_MAX = 25 * math.pi
_D_RANGE = (-16.0, 15.0)
_POS_CLIP = 1.1
_AREA_CLIP = 5 * math.pi
_AREA_WIDTHS_FROM = 0.95  # as laue_live.cnn's AREA_WIDTHS_FROM
_W_LO, _W_HI = math.log(0.25), math.log(8.0)  # ln(sigma) range of the width outputs, as laue_live.cnn's


def sim_from_sim0_torch(sim0: torch.Tensor) -> torch.Tensor:
    """``Sim = 0 if Sim0 <= 0.85 else (Sim0 - 0.85) / 0.15``, NaN -> 0, clipped to [0, 1]."""
    sim = torch.where(
        sim0 > _SIM0_THRESHOLD, (sim0 - _SIM0_THRESHOLD) / (1 - _SIM0_THRESHOLD), torch.zeros_like(sim0)
    )
    return torch.nan_to_num(sim, nan=0.0).clamp(0.0, 1.0)


def fit_columns(
    cut: torch.Tensor, fit, *, sim_variant: str = "background", saturation: float = 65535.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Descriptor block of the exact fit.

    Parameters
    ----------
    cut
        (N, S, S) float32 cutouts on the device, ADU.
    fit
        :class:`laue_live.spots.GaussFit` of these cutouts (numpy, host).
    sim_variant
        ``"background"`` (SCIENCE.md) or ``"raw"``: see :func:`laue_live.spots.sim0_from_fit`.
    saturation
        Pixel value counted as saturated, ADU.

    Returns
    -------
    floats : torch.Tensor
        float64 (N, 12), columns :data:`HOST_FLOAT_COLUMNS`.
    flags : torch.Tensor
        bool (N, 2): ``converged``, ``saturated``.
    """
    dev = cut.device
    n, s, _ = cut.shape
    f64 = torch.float64

    def t(a):
        return torch.as_tensor(a, dtype=f64).to(dev, non_blocking=True)

    amp, beta, mr, mc, sr, sc = (
        t(getattr(fit, k)) for k in ("amplitude", "background", "mu_row", "mu_col", "sigma_row", "sigma_col")
    )
    conv = torch.as_tensor(fit.converged).to(dev)
    i64 = cut.to(f64)
    x = torch.arange(s, dtype=f64, device=dev) - s // 2
    u = torch.exp(-0.5 * ((x - mr[:, None]) / sr[:, None]) ** 2)
    v = torch.exp(-0.5 * ((x - mc[:, None]) / sc[:, None]) ** 2)
    height = amp / (2 * math.pi * sr * sc)
    # separable model M = beta + A u v^T: every sum reduces to u^T I v, sum I, sum I^2 and 1-D sums
    # (the reference's formula, laue_live.spots._characterize._sim0_separable)
    npix = s * s
    s2 = (i64 * i64).sum(dim=(1, 2))
    tot = i64.sum(dim=(1, 2))
    uiv = (u * torch.bmm(i64, v[:, :, None])[:, :, 0]).sum(1)
    su, sv = u.sum(1), v.sum(1)
    g2 = height * height * (u * u).sum(1) * (v * v).sum(1)
    if sim_variant == "background":
        num = height * (uiv - beta * su * sv)
        ii = s2 - 2 * beta * tot + npix * beta * beta
        mm = g2
    elif sim_variant == "raw":
        num = beta * tot + height * uiv
        ii = s2
        mm = npix * beta * beta + 2 * beta * height * su * sv + g2
    else:
        raise ValueError(f"sim_variant must be 'background' or 'raw', got {sim_variant!r}")
    den = torch.sqrt(ii.clamp_min(0) * mm)
    finite = torch.isfinite(torch.stack([amp, beta, mr, mc, sr, sc], 1)).all(1)
    nan = torch.full_like(num, float("nan"))
    sim0 = torch.where((den > 0) & finite, num / torch.where(den > 0, den, torch.ones_like(den)), nan)
    sim0 = sim0.clamp(-1.0, 1.0)
    floats = torch.stack(
        [
            sim0,
            sim_from_sim0_torch(sim0),
            mr.clamp(*_D_RANGE),
            mc.clamp(*_D_RANGE),
            torch.minimum(sr, sc) / torch.maximum(sr, sc),
            (math.pi * sr * sc).clamp(max=_AREA_REPORT_MAX),
            sr,
            sc,
            amp,
            beta,
            tot - beta * npix,
            i64[:, s // 2, s // 2],
        ],
        dim=1,
    )
    saturated = (cut >= saturation).flatten(1).any(1)
    return floats, torch.stack([conv & finite, saturated], dim=1)


def _median_lower_upper(vals: torch.Tensor) -> torch.Tensor:
    """Numpy's median along dim 1 (mean of the two middle values for an even count), no NaN."""
    srt = vals.sort(dim=1).values
    k = vals.shape[1]
    return (srt[:, (k - 1) // 2] + srt[:, k // 2]) / 2


def cnn_columns(
    desc: torch.Tensor, cut: torch.Tensor, saturation: float = 65535.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Descriptor block from network outputs, as :func:`laue_live.cnn.table_from_desc` builds it.

    Parameters
    ----------
    desc
        (N, 5) network output ``(Sim, Pos*_row, Pos*_col, Asp, Area*)`` in [0, 1], or (N, 7) with
        the width outputs ``W*_row, W*_col`` after them.
    cut
        (N, S, S) float32 raw cutouts on the same device, ADU.
    saturation
        Saturated pixel value, ADU (the CNN reference uses the 16-bit maximum).

    Returns
    -------
    floats, flags
        As :func:`fit_columns`; ``converged`` is always true.
    """
    f64 = torch.float64
    desc = desc.to(f64)
    n, h, w = cut.shape
    sim = desc[:, 0]
    d_row = desc[:, 1] * 2 * _POS_CLIP - _POS_CLIP
    d_col = desc[:, 2] * 2 * _POS_CLIP - _POS_CLIP
    asp = desc[:, 3].clamp(1e-3, 1.0)
    area = desc[:, 4].clamp(1e-4, 1.0) * _AREA_CLIP
    border = torch.cat([cut[:, 0, :], cut[:, -1, :], cut[:, 1:-1, 0], cut[:, 1:-1, -1]], dim=1)
    bg32 = _median_lower_upper(border)  # float32, as numpy's median of a float32 array
    bg = bg32.to(f64)
    flat = cut.reshape(n, -1)
    intensity = flat.to(f64).sum(1) - bg * (h * w)
    if desc.shape[1] >= 7:  # width outputs: the wider axis, and the area beyond Area*'s range
        s_row = torch.exp(_W_LO + (_W_HI - _W_LO) * desc[:, 5])
        s_col = torch.exp(_W_LO + (_W_HI - _W_LO) * desc[:, 6])
        row_wide = s_row >= s_col
        wide_area = torch.minimum(torch.maximum(math.pi * s_row * s_col, area), torch.full_like(area, _AREA_REPORT_MAX))
        area = torch.where(desc[:, 4] >= _AREA_WIDTHS_FROM, wide_area, area)
    else:  # which axis is wider: second moments of the background-subtracted cutout about Pos
        xpos = (cut - bg32[:, None, None]).clamp_min(0).to(f64)
        r = torch.arange(h, dtype=f64, device=cut.device)[None, :] - (h // 2 + d_row[:, None])
        c = torch.arange(w, dtype=f64, device=cut.device)[None, :] - (w // 2 + d_col[:, None])
        var_r = torch.einsum("nij,ni->n", xpos, r * r)
        var_c = torch.einsum("nij,nj->n", xpos, c * c)
        row_wide = var_r >= var_c
    s_small = torch.sqrt(area * asp / math.pi)
    s_large = torch.sqrt(area / (math.pi * asp))
    floats = torch.stack(
        [
            0.85 + 0.15 * sim,
            sim,
            d_row,
            d_col,
            asp,
            area,
            torch.where(row_wide, s_large, s_small),
            torch.where(row_wide, s_small, s_large),
            intensity,
            bg,
            intensity,
            cut[:, h // 2, w // 2].to(f64),
        ],
        dim=1,
    )
    flags = torch.stack([torch.ones(n, dtype=torch.bool, device=cut.device), (flat >= saturation).any(1)], 1)
    return floats, flags
