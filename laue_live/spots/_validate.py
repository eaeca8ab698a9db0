"""Check a detector frame before any array work, so that bad input fails with a clear message."""

from __future__ import annotations

import numpy as np

from laue_live._errors import FrameError
from laue_live._rules import CUTOUT_SIZE

__all__ = ["validate_frame", "MIN_FRAME_SIZE"]

#: Smallest accepted frame side, in pixels (one cutout).
MIN_FRAME_SIZE = CUTOUT_SIZE


def validate_frame(frame, *, min_size: int = MIN_FRAME_SIZE) -> np.ndarray:
    """Check that ``frame`` is a usable 2D detector frame and return it as a numpy array.

    Integer (signed or unsigned) and real floating-point frames are accepted and returned
    unchanged (no copy for numpy input). Empty (all-constant) or all-saturated frames are valid
    here: they simply hold no spots.

    Parameters
    ----------
    frame
        Array-like, shape (rows, cols), detector counts in ADU.
    min_size
        Smallest accepted number of rows and of columns, in pixels.

    Returns
    -------
    numpy.ndarray
        The frame as an array of its own dtype.

    Raises
    ------
    FrameError
        If the frame is not array-like, has a boolean, complex, object, string or other non-numeric
        dtype, is not 2D, is smaller than ``min_size`` on a side, or (float frames) holds NaN or Inf.
    """
    if frame is None:
        raise FrameError("frame is None: expected a 2D numeric array (rows x cols)")
    try:
        arr = np.asarray(frame)
    except Exception as exc:  # ragged lists and the like
        raise FrameError(f"frame cannot be converted to an array: {exc}") from exc
    kind = arr.dtype.kind
    if kind == "b":
        raise FrameError("frame has dtype bool: expected integer or float detector counts")
    if kind == "c":
        raise FrameError(f"frame has complex dtype {arr.dtype}: expected real detector counts")
    if kind not in "iuf":
        raise FrameError(f"frame has dtype {arr.dtype} (kind {kind!r}): expected integer or float "
                         "detector counts")
    if arr.ndim != 2:
        hint = " (squeeze a leading axis of length 1 first)" if arr.ndim == 3 and arr.shape[0] == 1 else ""
        raise FrameError(f"frame must be 2D (rows x cols), got {arr.ndim}D with shape {arr.shape}{hint}")
    if arr.shape[0] < min_size or arr.shape[1] < min_size:
        raise FrameError(f"frame of shape {arr.shape} is too small: need at least {min_size} x {min_size} "
                         "pixels")
    if kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            n_nan = int(np.isnan(arr).sum())
            n_inf = int(arr.size - finite.sum() - n_nan)
            raise FrameError(f"frame holds {n_nan} NaN and {n_inf} infinite pixel value(s); "
                             "replace them (e.g. by the pedestal) before analysis")
    return arr
