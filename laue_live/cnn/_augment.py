"""Training augmentation: integer shifts, 90-degree rotations and reflections about the initial peak.

The initial peak ``s`` sits at cutout index (16, 16), not at the array centre (15.5), so every
transform is done about pixel (16, 16) (the array is padded by one replicated row and column first)
and the position offsets ``d = Pos - s`` are transformed with it; the Gaussian's sigmas swap under
a 90-degree rotation, which leaves Asp and Area (and Sim) unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["dihedral", "shift", "augment_batch"]


def dihedral(
    x: torch.Tensor, d_row: torch.Tensor, d_col: torch.Tensor, k: int, flip: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reflect (rows, if ``flip``) then rotate by ``k`` x 90 degrees about pixel (h/2, w/2).

    Parameters
    ----------
    x
        Cutouts ``(N, ..., H, W)`` with even ``H == W``.
    d_row, d_col
        Offsets ``Pos - s`` of the spots, px, shape ``(N,)``.
    k
        Number of counter-clockwise quarter turns (as :func:`numpy.rot90`).
    flip
        Reflect rows (``r -> -r`` about the centre pixel) before rotating.

    Returns
    -------
    x, d_row, d_col
        The transformed cutouts and offsets; the spot content stays at the same pixels relative
        to (h/2, w/2).
    """
    h = x.shape[-1]
    lead = x.shape[:-2]
    y = F.pad(x.reshape(-1, 1, h, h), (0, 1, 0, 1), mode="replicate")  # centre pixel h/2 of h+1
    dr, dc = d_row, d_col
    if flip:
        y = torch.flip(y, dims=(-2,))
        dr = -dr
    for _ in range(k % 4):
        # np.rot90: new[i, j] = old[j, n-1-i] -> offsets (dr, dc) -> (-dc, dr)
        y = torch.rot90(y, 1, dims=(-2, -1))
        dr, dc = -dc, dr
    return y[..., :h, :h].reshape(*lead, h, h), dr, dc


def shift(
    x: torch.Tensor, d_row: torch.Tensor, d_col: torch.Tensor, s_row: int, s_col: int, max_shift: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move the content by ``(s_row, s_col)`` px (edge pixels replicated into the gap)."""
    h, w = x.shape[-2:]
    lead = x.shape[:-2]
    m = max_shift
    y = F.pad(x.reshape(-1, 1, h, w), (m, m, m, m), mode="replicate")
    y = y[..., m - s_row : m - s_row + h, m - s_col : m - s_col + w]
    return y.reshape(*lead, h, w), d_row + s_row, d_col + s_col


def augment_batch(
    x: torch.Tensor, d_row: torch.Tensor, d_col: torch.Tensor, generator: torch.Generator, max_shift: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random dihedral transform and random integer shift (each axis in ``[-max_shift, max_shift]``).

    One of the 8 dihedral elements and one shift per sample, drawn from ``generator`` (so a seeded
    training run is reproducible). ``x`` is ``(N, H, W)``; returns new tensors.
    """
    n = x.shape[0]
    g = torch.randint(0, 8, (n,), generator=generator)
    s = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator) if max_shift > 0 else None
    out_x = torch.empty_like(x)
    out_r = torch.empty_like(d_row)
    out_c = torch.empty_like(d_col)
    for e in range(8):
        idx = (g == e).nonzero(as_tuple=True)[0]
        if len(idx) == 0:
            continue
        xi, ri, ci = dihedral(x[idx], d_row[idx], d_col[idx], k=e % 4, flip=e >= 4)
        out_x[idx], out_r[idx], out_c[idx] = xi, ri, ci
    if s is not None:
        for sr in range(-max_shift, max_shift + 1):
            for sc in range(-max_shift, max_shift + 1):
                idx = ((s[:, 0] == sr) & (s[:, 1] == sc)).nonzero(as_tuple=True)[0]
                if len(idx) == 0 or (sr == 0 and sc == 0):
                    continue
                out_x[idx], out_r[idx], out_c[idx] = shift(
                    out_x[idx], out_r[idx], out_c[idx], sr, sc, max_shift
                )
    return out_x, out_r, out_c
