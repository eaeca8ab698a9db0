"""Cutouts gathered on the device: the windows and edge padding of :func:`laue_live.spots.extract_cutouts`."""

from __future__ import annotations

import torch

from laue_live._rules import CUTOUT_SIZE

__all__ = ["gather_cutouts"]


def gather_cutouts(
    xp: torch.Tensor,
    h: int,
    w: int,
    frame: torch.Tensor,
    row: torch.Tensor,
    col: torch.Tensor,
    size: int = CUTOUT_SIZE,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Cut ``size x size`` windows around peaks of a batch of frames, in one gather.

    Window ``k`` holds rows ``row_k - size/2 .. row_k + size/2 - 1`` (same for columns) of frame
    ``frame_k``. Pixels outside the frame, and masked pixels, are set to the median of the window's
    other in-frame pixels (numpy's ``nanmedian``: the mean of the two middle values for an even
    count), as the CPU path does.

    Parameters
    ----------
    xp
        (B, Hp, Wp) float32 frames (possibly padded beyond ``h, w``; padding is never read).
    h, w
        Frame size, px.
    frame, row, col
        int64 (N,): frame index within the batch and 0-based peak position.
    size
        Window side, px (even).
    mask
        Optional bool (B, h, w) pixel mask (True = masked) on the same device.

    Returns
    -------
    cutouts : torch.Tensor
        float32 (N, size, size), ADU.
    edge : torch.Tensor
        bool (N,): the window crossed the frame edge and was padded.
    pixel_mask : torch.Tensor or None
        bool (N, size, size): masked pixels of each window (None without ``mask``).
    """
    dev = xp.device
    half = size // 2
    off = torch.arange(size, device=dev) - half
    rows = row[:, None] + off  # (N, size)
    cols = col[:, None] + off
    _, hp, wp = xp.shape
    # one flat int64 index per pixel of every window (three broadcast index tensors cost 3x more)
    base = (frame * (hp * wp))[:, None, None]
    flat = base + (rows.clamp(0, h - 1) * wp)[:, :, None] + cols.clamp(0, w - 1)[:, None, :]
    out = xp.reshape(-1)[flat]
    edge = (row - half < 0) | (col - half < 0) | (row + size - half - 1 >= h) | (col + size - half - 1 >= w)
    pm = None
    bad = edge
    if mask is not None:
        rr, cc = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
        mflat = (frame * (h * w))[:, None, None] + (rr * w)[:, :, None] + cc[:, None, :]
        inside_all = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
        pm = mask.reshape(-1)[mflat] & inside_all
        bad = edge | pm.flatten(1).any(1)
    e = torch.nonzero(bad).squeeze(1)
    if e.numel():
        inside = ((rows[e] >= 0) & (rows[e] < h))[:, :, None] & ((cols[e] >= 0) & (cols[e] < w))[:, None, :]
        if pm is not None:
            inside = inside & ~pm[e]
        sub = out[e]
        vals = torch.where(inside, sub, torch.full_like(sub, float("nan"))).reshape(len(e), -1)
        srt = vals.sort(dim=1).values  # NaN sort last
        k = inside.reshape(len(e), -1).sum(dim=1, keepdim=True)
        med = (srt.gather(1, (k - 1) // 2) + srt.gather(1, k // 2)) / 2
        out[e] = torch.where(inside, sub, med[:, :, None])
    return out, edge, pm
