"""Batched exact least-squares fit of an axis-aligned 2D Gaussian plus background (torch, CPU or GPU).

Model on a cutout ``I`` (pixel indices ``i, j``, relative coordinates ``x = i - c``, ``y = j - c``
with ``c = size // 2``, the initial peak ``s``)::

    M(i, j) = beta + alpha * g(x, y),
    g = 1 / (2 pi s_r s_c) * exp(-((x - mu_r) / s_r)^2 / 2 - ((y - mu_c) / s_c)^2 / 2)

minimising ``0.5 * sum (I - M)^2`` (unweighted, as LaueTools does).

Why it is fast: the model is separable, ``M = beta + A u v^T`` with 1-D profiles ``u(i)``, ``v(j)``
and peak height ``A = alpha / (2 pi s_r s_c)``. Every Jacobian column is an outer product
``a_k b_k^T`` of two 1-D vectors, so ``J^T J = (a a^T) * (b b^T)`` (element-wise; 6 x 6 from
32-long dot products) and ``J^T r = a^T (D b) - ...`` needs only three 32 x 32 matrix-vector
products ``D @ [v, v_mu, v_s]`` with the centred data ``D``; the cost expands the same way
(``u^T D v``). The residual image is never formed: ~10 kFLOP per spot and Levenberg-Marquardt
iteration instead of ~100 k, on a whole batch at once, with spots that have converged dropped from
the working set.

The optimiser is Levenberg-Marquardt with Marquardt's diagonal scaling and Nielsen's damping update,
in the parameters ``(A, beta, mu_r, mu_c, log s_r, log s_c)`` (the log keeps widths positive; the
minimum is the same as in ``(alpha, beta, mu, sigma)``). Start values come from moments.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass, fields

import numpy as np

__all__ = ["GaussFit", "fit_gaussians", "gaussian_model", "moment_start"]

log = logging.getLogger(__name__)

_LOG_S_MIN, _LOG_S_MAX = math.log(0.05), math.log(150.0)


@dataclass
class GaussFit:
    """Result of :func:`fit_gaussians`; every field is a numpy array of shape (N,).

    Attributes
    ----------
    amplitude
        alpha: integrated intensity of the Gaussian, ADU px^2 (i.e. summed ADU).
    background
        beta: constant background, ADU.
    mu_row, mu_col
        Centre relative to the initial peak ``s`` (cutout index ``size // 2``), px.
    sigma_row, sigma_col
        Standard deviations, px.
    converged
        The optimiser met its tolerance (False: iteration limit, width at its bound, non-finite).
    cost
        ``0.5 * sum (I - M)^2`` at the solution, ADU^2.
    n_iter
        Levenberg-Marquardt iterations used.
    """

    amplitude: np.ndarray
    background: np.ndarray
    mu_row: np.ndarray
    mu_col: np.ndarray
    sigma_row: np.ndarray
    sigma_col: np.ndarray
    converged: np.ndarray
    cost: np.ndarray
    n_iter: np.ndarray

    def __len__(self) -> int:
        return len(self.amplitude)

    def __getitem__(self, index) -> GaussFit:
        return GaussFit(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def to_dict(self) -> dict[str, np.ndarray]:
        """The fields as a dict of arrays (e.g. for ``pandas.DataFrame``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def peak_height(self) -> np.ndarray:
        """``A = alpha / (2 pi s_r s_c)``: height of the Gaussian above the background, ADU."""
        return self.amplitude / (2 * np.pi * self.sigma_row * self.sigma_col)


def gaussian_model(fit: GaussFit, size: int = 32) -> np.ndarray:
    """Evaluate ``beta + alpha * g`` of a fit on ``size x size`` cutouts.

    Returns
    -------
    numpy.ndarray
        float64, shape (N, size, size), ADU.
    """
    x = np.arange(size, dtype=np.float64) - size // 2
    u = np.exp(-0.5 * ((x - fit.mu_row[:, None]) / fit.sigma_row[:, None]) ** 2)
    v = np.exp(-0.5 * ((x - fit.mu_col[:, None]) / fit.sigma_col[:, None]) ** 2)
    return fit.background[:, None, None] + fit.peak_height[:, None, None] * u[:, :, None] * v[:, None, :]


def _resolve_device(device):
    import torch

    if device is None or device == "cpu":
        return torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextmanager
def _cpu_threads(n: int | None):
    import torch

    if n is None or torch.get_num_threads() == n:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def moment_start(data, c: int):
    """Start values ``(A, beta, mu_r, mu_c, log s_r, log s_c)`` from moments of the cutouts.

    ``beta``: median of the outer ring of pixels; ``A``: highest pixel above it within 5 px of the
    centre; centre and widths: first and second moments of the pixels above ``0.2 A`` within 8 px
    of the centre, the widths corrected for that truncation (a Gaussian cut at 0.2 of its height
    keeps 0.598 of its variance) and for pixelation (1/12 px^2).

    Parameters
    ----------
    data
        torch tensor (N, S, S).
    c
        Index of the initial peak, ``S // 2``.

    Returns
    -------
    torch.Tensor
        (N, 6), same dtype and device as ``data``.
    """
    import torch

    n, s, _ = data.shape
    ring = torch.cat([data[:, 0, :], data[:, -1, :], data[:, 1:-1, 0], data[:, 1:-1, -1]], dim=1)
    beta = ring.median(dim=1).values
    d = data - beta[:, None, None]
    x = torch.arange(s, dtype=data.dtype, device=data.device) - c
    near5 = (x.abs() <= 5)
    a0 = d[:, near5][:, :, near5].reshape(n, -1).amax(dim=1).clamp_min(1e-6)
    core = (x.abs() <= 8)
    w = torch.where(d > 0.2 * a0[:, None, None], d, torch.zeros((), dtype=d.dtype, device=d.device))
    w = w * (core[:, None] & core[None, :])
    tot = w.sum(dim=(1, 2)).clamp_min(1e-12)
    wr, wc = w.sum(dim=2), w.sum(dim=1)  # marginals along rows, columns
    mr = (wr * x).sum(1) / tot
    mc = (wc * x).sum(1) / tot
    vr = (wr * (x - mr[:, None]) ** 2).sum(1) / tot
    vc = (wc * (x - mc[:, None]) ** 2).sum(1) / tot
    sr = ((vr - 1 / 12).clamp_min(0.01) / 0.598).sqrt().clamp(0.3, 10.0)
    sc = ((vc - 1 / 12).clamp_min(0.01) / 0.598).sqrt().clamp(0.3, 10.0)
    return torch.stack([a0, beta, mr, mc, sr.log(), sc.log()], dim=1)


def fit_gaussians(
    cutouts,
    *,
    device=None,
    dtype="float64",
    max_iter: int = 100,
    xtol: float = 1e-7,
    ftol: float = 1e-10,
    start=None,
    num_threads: int | None = 1,
) -> GaussFit:
    """Fit ``beta + alpha * g`` (axis-aligned 2D Gaussian) to every cutout, all at once.

    Parameters
    ----------
    cutouts
        Array (N, S, S) (numpy or torch), ADU; usually S = 32 from :func:`extract_cutouts`.
    device
        torch device (``None``/``"cpu"``, ``"cuda"``, ``"auto"``).
    dtype
        ``"float64"`` (default; the expanded cost needs it for ~1e-10 relative precision on bright
        spots over a ~1000 ADU pedestal) or ``"float32"`` (GPU; precision ~1e-5 in cost).
    max_iter
        Iteration limit per spot; spots that reach it have ``converged = False``.
    xtol
        Stop when a step changes every position and log-width by less than ``xtol`` (px, resp.
        relative width) and ``A``, ``beta`` by less than ``xtol`` relative to the data scale.
    ftol
        Stop when an accepted step lowers the cost by less than ``ftol`` times the cost.
    start
        Optional start values, array (N, 6) of ``(alpha, beta, mu_row, mu_col, sigma_row,
        sigma_col)``; default from moments (:func:`moment_start`).
    num_threads
        On the CPU, torch intra-op threads used during the call (restored afterwards; ``None``
        leaves torch's setting). Default 1: the fit is a sequence of small batched operations whose
        thread synchronisation costs more than it saves, badly so on a loaded machine (15x slower
        with 2 threads on 2 busy cores, measured); parallelise over frames instead.

    Returns
    -------
    GaussFit
        numpy arrays (float64), ``mu`` relative to the cutout centre ``S // 2``.
    """
    import torch

    dev = _resolve_device(device)
    tdtype = {"float64": torch.float64, "float32": torch.float32}[str(dtype).replace("torch.", "")]
    data = torch.as_tensor(np.asarray(cutouts) if not isinstance(cutouts, torch.Tensor) else cutouts)
    if data.ndim != 3 or data.shape[1] != data.shape[2]:
        raise ValueError(f"cutouts must have shape (N, S, S), got {tuple(data.shape)}")
    data = data.to(device=dev, dtype=tdtype)
    n, s, _ = data.shape
    c = s // 2
    out = {k: np.zeros(n) for k in ("amplitude", "background", "mu_row", "mu_col", "sigma_row",
                                        "sigma_col", "cost")}
    if n == 0:
        return GaussFit(**out, converged=np.zeros(0, bool), n_iter=np.zeros(0, np.int64))
    with torch.inference_mode(), _cpu_threads(num_threads if dev.type == "cpu" else None):
        res = _lm(data, c, max_iter, xtol, ftol, start)
    theta, cost, conv, nit = (t.cpu().to(torch.float64).numpy() if t.is_floating_point() else t.cpu().numpy()
                              for t in res)
    sr, sc = np.exp(theta[:, 4]), np.exp(theta[:, 5])
    return GaussFit(
        amplitude=theta[:, 0] * 2 * np.pi * sr * sc,
        background=theta[:, 1],
        mu_row=theta[:, 2],
        mu_col=theta[:, 3],
        sigma_row=sr,
        sigma_col=sc,
        converged=conv.astype(bool),
        cost=cost,
        n_iter=nit.astype(np.int64),
    )


class _Batch:
    """Per-spot constants of the working set: centred data and its sums."""

    def __init__(self, d, x):
        self.d = d  # (n, S, S), data minus its start background
        self.x = x
        self.s2 = (d * d).sum(dim=(1, 2))
        self.s1 = d.sum(dim=(1, 2))
        self.rows = d.sum(dim=2)  # D @ 1, (n, S)
        self.npix = d.shape[1] * d.shape[2]

    def take(self, keep):
        b = object.__new__(_Batch)
        b.d, b.x, b.s2, b.s1, b.rows, b.npix = self.d[keep], self.x, self.s2[keep], self.s1[keep], \
            self.rows[keep], self.npix
        return b


def _profiles(theta, x):
    """1-D profiles u, v and their scaled distances z (n, S)."""
    zr = (x - theta[:, 2:3]) * (-theta[:, 4:5]).exp()
    zc = (x - theta[:, 3:4]) * (-theta[:, 5:6]).exp()
    return (-0.5 * zr * zr).exp(), (-0.5 * zc * zc).exp(), zr, zc


def _cost(b: _Batch, theta, u, v, dv):
    """0.5 * ||D - beta - A u v^T||^2 from 1-D sums; ``dv = D @ v``."""
    a, beta = theta[:, 0], theta[:, 1]
    udv = (u * dv).sum(1)
    su, sv = u.sum(1), v.sum(1)
    uu, vv = (u * u).sum(1), (v * v).sum(1)
    f = (b.s2 - 2 * beta * b.s1 - 2 * a * udv + b.npix * beta * beta + 2 * a * beta * su * sv
         + a * a * uu * vv)
    return 0.5 * f.clamp_min(0)


def _lm(data, c, max_iter, xtol, ftol, start):
    import torch

    n, s, _ = data.shape
    x = (torch.arange(s, dtype=data.dtype, device=data.device) - c)[None, :]
    if start is None:
        theta = moment_start(data, c)
    else:
        st = torch.as_tensor(np.asarray(start), dtype=data.dtype, device=data.device)
        theta = torch.stack([st[:, 0] / (2 * math.pi * st[:, 4] * st[:, 5]), st[:, 1], st[:, 2], st[:, 3],
                             st[:, 4].log(), st[:, 5].log()], dim=1)
    offset = theta[:, 1].clone()
    theta[:, 1] = 0.0  # fit the centred data: keeps the expanded cost well conditioned
    scale = (data.amax(dim=(1, 2)) - offset).abs().clamp_min(1.0)
    b = _Batch(data - offset[:, None, None], x)

    out_theta = theta.clone()
    out_cost = torch.zeros(n, dtype=data.dtype, device=data.device)
    out_conv = torch.zeros(n, dtype=torch.bool, device=data.device)
    out_nit = torch.zeros(n, dtype=torch.int64, device=data.device)
    idx = torch.arange(n, device=data.device)
    lam = torch.full((n,), 1e-3, dtype=data.dtype, device=data.device)
    nu = torch.full((n,), 2.0, dtype=data.dtype, device=data.device)
    u, v, zr, zc = _profiles(theta, x)
    dv = torch.bmm(b.d, v.unsqueeze(2)).squeeze(2)
    cost = _cost(b, theta, u, v, dv)
    eye6 = torch.eye(6, dtype=data.dtype, device=data.device)
    ones = torch.ones_like(u)
    for it in range(1, max_iter + 1):
        a_h = theta[:, 0:1]
        sr_inv, sc_inv = torch.exp(-theta[:, 4:5]), torch.exp(-theta[:, 5:6])
        v_mu, v_s = v * zc * sc_inv, v * zc * zc
        # Jacobian columns (A, beta, mu_r, mu_c, t_r, t_c) = a_k (x) b_k
        av = torch.stack([u, ones, a_h * u * zr * sr_inv, a_h * u, a_h * u * zr * zr, a_h * u], dim=1)
        bv = torch.stack([v, ones, v, v_mu, v, v_s], dim=1)
        ga = torch.bmm(av, av.transpose(1, 2))
        gb = torch.bmm(bv, bv.transpose(1, 2))
        jtj = ga * gb
        # D @ b_k for the distinct b's: v (have dv), 1 (row sums), v_mu, v_s
        dm = torch.bmm(b.d, torch.stack([v_mu, v_s], dim=2))
        db = torch.stack([dv, b.rows, dv, dm[:, :, 0], dv, dm[:, :, 1]], dim=1)  # (n, 6, S)
        adb = (av * db).sum(2)
        g = adb - theta[:, 1:2] * ga[:, :, 1] * gb[:, :, 1] - a_h * ga[:, :, 0] * gb[:, :, 0]
        diag = jtj.diagonal(dim1=1, dim2=2)
        diag = torch.maximum(diag, 1e-12 * diag.amax(dim=1, keepdim=True) + 1e-30)
        h, info = torch.linalg.solve_ex(jtj + lam[:, None, None] * diag[:, :, None] * eye6, g.unsqueeze(2))
        h = h.squeeze(2)
        bad = (info != 0) | ~torch.isfinite(h).all(dim=1)
        h = torch.where(bad[:, None], torch.zeros_like(h), h)
        new = theta + h
        new[:, 4:6] = new[:, 4:6].clamp(_LOG_S_MIN, _LOG_S_MAX)
        h = new - theta
        u2, v2, zr2, zc2 = _profiles(new, x)
        dv2 = torch.bmm(b.d, v2.unsqueeze(2)).squeeze(2)
        cost2 = _cost(b, new, u2, v2, dv2)
        pred = 0.5 * (h * (lam[:, None] * diag * h + g)).sum(1)
        rho = (cost - cost2) / pred.clamp_min(1e-300)
        acc = (cost2 < cost) & ~bad & torch.isfinite(cost2)
        # Nielsen's damping update
        lam = torch.where(acc, lam * torch.clamp(1 - (2 * rho - 1) ** 3, min=1 / 3), lam * nu)
        nu = torch.where(acc, torch.full_like(nu, 2.0), nu * 2)
        lam = lam.clamp(1e-12, 1e16)
        tol_lin = xtol * (theta[:, :1].abs() + scale[:, None])
        small = (h[:, :2].abs() <= tol_lin).all(dim=1) & (h[:, 2:].abs() <= xtol).all(dim=1)
        fsmall = acc & ((cost - cost2) <= ftol * cost2)
        accf = acc[:, None]
        theta = torch.where(accf, new, theta)
        cost = torch.where(acc, cost2, cost)
        u, v = torch.where(accf, u2, u), torch.where(accf, v2, v)
        zr, zc = torch.where(accf, zr2, zr), torch.where(accf, zc2, zc)
        dv = torch.where(accf, dv2, dv)
        done = small | fsmall | (lam >= 1e16) | ~torch.isfinite(theta).all(dim=1)
        if it == max_iter:
            done = torch.ones_like(done)
        if bool(done.any()):
            di = idx[done]
            conv = (small | fsmall)[done] & torch.isfinite(theta[done]).all(dim=1)
            at_bound = ((theta[done, 4:6] <= _LOG_S_MIN + 1e-9) | (theta[done, 4:6] >= _LOG_S_MAX - 1e-9)).any(1)
            out_theta[di] = theta[done]
            out_cost[di] = cost[done]
            out_conv[di] = conv & ~at_bound
            out_nit[di] = it
            keep = ~done
            if not bool(keep.any()):
                break
            idx, theta, cost, lam, nu = idx[keep], theta[keep], cost[keep], lam[keep], nu[keep]
            u, v, zr, zc, dv, ones, scale = u[keep], v[keep], zr[keep], zc[keep], dv[keep], ones[keep], scale[keep]
            b = b.take(keep)
    out_theta[:, 1] += offset
    return out_theta, out_cost, out_conv, out_nit
