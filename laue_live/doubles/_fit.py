"""Exact least-squares fit of one or two axis-aligned Gaussians plus a background, batched in torch.

The model on a cutout of shape (n_rows, n_cols), pixel centres at integer ``(r, c)``::

    M(r, c) = beta + sum_k alpha_k / (2 pi s_rk s_ck)
                     * exp(-((r - m_rk)^2 / s_rk^2 + (c - m_ck)^2 / s_ck^2) / 2)

(the single-spot model of SCIENCE.md, summed over K = 1 or 2 components). The optimiser is a batched
Levenberg-Marquardt with an analytic Jacobian in an internal parameterisation that keeps amplitudes
and widths positive (``log alpha``, ``log s``); it reaches the same least-squares minimum as
:func:`scipy.optimize.least_squares` on the same model (checked by the tests).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from laue_live._rules import CUTOUT_SIZE

__all__ = [
    "TwoGaussianFit",
    "fit_two_gaussians",
    "fit_one_gaussian",
    "gaussian_model",
    "PARAM_NAMES",
]

logger = logging.getLogger(__name__)

#: Names of the 11 physical parameters of the two-component model, in order. Positions are in cutout
#: pixels (0-based, pixel centres at integers), widths are standard deviations in pixels, amplitudes
#: are integrated intensities in ADU px^2 and ``background`` is in ADU.
PARAM_NAMES = ("amp1", "row1", "col1", "sigma_row1", "sigma_col1",
               "amp2", "row2", "col2", "sigma_row2", "sigma_col2", "background")

_LOG_SIG_MIN, _LOG_SIG_MAX = math.log(0.15), math.log(12.0)
_LOG_AMP_MIN = math.log(1e-3)


@dataclass
class TwoGaussianFit:
    """Result of :func:`fit_two_gaussians` (or :func:`fit_one_gaussian`) on a batch of cutouts.

    Attributes
    ----------
    params
        (n, 5 K + 1) physical parameters, per component ``(amp, row, col, sigma_row, sigma_col)``
        then ``background`` (see :data:`PARAM_NAMES`). Component 1 is the brighter (larger ``amp``).
    cost
        (n,) ``0.5 * sum(residual^2)`` at the optimum, ADU^2.
    converged
        (n,) the optimiser stopped on a tolerance (not on the iteration limit) with finite values.
    n_iter
        (n,) iterations used.
    """

    params: np.ndarray
    cost: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray

    @property
    def n_components(self) -> int:
        """Number of Gaussian components of the model (1 or 2)."""
        return (self.params.shape[1] - 1) // 5


def _grid(shape, device, dtype):
    r = torch.arange(shape[0], device=device, dtype=dtype)
    c = torch.arange(shape[1], device=device, dtype=dtype)
    rr, cc = torch.meshgrid(r, c, indexing="ij")
    return rr.reshape(-1), cc.reshape(-1)


def _model_jac(q: torch.Tensor, rr: torch.Tensor, cc: torch.Tensor, jac: bool = True):
    """Model (B, N) and Jacobian (B, N, P) w.r.t. the internal parameters ``q`` (B, 5K+1)."""
    k = (q.shape[1] - 1) // 5
    model = q[:, -1:].expand(-1, rr.shape[0]).clone()
    cols = []
    for i in range(k):
        la, mr, mc, lsr, lsc = (q[:, 5 * i + j, None] for j in range(5))
        sr, sc = torch.exp(lsr), torch.exp(lsc)
        u = (rr[None] - mr) / sr
        v = (cc[None] - mc) / sc
        comp = torch.exp(la - lsr - lsc - math.log(2 * math.pi) - 0.5 * (u * u + v * v))
        model = model + comp
        if jac:
            cols += [comp, comp * u / sr, comp * v / sc, comp * (u * u - 1), comp * (v * v - 1)]
    if not jac:
        return model, None
    cols.append(torch.ones_like(model))
    return model, torch.stack(cols, dim=-1)


def gaussian_model(params, shape=(CUTOUT_SIZE, CUTOUT_SIZE)) -> np.ndarray:
    """Evaluate the K-component model for physical parameters.

    Parameters
    ----------
    params
        (n, 5 K + 1) physical parameters (see :data:`PARAM_NAMES`); K = 1 or 2.
    shape
        Cutout shape (rows, cols).

    Returns
    -------
    numpy.ndarray
        (n, rows, cols) model images in ADU.
    """
    p = np.atleast_2d(np.asarray(params, dtype=np.float64))
    q = torch.from_numpy(_to_internal(p))
    rr, cc = _grid(shape, "cpu", torch.float64)
    m, _ = _model_jac(q, rr, cc, jac=False)
    return m.reshape(-1, *shape).numpy()


def _to_internal(p: np.ndarray) -> np.ndarray:
    q = p.copy()
    k = (p.shape[1] - 1) // 5
    for i in range(k):
        q[:, 5 * i] = np.log(np.maximum(p[:, 5 * i], 1e-3))
        q[:, 5 * i + 3] = np.log(np.clip(p[:, 5 * i + 3], 0.15, 12.0))
        q[:, 5 * i + 4] = np.log(np.clip(p[:, 5 * i + 4], 0.15, 12.0))
    return q


def _to_physical(q: np.ndarray) -> np.ndarray:
    p = q.copy()
    k = (q.shape[1] - 1) // 5
    for i in range(k):
        for j in (0, 3, 4):
            p[:, 5 * i + j] = np.exp(q[:, 5 * i + j])
    return p


def _clamp(q: torch.Tensor, shape) -> torch.Tensor:
    k = (q.shape[1] - 1) // 5
    q = q.clone()
    for i in range(k):
        q[:, 5 * i] = q[:, 5 * i].clamp(min=_LOG_AMP_MIN, max=40.0)
        q[:, 5 * i + 1] = q[:, 5 * i + 1].clamp(-8.0, shape[0] + 7.0)
        q[:, 5 * i + 2] = q[:, 5 * i + 2].clamp(-8.0, shape[1] + 7.0)
        q[:, 5 * i + 3] = q[:, 5 * i + 3].clamp(_LOG_SIG_MIN, _LOG_SIG_MAX)
        q[:, 5 * i + 4] = q[:, 5 * i + 4].clamp(_LOG_SIG_MIN, _LOG_SIG_MAX)
    return q


def _levenberg_marquardt(data: torch.Tensor, q0: torch.Tensor, shape, max_iter: int,
                         ftol: float, xtol: float):
    """Batched LM on flattened cutouts ``data`` (B, N) from internal start ``q0`` (B, P).

    Only the cutouts still iterating are computed on (the batch shrinks as they converge).
    """
    rr, cc = _grid(shape, data.device, data.dtype)
    q = _clamp(q0, shape)
    model, _ = _model_jac(q, rr, cc, jac=False)
    cost = 0.5 * ((model - data) ** 2).sum(-1)
    lam = torch.full_like(cost, 1e-3)
    n = q.shape[1]
    eye = torch.eye(n, device=data.device, dtype=data.dtype)
    done = torch.zeros(q.shape[0], dtype=torch.bool, device=data.device)
    n_iter = torch.zeros(q.shape[0], dtype=torch.int64, device=data.device)
    idx = torch.nonzero(torch.isfinite(cost))[:, 0]
    # state of the active subset
    qa, ca, la, da = q[idx], cost[idx], lam[idx], data[idx]
    ma, ja = _model_jac(qa, rr, cc)
    ra = ma - da
    for _ in range(max_iter):
        if idx.numel() == 0:
            break
        jt = ja.transpose(1, 2)
        jtj = jt @ ja
        g = (jt @ ra[..., None])[..., 0]
        diag = torch.diagonal(jtj, dim1=1, dim2=2).clamp(min=1e-12)
        a = jtj + la[:, None, None] * torch.diag_embed(diag) + 1e-12 * eye
        delta, info = torch.linalg.solve_ex(a, -g)
        delta = torch.where(torch.isfinite(delta) & (info[:, None] == 0), delta, torch.zeros_like(delta))
        q_new = _clamp(qa + delta, shape)
        m_new, j_new = _model_jac(q_new, rr, cc)
        r_new = m_new - da
        c_new = 0.5 * (r_new * r_new).sum(-1)
        accept = torch.isfinite(c_new) & (c_new < ca)
        step = (q_new - qa).norm(dim=-1)
        gain = ca - c_new
        qa = torch.where(accept[:, None], q_new, qa)
        ra = torch.where(accept[:, None], r_new, ra)
        ja = torch.where(accept[:, None, None], j_new, ja)
        small = accept & ((gain <= ftol * ca) | (step <= xtol * (qa.norm(dim=-1) + xtol)))
        ca = torch.where(accept, c_new, ca)
        la = torch.where(accept, la * 0.3, la * 10.0).clamp(1e-12, 1e16)
        stuck = ~accept & (la >= 1e12)  # no step lowers the cost: at the minimum
        fin = small | stuck
        n_iter[idx] += 1
        q[idx], cost[idx] = qa, ca
        if bool(fin.any()):
            done[idx[fin]] = True
            keep = ~fin
            idx, qa, ca, la = idx[keep], qa[keep], ca[keep], la[keep]
            da, ra, ja = da[keep], ra[keep], ja[keep]
    return q, cost, done & torch.isfinite(cost), n_iter


def _as_batch(cutouts, device, dtype) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(cutouts), device=device).to(dtype)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"cutouts must be (n, rows, cols), got shape {tuple(x.shape)}")
    return x


def _single_start(x: torch.Tensor) -> torch.Tensor:
    """Moment-based start (internal parameters) of a single Gaussian on each cutout (B, R, C)."""
    b, nr, nc = x.shape
    border = torch.cat([x[:, :2].reshape(b, -1), x[:, -2:].reshape(b, -1),
                        x[:, :, :2].reshape(b, -1), x[:, :, -2:].reshape(b, -1)], dim=1)
    beta = border.median(dim=1).values
    # brightest pixel of the central region (cutouts are centred on the initial peak)
    r0, r1, c0, c1 = nr // 2 - 6, nr // 2 + 6, nc // 2 - 6, nc // 2 + 6
    centre = x[:, r0:r1, c0:c1].reshape(b, -1)
    idx = centre.argmax(dim=1)
    pr = (idx // (c1 - c0) + r0).to(x.dtype)
    pc = (idx % (c1 - c0) + c0).to(x.dtype)
    rr, cc = _grid((nr, nc), x.device, x.dtype)
    w = (x.reshape(b, -1) - beta[:, None]).clamp(min=0)
    near = ((rr[None] - pr[:, None]) ** 2 + (cc[None] - pc[:, None]) ** 2) <= 16.0
    w = w * near
    tot = w.sum(-1).clamp(min=1e-6)
    mr = (w * rr).sum(-1) / tot
    mc = (w * cc).sum(-1) / tot
    vr = (w * (rr - mr[:, None]) ** 2).sum(-1) / tot
    vc = (w * (cc - mc[:, None]) ** 2).sum(-1) / tot
    sr = vr.clamp(0.16, 9.0).sqrt()
    sc = vc.clamp(0.16, 9.0).sqrt()
    amp = tot.clamp(min=1.0)
    return torch.stack([amp.log(), pr, pc, sr.log(), sc.log(), beta], dim=1)


def fit_one_gaussian(cutouts, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64,
                     max_iter: int = 100, ftol: float = 1e-10, xtol: float = 1e-8) -> TwoGaussianFit:
    """Fit one axis-aligned Gaussian plus background to each cutout (the single-spot model).

    Parameters
    ----------
    cutouts
        (n, rows, cols) array of cutouts in ADU (background included).
    device, dtype
        Torch device and floating dtype of the computation.
    max_iter, ftol, xtol
        Iteration limit and relative tolerances on the cost and on the parameter step.

    Returns
    -------
    TwoGaussianFit
        With ``params`` of shape (n, 6): amp, row, col, sigma_row, sigma_col, background.
    """
    x = _as_batch(cutouts, device, dtype)
    shape = tuple(x.shape[1:])
    q0 = _single_start(x)
    q, cost, conv, nit = _levenberg_marquardt(x.reshape(x.shape[0], -1), q0, shape, max_iter, ftol, xtol)
    return TwoGaussianFit(_to_physical(q.cpu().double().numpy()), cost.cpu().double().numpy(),
                          conv.cpu().numpy(), nit.cpu().numpy())


def _two_starts(x: torch.Tensor, q1: torch.Tensor) -> list[torch.Tensor]:
    """Three start points (internal parameters) for the two-component fit, from the single fit ``q1``."""
    b, nr, nc = x.shape
    rr, cc = _grid((nr, nc), x.device, x.dtype)
    m1, _ = _model_jac(q1, rr, cc, jac=False)
    res = (x.reshape(b, -1) - m1).reshape(b, 1, nr, nc)
    res = torch.nn.functional.avg_pool2d(res, 3, stride=1, padding=1, count_include_pad=False).reshape(b, -1)
    mr1, mc1 = q1[:, 1], q1[:, 2]
    d2 = (rr[None] - mr1[:, None]) ** 2 + (cc[None] - mc1[:, None]) ** 2
    res = torch.where(d2 <= 100.0, res, torch.full_like(res, -torch.inf))
    idx = res.argmax(dim=1)
    rmax = res.gather(1, idx[:, None])[:, 0].clamp(min=1.0)
    pr, pc = rr[idx], cc[idx]
    la1, lsr, lsc, beta = q1[:, 0], q1[:, 3], q1[:, 4], q1[:, 5]
    lsr_c, lsc_c = lsr.clamp(max=math.log(2.0)), lsc.clamp(max=math.log(2.0))
    la2 = (rmax * 2 * math.pi * lsr_c.exp() * lsc_c.exp()).log()
    # A: single fit + a second component at the residual maximum (unequal doubles)
    start_a = torch.stack([la1, mr1, mc1, lsr, lsc, la2, pr, pc, lsr_c, lsc_c, beta], 1)
    # B: two halves at the residual maximum and its mirror through the single centre (equal doubles)
    half = la1 - math.log(2.0)
    start_b = torch.stack([half, 2 * mr1 - pr, 2 * mc1 - pc, lsr_c, lsc_c,
                           half, pr, pc, lsr_c, lsc_c, beta], 1)
    # C: split of the single Gaussian along its wider axis (close doubles)
    sr, sc = lsr.exp(), lsc.exp()
    wide_r = sr >= sc
    t = torch.where(wide_r, sr, sc) * 0.8
    narrow = torch.where(wide_r, sc, sr).log()
    dr = torch.where(wide_r, t, torch.zeros_like(t))
    dc = torch.where(wide_r, torch.zeros_like(t), t)
    lsr_s = torch.where(wide_r, narrow, lsr)
    lsc_s = torch.where(wide_r, lsc, narrow)
    start_c = torch.stack([half, mr1 - dr, mc1 - dc, lsr_s, lsc_s,
                           half, mr1 + dr, mc1 + dc, lsr_s, lsc_s, beta], 1)
    return [start_a, start_b, start_c]


def _order_brighter_first(p: np.ndarray) -> np.ndarray:
    swap = p[:, 5] > p[:, 0]
    out = p.copy()
    out[swap, 0:5], out[swap, 5:10] = p[swap, 5:10], p[swap, 0:5]
    return out


def fit_two_gaussians(cutouts, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64,
                      start=None, max_iter: int = 200, ftol: float = 1e-10,
                      xtol: float = 1e-8) -> TwoGaussianFit:
    """Fit two axis-aligned Gaussians plus one background to each cutout (the double-spot model).

    Without ``start``, each cutout is first fitted with one Gaussian; the two-component fit then
    runs from three start points (single fit + residual maximum; two halves mirrored through the
    single centre; the single split along its wider axis), all in one batch, and keeps the lowest cost.

    Parameters
    ----------
    cutouts
        (n, rows, cols) array of cutouts in ADU (background included).
    device, dtype
        Torch device and floating dtype of the computation (float64 for ground truth; float32 is
        enough to polish a network's prediction).
    start
        Optional (n, 11) physical start parameters (e.g. a network's prediction); then only this
        start is used.
    max_iter, ftol, xtol
        Iteration limit and relative tolerances on the cost and on the parameter step.

    Returns
    -------
    TwoGaussianFit
        ``params`` (n, 11) in :data:`PARAM_NAMES` order, component 1 the brighter.
    """
    x = _as_batch(cutouts, device, dtype)
    b = x.shape[0]
    shape = tuple(x.shape[1:])
    flat = x.reshape(b, -1)
    if start is not None:
        q0 = torch.as_tensor(_to_internal(np.atleast_2d(np.asarray(start, dtype=np.float64))),
                             device=x.device, dtype=dtype)
        q, cost, conv, nit = _levenberg_marquardt(flat, q0, shape, max_iter, ftol, xtol)
    else:
        q1, _, _, _ = _levenberg_marquardt(flat, _single_start(x), shape, 60, ftol, xtol)
        starts = _two_starts(x, q1)
        k = len(starts)
        qs, cs, cv, ni = _levenberg_marquardt(flat.repeat(k, 1), torch.cat(starts), shape,
                                              max_iter, ftol, xtol)
        cs = torch.where(torch.isfinite(cs), cs, torch.full_like(cs, torch.inf)).reshape(k, b)
        best = cs.argmin(dim=0)
        pick = best * b + torch.arange(b, device=x.device)
        q, cost, conv, nit = qs[pick], cs.min(dim=0).values, cv[pick], ni.reshape(k, b).sum(0)
    p = _order_brighter_first(_to_physical(q.cpu().double().numpy()))
    return TwoGaussianFit(p, cost.cpu().double().numpy(), conv.cpu().numpy(), nit.cpu().numpy())
