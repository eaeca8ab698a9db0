"""The network's prediction as the start of a few Levenberg-Marquardt steps of the exact fit.

The exact fit (:func:`laue_live.spots.fit_gaussians`) starts from moment estimates and needs 6-9
iterations on typical spots, up to its limit of 50 on irregular ones. A network that predicts the
fit's centre and its widths along rows and columns (:class:`~laue_live.cnn.SpotNet` with
``widths_out``) puts the start next to the minimum; ``polish`` more iterations then give the fit's
own answer, Sim included, and the table is the fit's (:func:`laue_live.spots.fit_descriptors`) with the
network's start. Whether that is faster than the fit alone at the fit's accuracy is measured in
``docs/report/REPORT.md`` (the Pareto table).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from laue_live._rules import POS_CLIP
from laue_live.cnn._descriptors import WIDTH_LOG_RANGE
from laue_live.spots import fit_descriptors, moment_start

__all__ = ["start_from_desc", "polish", "polish_valid"]

#: The fitted parameters, as descriptor columns: a polished spot is valid where they are finite.
_PARAMETER_COLUMNS = ("d_row", "d_col", "sigma_row", "sigma_col", "amplitude", "background")


def start_from_desc(desc, cutouts):
    """Start values ``(alpha, beta, mu_row, mu_col, sigma_row, sigma_col)`` from network outputs.

    Centre and widths are the network's (``desc`` ``(N, 7)``: ``Desc`` then ``W*_row, W*_col``);
    the height ``A`` and the background ``beta`` are then the linear least-squares solution for the
    cutout (the model is linear in them: two sums per spot), ``alpha = 2 pi sigma_row sigma_col A``.
    Where that solution is not a positive height (a flat or odd cutout), the moment start values
    of the fit are used for ``A`` and ``beta``.

    Parameters
    ----------
    desc
        ``(N, 7)`` network outputs (numpy or torch).
    cutouts
        ``(N, S, S)`` raw cutouts, ADU (numpy or torch; a tensor stays on its device).

    Returns
    -------
    torch.Tensor
        ``(N, 6)`` float32 on the cutouts' device, the ``start`` of :func:`laue_live.spots.fit_gaussians`.
    """
    c = torch.as_tensor(cutouts).float()
    d = torch.as_tensor(desc, device=c.device).float()
    if d.ndim != 2 or d.shape[1] < 7:
        raise ValueError(f"the polish needs a network with width outputs (N, 7), got {tuple(d.shape)}")
    n, s, _ = c.shape
    mu_r = d[:, 1] * 2 * POS_CLIP - POS_CLIP
    mu_c = d[:, 2] * 2 * POS_CLIP - POS_CLIP
    lo, hi = WIDTH_LOG_RANGE
    s_r, s_c = torch.exp(lo + (hi - lo) * d[:, 5]), torch.exp(lo + (hi - lo) * d[:, 6])
    x = torch.arange(s, dtype=c.dtype, device=c.device) - s // 2
    u = torch.exp(-0.5 * ((x - mu_r[:, None]) / s_r[:, None]) ** 2)
    v = torch.exp(-0.5 * ((x - mu_c[:, None]) / s_c[:, None]) ** 2)
    # centred on the cutout's mean so that float32 resolves the height on a large pedestal
    mean = c.mean(dim=(1, 2))
    cc = c - mean[:, None, None]
    uiv = (u * torch.bmm(cc, v[:, :, None])[:, :, 0]).sum(1)
    p = u.sum(1) * v.sum(1)
    q = (u * u).sum(1) * (v * v).sum(1)
    npix = s * s
    a = uiv / (q - p * p / npix)  # least squares of cc = A (u v^T - mean(u v^T)) + const
    beta = mean - a * p / npix
    ok = torch.isfinite(a) & torch.isfinite(beta) & (a > 0)
    if not bool(ok.all()):
        m = moment_start(c, s // 2)
        a = torch.where(ok, a, m[:, 0])
        beta = torch.where(ok, beta, m[:, 1])
    return torch.stack([a * 2 * math.pi * s_r * s_c, beta, mu_r, mu_c, s_r, s_c], dim=1)


def polish(cutouts: np.ndarray, desc: np.ndarray, steps: int = 3, **kw) -> pd.DataFrame:
    """Spot table of the exact fit started at the network's prediction, ``steps`` iterations at most.

    Parameters
    ----------
    cutouts
        ``(N, S, S)`` raw cutouts, ADU.
    desc
        ``(N, 7)`` network outputs for them.
    steps
        Levenberg-Marquardt iterations (spots that meet the fit's tolerance stop earlier).
    **kw
        Further arguments of :func:`laue_live.spots.fit_descriptors` (``sim_variant``, ``saturation``, ...).

    Returns
    -------
    pandas.DataFrame
        The columns of ``characterize(method="fit")``; ``converged`` is :func:`polish_valid`.
    """
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")
    start = start_from_desc(desc, cutouts).double().numpy()
    table = fit_descriptors(cutouts, start=start, max_iter=int(steps), **kw)
    table["converged"] = polish_valid(table)
    return table


def polish_valid(columns):
    """Return the ``converged`` flag of polished spots: True where every fitted parameter is finite.

    A polish is the network's estimate refined by a bounded number of fit iterations, not a fit run
    to its tolerance: the fit's own flag would be False on most spots after one iteration, and the
    spot table's ``good`` (which requires ``converged``) would then reject them all. Like the
    network's own descriptors (always ``converged``), a polished spot is valid unless its
    parameters are not finite.

    Parameters
    ----------
    columns
        Mapping (a DataFrame, or a dict of numpy arrays or torch tensors) with the descriptor
        columns ``d_row, d_col, sigma_row, sigma_col, amplitude, background``.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        (N,) bool, of the columns' kind.
    """
    values = [columns[k] for k in _PARAMETER_COLUMNS]
    if isinstance(values[0], torch.Tensor):
        return torch.isfinite(torch.stack(values, 1)).all(1)
    return np.isfinite(np.stack([np.asarray(v, dtype=np.float64) for v in values], 1)).all(1)
