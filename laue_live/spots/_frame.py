"""The initial peaks of one frame, with the reasons a frame has none logged."""

from __future__ import annotations

import logging

import numpy as np

from laue_live._rules import SATURATION
from laue_live.spots._cutouts import check_peaks
from laue_live.spots._peaks import find_peaks

__all__ = ["frame_peaks"]

log = logging.getLogger(__name__)


def frame_peaks(frame: np.ndarray, peaks=None, peak_params: dict | None = None, frame_number: int = 0
                ) -> np.ndarray:
    """Return the initial peaks ``s`` of a validated frame: the given ones, checked, or the peak search's.

    Parameters
    ----------
    frame
        2D frame (already through :func:`validate_frame`), ADU.
    peaks
        Optional (N, 2) initial peaks (row, col) to use instead of the peak search.
    peak_params
        Keyword arguments of :func:`find_peaks`.
    frame_number
        Frame number, for the log.

    Returns
    -------
    numpy.ndarray
        int64 (N, 2). Empty, with a logged warning, for a constant, all-saturated or spotless frame.

    Raises
    ------
    FrameError
        ``peaks`` not of shape (N, 2) or not finite.
    """
    if peaks is not None:
        return check_peaks(peaks)
    params = dict(peak_params or {})
    saturation = params.get("saturation", SATURATION)
    lo, hi = frame.min(), frame.max()
    if saturation is not None and lo >= saturation:
        log.warning("frame %d is all saturated (every pixel >= %g ADU): empty spot table", frame_number,
                    saturation)
        return np.zeros((0, 2), dtype=np.int64)
    if lo == hi:
        log.warning("frame %d is constant (%g ADU everywhere): empty spot table", frame_number, float(lo))
        return np.zeros((0, 2), dtype=np.int64)
    p = find_peaks(frame, validate=False, **params)
    if len(p) == 0:
        log.warning("frame %d: no peaks above threshold: empty spot table", frame_number)
    return p
