"""Batched exact least-squares fit of an axis-aligned 2D Gaussian plus background (numpy CPU, torch GPU).

Model on a cutout ``I`` (pixel indices ``i, j``, relative coordinates ``x = i - c``, ``y = j - c``
with ``c = size // 2``, the initial peak ``s``)::

    M(i, j) = beta + alpha * g(x, y),
    g = 1 / (2 pi s_r s_c) * exp(-((x - mu_r) / s_r)^2 / 2 - ((y - mu_c) / s_c)^2 / 2)

minimising ``0.5 * sum (I - M)^2`` (unweighted, as LaueTools does).

Why it is fast: the model is separable, ``M = beta + A u v^T`` with 1-D profiles ``u(i)``, ``v(j)``
and peak height ``A = alpha / (2 pi s_r s_c)``. Every Jacobian column is an outer product
``a_k b_k^T`` of two 1-D vectors taken from the per-axis basis ``P = [w, 1, w z, w z^2]``
(``w = exp(-z^2 / 2)``, ``z = (x - mu) / s``), so ``J^T J`` is an element-wise product of entries of
the two 4 x 4 Gram matrices ``P P^T`` (32-long dot products), and ``J^T r`` and the cost need only
``F = P_row D P_col^T``: three 32 x 32 matrix-vector products ``D @ [v, v z, v z^2]`` with the centred
data ``D`` (``D @ 1`` is precomputed) and a 4 x 32 x 4 product. The residual image is never formed:
~10 kFLOP per spot and Levenberg-Marquardt iteration instead of ~100 k, on a whole batch at once;
spots that have finished are dropped from the working set.

The algorithm is written once against a tiny array interface (:mod:`laue_live._xp`) and runs
on numpy (the CPU default: ~2x lower per-call overhead than torch on these small batched arrays) or
on torch (any device, e.g. a GPU).

The optimiser is Levenberg-Marquardt with Marquardt's diagonal scaling and Nielsen's damping update,
in the parameters ``(A, beta, mu_r, mu_c, log s_r, log s_c)`` (the log keeps widths positive; the
minimum is the same as in ``(alpha, beta, mu, sigma)``). Start values come from moments. A spot
stops when a step is below ``xtol`` or lowers the cost by less than ``ftol`` (converged), when its
cost fell by less than 1e-7 over 10 iterations (stalled: faint pixel-sharp spots whose width crawls
towards ~0.25 px; not converged, cost within ~1e-6 of the minimum), when its centre leaves the
cutout, or at ``max_iter``.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass, fields

import numpy as np

from laue_live._rules import CUTOUT_SIZE
from laue_live._xp import ops_for, ops_of

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
        The optimiser met its tolerance (False: iteration limit, stalled, centre left the cutout,
        width at its bound 0.05 or 150 px).
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
        """Return the fields as a dict of arrays (e.g. for ``pandas.DataFrame``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def peak_height(self) -> np.ndarray:
        """``A = alpha / (2 pi s_r s_c)``: height of the Gaussian above the background, ADU."""
        return self.amplitude / (2 * np.pi * self.sigma_row * self.sigma_col)


def gaussian_model(fit: GaussFit, size: int = CUTOUT_SIZE) -> np.ndarray:
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


@contextmanager
def _cpu_threads(n: int | None):
    import torch  # why: torch (~1.5 s to import) loads only when the fit runs on torch

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

    ``beta``: mean of the middle two of the four border means (a neighbour spot on one or two
    borders does not move it); ``A``: highest pixel above it within 5 px of the centre; centre and
    widths: first and second moments of the pixels above ``0.2 A`` within 8 px of the centre, the
    widths corrected for that truncation (a Gaussian cut at 0.2 of its height keeps 0.598 of its
    variance) and for pixelation (1/12 px^2).

    Parameters
    ----------
    data
        numpy array or torch tensor (N, S, S), float.
    c
        Index of the initial peak, ``S // 2``.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        (N, 6), same kind, dtype and device as ``data``.
    """
    xp = ops_of(data)
    borders = xp.sort(xp.stack([data[:, 0, :].mean(axis=1), data[:, -1, :].mean(axis=1),
                                data[:, :, 0].mean(axis=1), data[:, :, -1].mean(axis=1)], 1), 1)
    beta = 0.5 * (borders[:, 1] + borders[:, 2])
    # only central windows are touched: full-size temporaries cost more than the arithmetic;
    # symmetric about c, which has S - 1 - c pixels after it (one fewer than before it for even S)
    reach = min(c, data.shape[1] - 1 - c)
    h5, h8 = min(5, reach), min(8, reach)
    win = data[:, c - h5:c + h5 + 1, c - h5:c + h5 + 1].reshape(len(data), -1)
    a0 = xp.clip(xp.amax(win, 1) - beta, 1e-6)
    d = data[:, c - h8:c + h8 + 1, c - h8:c + h8 + 1] - beta[:, None, None]
    x = xp.asarray(np.arange(-h8, h8 + 1))
    w = xp.where(d > 0.2 * a0[:, None, None], d, 0.0)
    tot = xp.clip(w.sum(axis=(1, 2)), 1e-12)
    wr, wc = w.sum(axis=2), w.sum(axis=1)  # marginals along rows, columns
    mr = (wr * x).sum(axis=1) / tot
    mc = (wc * x).sum(axis=1) / tot
    vr = (wr * (x - mr[:, None]) ** 2).sum(axis=1) / tot
    vc = (wc * (x - mc[:, None]) ** 2).sum(axis=1) / tot
    sr = xp.clip(xp.sqrt(xp.clip(vr - 1 / 12, 0.01) / 0.598), 0.3, 10.0)
    sc = xp.clip(xp.sqrt(xp.clip(vc - 1 / 12, 0.01) / 0.598), 0.3, 10.0)
    return xp.stack([a0, beta, mr, mc, xp.log(sr), xp.log(sc)], 1)


def fit_gaussians(
    cutouts,
    *,
    device=None,
    dtype="float64",
    max_iter: int = 50,
    xtol: float = 1e-7,
    ftol: float = 1e-10,
    start=None,
    backend: str = "auto",
    num_threads: int | None = 1,
    check_every: int | None = None,
    mask=None,
) -> GaussFit:
    """Fit ``beta + alpha * g`` (axis-aligned 2D Gaussian) to every cutout, all at once.

    Parameters
    ----------
    cutouts
        Array (N, S, S) (numpy or torch), ADU; usually S = 32 from :func:`extract_cutouts`.
    mask
        Optional bool array (N, S, S) (numpy or torch), True for pixels that must not enter the
        fit (masked detector pixels): they get zero weight, so the fit is the least-squares
        minimum over the other pixels. Their values only affect the start (fill them with the
        local background, as :func:`extract_cutouts` does). Cutouts without a masked pixel take
        the unweighted path.
    device
        ``None``/``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"`` (CUDA if available) or a torch device.
    dtype
        ``"float64"`` (default, also on a GPU: the cost is expanded as ``sum D^2 - 2 A u'Dv + ...``,
        which needs float64 to resolve a ~1e-10 relative change on bright spots) or ``"float32"``
        (half the memory traffic; cost resolved only to ~1e-7 of ``sum D^2``, so the stopping test
        is coarse on bright spots; positions agree with float64 to ~1e-3 px).
    max_iter
        Iteration limit per spot; spots that reach it have ``converged = False``.
    xtol
        Stop when a step changes every position and log-width by less than ``xtol`` (px, resp.
        relative width) and ``A``, ``beta`` by less than ``xtol`` times twice the start height.
    ftol
        Stop when an accepted step lowers the cost by less than ``ftol`` times the cost.
    start
        Optional start values, array or tensor (N, 6) of ``(alpha, beta, mu_row, mu_col, sigma_row,
        sigma_col)`` (a tensor stays on its device for the torch backend); default from moments
        (:func:`moment_start`).
    backend
        ``"auto"`` (numpy on the CPU, torch on a GPU), ``"numpy"`` or ``"torch"``: the same
        algorithm on either library (numpy is ~2x faster on the CPU, measured; torch is what runs on
        a GPU, and ``backend="torch"`` runs that code path on the CPU too).
    num_threads
        torch on the CPU: intra-op threads during the call (restored afterwards; ``None`` leaves
        torch's setting). Default 1: the fit is a sequence of small batched operations whose thread
        synchronisation costs more than it saves (15x slower with 2 threads on 2 busy cores,
        measured); parallelise over frames instead.
    check_every
        Iterations between the host's checks of how many spots are still running (each check
        waits for the device). Default: 1 on the CPU, where a check costs nothing, 4 on a GPU,
        where it stalls the launch queue. Results do not depend on it: a finished spot is frozen
        and recorded at the iteration it finished.

    Returns
    -------
    GaussFit
        numpy arrays (float64), ``mu`` relative to the cutout centre ``S // 2``.
    """
    dtype = str(dtype).replace("torch.", "")
    xp = ops_for(backend, dtype, device)
    if check_every is None:
        check_every = 4 if xp.name == "torch" and xp.device.type != "cpu" else 1
    if int(check_every) < 1:
        raise ValueError(f"check_every must be >= 1, got {check_every!r}")
    check_every = int(check_every)
    is_tensor = type(cutouts).__module__.startswith("torch")
    if is_tensor and xp.name == "numpy":
        cutouts = cutouts.detach().cpu().numpy()
    shape = tuple(cutouts.shape) if is_tensor else np.shape(cutouts)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"cutouts must have shape (N, S, S), got {shape}")
    n, s, _ = shape
    if n == 0:
        z = np.zeros(0)
        return GaussFit(z, z, z, z, z, z, np.zeros(0, bool), z, np.zeros(0, np.int64))
    # a private copy (no host round trip for a tensor already on the device): _lm centres it in place
    if xp.name == "torch":
        if is_tensor:
            data = cutouts.detach().to(device=xp.device, dtype=xp.dtype, copy=True)
        else:
            data = xp.torch.tensor(np.asarray(cutouts), dtype=xp.dtype, device=xp.device)
    else:
        data = np.array(cutouts, dtype=xp.dtype, copy=True)
    weights = _weights_of(xp, mask, shape)
    if xp.name == "torch":
        with xp.torch.inference_mode(), _cpu_threads(num_threads if xp.device.type == "cpu" else None):
            res = _lm_split(xp, data, weights, s // 2, max_iter, xtol, ftol, start, check_every)
    else:
        with np.errstate(all="ignore"):  # NaN trials (failed solves) are expected and handled
            res = _lm_split(xp, data, weights, s // 2, max_iter, xtol, ftol, start, check_every)
    theta, cost, conv, nit = res
    theta = theta.astype(np.float64)
    sr, sc = np.exp(theta[:, 4]), np.exp(theta[:, 5])
    return GaussFit(
        amplitude=theta[:, 0] * 2 * np.pi * sr * sc,
        background=theta[:, 1],
        mu_row=theta[:, 2],
        mu_col=theta[:, 3],
        sigma_row=sr,
        sigma_col=sc,
        converged=conv.astype(bool),
        cost=cost.astype(np.float64),
        n_iter=nit.astype(np.int64),
    )


def _weights_of(xp, mask, shape):
    """Per-pixel weights (1 used, 0 masked) of the cutouts that hold a masked pixel, or None."""
    if mask is None:
        return None
    if type(mask).__module__.startswith("torch"):
        if xp.name == "numpy":
            mask = mask.detach().cpu().numpy()
        elif mask.device != xp.device:
            mask = mask.to(xp.device)
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"mask must have the cutouts' shape {tuple(shape)}, got {tuple(mask.shape)}")
    if xp.name == "torch":
        m = mask if type(mask).__module__.startswith("torch") else xp.torch.as_tensor(np.asarray(mask))
        return (~m.to(device=xp.device, dtype=xp.torch.bool)).to(xp.dtype)
    return (~np.asarray(mask, dtype=bool)).astype(xp.dtype)


def _lm_split(xp, data, weights, c, max_iter, xtol, ftol, start, check_every):
    """Run :func:`_lm` on the unmasked cutouts and, weighted, on those with a masked pixel.

    Returns host numpy arrays ``(theta, cost, converged, n_iter)`` in the cutouts' order.
    """
    n = data.shape[0]
    if weights is not None:
        npix = data.shape[1] * data.shape[2]
        has = np.asarray(xp.numpy(weights.reshape(n, -1).sum(axis=1) < npix), dtype=bool)
        if not has.any():
            weights = None
    if weights is None:
        return tuple(np.asarray(xp.numpy(r)) for r in _lm(xp, data, None, c, max_iter, xtol, ftol, start,
                                                            check_every))
    out = None
    for sel, w in ((np.flatnonzero(~has), None), (np.flatnonzero(has), weights)):
        if sel.size == 0:
            continue
        idx = xp.index(sel)
        st = None if start is None else np.asarray(start)[sel]
        res = [np.asarray(xp.numpy(r)) for r in _lm(xp, data[idx], None if w is None else w[idx], c, max_iter,
                                                      xtol, ftol, st, check_every)]
        if out is None:
            out = [np.zeros((n, *r.shape[1:]), dtype=r.dtype) for r in res]
        for o, r in zip(out, res, strict=True):
            o[sel] = r
    return tuple(out)


# Jacobian column k of (A, beta, mu_r, mu_c, t_r, t_c) is (sa_k P_ia[k]) (x) (sb_k P_ib[k]), with the
# per-axis basis P = [w, 1, w z, w z^2] (w = exp(-z^2 / 2), z = (x - mu) / sigma) and the scales
# sa * sb = (1, 1, A / s_r, A / s_c, A, A).
_IA = (0, 1, 2, 0, 3, 0)
_IB = (0, 1, 0, 2, 0, 3)
# A spot whose cost fell by less than this fraction over the last _STALL_EVERY iterations has stalled.
_STALL_EVERY, _STALL_RTOL = 10, 1e-7
# Layout of the packed per-spot state (one row per spot), so that accepting a step or shrinking the
# working set is one operation: theta (6), cost, 1/sigma (2), Gram row (16), Gram col (16), f (16).
_TH, _COST, _INV, _GR, _GC, _F, _WIDTH = 0, 6, 7, 9, 25, 41, 57


class _Batch:
    """Per-spot constants of the working set: centred data ``D``, its row sums and sum of squares.

    With weights ``W`` (0/1 per pixel), ``d`` holds ``W * D`` (so ``sum D^2`` and ``D @ 1`` are the
    weighted ones) and ``npix`` is ``sum W`` per spot.
    """

    def __init__(self, d, x, w=None):
        self.w = w  # (n, S, S) 0/1 weights, or None (all pixels used)
        self.d = d if w is None else d * w  # (n, S, S), data minus its start background
        self.x = x  # (1, 1, S) pixel coordinates relative to the cutout centre
        flat = self.d.reshape(d.shape[0], 1, -1)
        self.s2 = (flat @ flat.swapaxes(1, 2)).reshape(-1)  # sum D^2 without a temporary
        self.rows = self.d.sum(axis=2)  # D @ 1
        self.npix = d.shape[1] * d.shape[2] if w is None else w.sum(axis=(1, 2))

    def take(self, keep):
        b = object.__new__(_Batch)
        b.d, b.x, b.s2, b.rows = self.d[keep], self.x, self.s2[keep], self.rows[keep]
        b.w = None if self.w is None else self.w[keep]
        b.npix = self.npix if self.w is None else self.npix[keep]
        return b


def _pack(xp, b: _Batch, theta):
    """Everything Levenberg-Marquardt needs at ``theta``, from one pass over the data.

    Returns the packed state (n, 57): ``theta``; the cost ``0.5 ||D - beta - A u v^T||^2``,
    expanded so that no residual image is formed; ``1 / sigma``; the Gram matrices ``P P^T`` of
    the row and column bases; ``f = P_row D P_col^T``, which holds every data term of the gradient
    and of the cost.
    """
    n = theta.shape[0]
    inv_s = xp.exp(-theta[:, 4:6])
    z = (b.x - theta[:, 2:4, None]) * inv_s[:, :, None]  # (n, 2, S)
    w = xp.exp(-0.5 * z * z)
    wz = w * z
    p = xp.stack([w, w * 0 + 1, wz, wz * z], 2)  # (n, 2, 4, S)
    e = b.d @ p[:, 1, [0, 2, 3]].swapaxes(1, 2)  # D @ [v, v z, v z^2], (n, S, 3); D @ 1 is precomputed
    e = xp.stack([e[:, :, 0], b.rows, e[:, :, 1], e[:, :, 2]], 2)
    f = p[:, 0] @ e
    a, beta = theta[:, 0], theta[:, 1]
    if b.w is not None:
        return _pack_weighted(xp, b, theta, inv_s, p, f)
    gram = p @ p.swapaxes(2, 3)
    # |D|^2 - 2 beta sum D - 2 A u'Dv + N beta^2 + 2 A beta (sum u)(sum v) + A^2 |u|^2 |v|^2
    quad = (b.s2 - 2 * beta * f[:, 1, 1] - 2 * a * f[:, 0, 0] + b.npix * beta * beta
            + a * (2 * beta * gram[:, 0, 0, 1] * gram[:, 1, 0, 1] + a * gram[:, 0, 0, 0] * gram[:, 1, 0, 0]))
    cost = 0.5 * xp.clip(quad, 0.0)
    return xp.cat([theta, cost[:, None], inv_s, gram.reshape(n, 32), f.reshape(n, 16)], 1)


def _pack_weighted(xp, b: _Batch, theta, inv_s, p, f):
    """:func:`_pack` with 0/1 pixel weights ``W``.

    The Gram products ``gram_row[p, q] * gram_col[r, s]`` of the unweighted case become the entries
    ``G[(p, q), (r, s)] = (P_p P_q)^T W (P_r P_s)`` of one 16 x 16 table per spot (two batched
    products with ``W``, ~2x the work of an unweighted iteration); the packed state holds ``G``
    in place of the two Gram matrices.
    """
    n, _, _, s = p.shape
    pr = (p[:, 0, :, None, :] * p[:, 0, None, :, :]).reshape(n, 16, s)  # P_p P_q, rows
    pc = (p[:, 1, :, None, :] * p[:, 1, None, :, :]).reshape(n, 16, s)  # columns
    g = (pr @ b.w) @ pc.swapaxes(1, 2)  # (n, 16, 16)
    a, beta = theta[:, 0], theta[:, 1]
    # G[(0,1),(0,1)] = u^T W v, G[(0,0),(0,0)] = (u u)^T W (v v); sum W = npix
    quad = (b.s2 - 2 * beta * f[:, 1, 1] - 2 * a * f[:, 0, 0] + b.npix * beta * beta
            + a * (2 * beta * g[:, 1, 1] + a * g[:, 0, 0]))
    cost = 0.5 * xp.clip(quad, 0.0)
    return xp.cat([theta, cost[:, None], inv_s, g.reshape(n, 256), f.reshape(n, 16)], 1)


def _gather_index():
    """Columns of the packed state holding every entry that the normal equations use.

    In order: ``gram_row[ia, ia]`` (36), ``gram_col[ib, ib]`` (36), ``f[ia, ib]``,
    ``gram_row[ia, 1]``, ``gram_col[ib, 1]``, ``gram_row[ia, 0]``, ``gram_col[ib, 0]`` (6 each),
    then A, beta, 1/s_r, 1/s_c: one gather instead of many fancy-indexing calls.
    """
    ia, ib = np.array(_IA), np.array(_IB)
    parts = [_GR + (ia[:, None] * 4 + ia[None, :]).ravel(), _GC + (ib[:, None] * 4 + ib[None, :]).ravel(),
             _F + ia * 4 + ib, _GR + ia * 4 + 1, _GC + ib * 4 + 1, _GR + ia * 4, _GC + ib * 4,
             [_TH, _TH + 1, _INV, _INV + 1]]
    return np.concatenate(parts)


_SPLITS = np.cumsum([36, 36, 6, 6, 6, 6, 6, 1, 1])
# weighted state: theta (6), cost, 1/sigma (2), G (256), f (16)
_G, _FW, _WIDTH_W = 9, 265, 281


def _gather_index_weighted():
    """Columns of the weighted packed state for the normal equations.

    In order: ``G[(ia_k, ia_l), (ib_k, ib_l)]`` (36), ``f[ia, ib]`` (6), ``G[(ia, 1), (ib, 1)]``,
    ``G[(ia, 0), (ib, 0)]`` (6 each), then A, beta, 1/s_r, 1/s_c.
    """
    ia, ib = np.array(_IA), np.array(_IB)
    pair_r = ia[:, None] * 4 + ia[None, :]
    pair_c = ib[:, None] * 4 + ib[None, :]
    parts = [_G + (pair_r * 16 + pair_c).ravel(), _FW + ia * 4 + ib, _G + (ia * 4 + 1) * 16 + ib * 4 + 1,
             _G + (ia * 4) * 16 + ib * 4, [_TH, _TH + 1, _INV, _INV + 1]]
    return np.concatenate(parts)


_SPLITS_W = np.cumsum([36, 6, 6, 6, 1, 1])


def _normal_equations_weighted(xp, st, gidx):
    """:func:`_normal_equations` from a weighted packed state."""
    n = st.shape[0]
    sel = xp.take(st, gidx, 1)
    o = _SPLITS_W
    gg, fs, g1, g0 = sel[:, :o[0]], sel[:, o[0]:o[1]], sel[:, o[1]:o[2]], sel[:, o[2]:o[3]]
    a, beta, inv_s = sel[:, o[3]:o[4]], sel[:, o[4]:o[5]], sel[:, o[5]:]
    one = a * 0 + 1
    sc = xp.cat([one, one, a * inv_s, a, a], 1)
    jtj = ((sc[:, :, None] * sc[:, None, :]).reshape(n, 36) * gg).reshape(n, 6, 6)
    g = sc * (fs - beta * g1 - a * g0)
    return jtj, g


def _normal_equations(xp, st, gidx):
    """``J^T J`` (n, 6, 6) and ``g = J^T (D - M)`` (n, 6) from the packed state."""
    n = st.shape[0]
    sel = xp.take(st, gidx, 1)
    o = _SPLITS
    jr, jc, fs = sel[:, :o[0]], sel[:, o[0]:o[1]], sel[:, o[1]:o[2]]
    gr1, gc1, gr0, gc0 = sel[:, o[2]:o[3]], sel[:, o[3]:o[4]], sel[:, o[4]:o[5]], sel[:, o[5]:o[6]]
    a, beta, inv_s = sel[:, o[6]:o[7]], sel[:, o[7]:o[8]], sel[:, o[8]:]
    one = a * 0 + 1
    sc = xp.cat([one, one, a * inv_s, a, a], 1)  # sa * sb
    jtj = ((sc[:, :, None] * sc[:, None, :]).reshape(n, 36) * jr * jc).reshape(n, 6, 6)
    g = sc * (fs - beta * gr1 * gc1 - a * gr0 * gc0)
    return jtj, g


def _lm(xp, data, weights, c, max_iter, xtol, ftol, start, check_every=1):
    n, s, _ = data.shape
    x = xp.asarray(np.arange(s) - c)[None, None, :]
    if start is None:
        theta = moment_start(data, c)
    else:  # a numpy array, or a tensor (kept on its device when the fit runs in torch)
        if xp.name == "torch" and type(start).__module__.startswith("torch"):
            st0 = start.to(device=xp.device, dtype=xp.dtype)
        else:
            st0 = xp.asarray(np.asarray(start.cpu() if hasattr(start, "cpu") else start, dtype=np.float64))
        theta = xp.stack([st0[:, 0] / (2 * np.pi * st0[:, 4] * st0[:, 5]), st0[:, 1], st0[:, 2],
                          st0[:, 3], xp.log(st0[:, 4]), xp.log(st0[:, 5])], 1)
    offset = xp.copy(theta[:, 1])
    theta[:, 1] = 0.0  # fit the centred data: keeps the expanded cost well conditioned
    data -= offset[:, None, None]  # in place: `data` is fit_gaussians' private copy
    # step tolerances: A and beta relative to the spot's height, positions and log-widths absolute
    lin = xtol * xp.clip(2 * xp.abs(theta[:, 0:1]), 1.0)
    tol = xp.cat([lin, lin, xp.full((n, 4), xtol)], 1)
    b = _Batch(data, x, weights)
    weighted = weights is not None
    gidx = xp.index(_gather_index_weighted() if weighted else _gather_index())
    normal_equations = _normal_equations_weighted if weighted else _normal_equations
    far = float(s)  # a centre this far out has left the cutout: the fit has failed

    out = xp.full((n, _WIDTH_W if weighted else _WIDTH), 0.0)
    out_conv = xp.full_bool((n,), False)
    out_nit = xp.full_int((n,), max_iter)
    idx = xp.arange(n)
    active = xp.full_bool((n,), True)
    lam = xp.full((n,), 1e-3)
    nu = xp.full((n,), 2.0)
    st = _pack(xp, b, theta)
    cost_mark = xp.copy(st[:, _COST])  # cost at the last stall check
    for it in range(1, max_iter + 1):
        theta, cost = st[:, :6], st[:, _COST]
        jtj, g = normal_equations(xp, st, gidx)
        diag = xp.diagonal(jtj)
        diag = xp.maximum(diag, 1e-12 * xp.amax(diag, 1, keepdims=True) + 1e-30)
        h, solved = xp.solve(xp.diag_embed(lam[:, None] * diag) + jtj, g)
        h = xp.where(solved[:, None], h, 0.0)
        new = theta + h
        new[:, 4:6] = xp.clip(new[:, 4:6], _LOG_S_MIN, _LOG_S_MAX)
        h = new - theta
        st2 = _pack(xp, b, new)
        cost2 = st2[:, _COST]
        pred = 0.5 * (h * (lam[:, None] * diag * h + g)).sum(axis=1)
        rho = (cost - cost2) / xp.clip(pred, 1e-30)
        # a non-finite trial gives a NaN cost: never accepted, so theta stays finite
        acc = (cost2 < cost) & solved & active
        # Nielsen's damping update
        lam = xp.clip(xp.where(acc, lam * xp.clip(1 - (2 * rho - 1) ** 3, 1 / 3), lam * nu), 1e-12, 1e16)
        nu = xp.where(acc, 2.0, nu * 2)
        ok = (xp.abs(h) <= tol).all(axis=1) | (acc & ((cost - cost2) <= ftol * cost2))
        st = xp.where(acc[:, None], st2, st)
        escaped = (xp.abs(st[:, 2:4]) > far).any(axis=1)
        done = active & (ok | (lam >= 1e16) | escaped)
        if it % _STALL_EVERY == 0:
            # crawling along a flat curved valley (typically a width shrinking below ~0.3 px on a
            # faint spot): the cost is within ~1e-6 of its minimum but the parameters are not
            if it >= 2 * _STALL_EVERY:
                done = done | (active & ((cost_mark - st[:, _COST]) <= _STALL_RTOL * st[:, _COST]))
            cost_mark = xp.copy(st[:, _COST])
        if it == max_iter:
            done = active
        if check_every == 1:
            if xp.any(done):  # record the spots finished now (boolean indexing: cheapest on the CPU)
                di = idx[done]
                th = st[done][:, 4:6]
                at_bound = ((th <= _LOG_S_MIN + 1e-9) | (th >= _LOG_S_MAX - 1e-9)).any(axis=1)
                out[di] = st[done]
                out_conv[di] = (ok & ~escaped)[done] & ~at_bound
                out_nit[di] = it
                active = active & ~done
        else:
            # The same without reading anything back to the host (a GPU): a finished spot is frozen
            # (``acc`` and ``done`` need ``active``), so recording it here by ``where`` gives the
            # same result; only the checks below wait for the device.
            th = st[:, 4:6]
            at_bound = ((th <= _LOG_S_MIN + 1e-9) | (th >= _LOG_S_MAX - 1e-9)).any(axis=1)
            out[idx] = xp.where(done[:, None], st, out[idx])
            out_conv[idx] = xp.where(done, ok & ~escaped & ~at_bound, out_conv[idx])
            out_nit[idx] = xp.where(done, it, out_nit[idx])
            active = active & ~done
        if it % check_every == 0 or it == max_iter:
            n_act = xp.count(active)
            if n_act == 0:
                break
            # drop finished spots from the working set only when it pays: copying D costs a pass
            if n_act <= 0.75 * len(idx):
                k = active
                idx, st, lam, nu, active = idx[k], st[k], lam[k], nu[k], active[k]
                tol, cost_mark = tol[k], cost_mark[k]
                b = b.take(k)
    out_theta = xp.copy(out[:, :6])
    out_theta[:, 1] += offset
    return out_theta, xp.copy(out[:, _COST]), out_conv, out_nit
