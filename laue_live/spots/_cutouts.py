"""32 x 32 cutouts ``A(s)`` around initial peaks, with honest padding at the frame edge."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from laue_live._errors import FrameError
from laue_live._rules import CUTOUT_SIZE

__all__ = ["extract_cutouts", "cutout_edge_mask", "cutout_pixel_mask", "check_peaks"]


def check_peaks(peaks) -> np.ndarray:
    """Return initial peaks as an int64 (N, 2) array of (row, col); floats are rounded.

    Raises
    ------
    FrameError
        Not of shape (N, 2), not finite, or not numbers.
    """
    p = np.asarray(peaks)
    if p.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise FrameError(f"peaks must have shape (N, 2) of (row, col), got {p.shape}")
    if p.dtype.kind == "f":
        if not np.isfinite(p).all():
            raise FrameError("peaks hold NaN or infinite positions")
        p = np.rint(p)
    elif p.dtype.kind not in "iu":
        raise FrameError(f"peaks must be integer (row, col), got dtype {p.dtype}")
    return p.astype(np.int64)


def cutout_edge_mask(frame_shape: tuple[int, int], peaks, size: int = CUTOUT_SIZE) -> np.ndarray:
    """Which cutouts cross the frame edge (and so are padded by :func:`extract_cutouts`).

    Parameters
    ----------
    frame_shape
        (rows, cols) of the frame.
    peaks
        (N, 2) integer (row, col) of the initial peaks ``s``.
    size
        Cutout side, px (even).

    Returns
    -------
    numpy.ndarray
        bool, shape (N,): True where rows ``s1 - size/2 .. s1 + size/2 - 1`` or the same columns
        leave ``0 .. frame_shape - 1``.
    """
    p = check_peaks(peaks)
    h, w = int(frame_shape[0]), int(frame_shape[1])
    half = size // 2
    lo = p - half
    hi = p + (size - half - 1)
    return (lo[:, 0] < 0) | (lo[:, 1] < 0) | (hi[:, 0] >= h) | (hi[:, 1] >= w)


def cutout_pixel_mask(mask, peaks, size: int = CUTOUT_SIZE) -> np.ndarray | None:
    """Cut the pixel mask as :func:`extract_cutouts` cuts the frame.

    Parameters
    ----------
    mask
        bool (rows, cols), True for masked pixels, or None.
    peaks
        (N, 2) integer (row, col) of the initial peaks.
    size
        Cutout side, px.

    Returns
    -------
    numpy.ndarray or None
        bool (N, size, size): True where the cutout's pixel is masked (pixels outside the frame are
        not: they are padding, see ``edge``); None when ``mask`` is None.
    """
    if mask is None:
        return None
    m = np.asarray(mask, dtype=bool)
    p = check_peaks(peaks)
    h, w = m.shape
    off = np.arange(size, dtype=np.int64) - size // 2
    rows, cols = p[:, 0, None] + off, p[:, 1, None] + off
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    return m[np.clip(rows, 0, h - 1)[:, :, None], np.clip(cols, 0, w - 1)[:, None, :]] & inside


def extract_cutouts(frame, peaks, size: int = CUTOUT_SIZE, mask=None) -> np.ndarray:
    """Cut ``size x size`` windows ``A(s)`` around the initial peaks.

    Cutout ``k`` holds rows ``s1 - size/2 .. s1 + size/2 - 1`` and columns
    ``s2 - size/2 .. s2 + size/2 - 1`` of the frame (for 32: ``s - 16 .. s + 15``), so ``s`` sits at
    index ``(size/2, size/2)`` and a fitted centre ``mu`` relative to that index gives
    ``Pos = s + mu``.

    Padding: pixels outside the frame are set to the **median of the cutout's in-frame pixels**
    (the local background for any spot smaller than the window). Unlike edge replication this
    neither copies the spot into the padding nor invents structure, so the Gaussian fit sees a flat
    background there; use :func:`cutout_edge_mask` to flag such spots (``edge`` in the spot table).

    Parameters
    ----------
    frame
        2D frame, ADU.
    peaks
        (N, 2) integer (row, col) of the initial peaks, 0-based. Peaks outside the frame are refused.
    size
        Cutout side, px (default 32, the CNN's input).
    mask
        Optional bool (rows, cols) pixel mask (True = not used): masked pixels are filled like the
        padding, with the median of the cutout's other in-frame pixels (so neither the CNN nor the
        fit's start values see them; the fit gives them zero weight, see
        :func:`cutout_pixel_mask`).

    Returns
    -------
    numpy.ndarray
        float32, shape (N, size, size), ADU.

    Raises
    ------
    FrameError
        If ``peaks`` is not (N, 2) or holds a position outside the frame.
    """
    f = np.asarray(frame)
    if f.ndim != 2:
        raise FrameError(f"frame must be 2D, got shape {f.shape}")
    p = check_peaks(peaks)
    n = len(p)
    if n == 0:
        return np.zeros((0, size, size), dtype=np.float32)
    h, w = f.shape
    if (p < 0).any() or (p[:, 0] >= h).any() or (p[:, 1] >= w).any():
        raise FrameError(f"peak position(s) outside the frame of shape {f.shape}")
    half = size // 2
    off = np.arange(size, dtype=np.int64) - half
    rows = p[:, 0, None] + off  # (N, size)
    cols = p[:, 1, None] + off
    bad = cutout_edge_mask(f.shape, p, size)
    out = np.empty((n, size, size), dtype=np.float32)
    inner = ~bad
    if inner.any():  # whole windows: one strided gather from a view of all windows (~6x faster)
        win = sliding_window_view(f, (size, size))
        out[inner] = win[p[inner, 0] - half, p[inner, 1] - half]
    if bad.any():
        out[bad] = f[np.clip(rows[bad], 0, h - 1)[:, :, None], np.clip(cols[bad], 0, w - 1)[:, None, :]]
    cm = cutout_pixel_mask(mask, p, size)
    if cm is not None:
        bad = bad | cm.any(axis=(1, 2))
    if bad.any():
        in_r = (rows[bad] >= 0) & (rows[bad] < h)
        in_c = (cols[bad] >= 0) & (cols[bad] < w)
        usable = in_r[:, :, None] & in_c[:, None, :]
        if cm is not None:
            usable &= ~cm[bad]
        sub = out[bad]
        fill = np.nanmedian(np.where(usable, sub, np.nan).reshape(len(sub), -1), axis=1).astype(np.float32)
        out[bad] = np.where(usable, sub, fill[:, None, None])
    return out
