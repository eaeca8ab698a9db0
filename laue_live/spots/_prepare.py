"""One frame's way to its cutouts: corrections and mask, peak search, cutouts and their pixel masks."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from laue_live.spots._corrections import FrameCorrections
from laue_live.spots._cutouts import (
    CUTOUT_SIZE,
    check_peaks,
    cutout_edge_mask,
    cutout_pixel_mask,
    extract_cutouts,
)
from laue_live.spots._peaks import check_peak_params, find_peaks

__all__ = ["PreparedFrame", "prepare_frame"]

log = logging.getLogger(__name__)


@dataclass
class PreparedFrame:
    """A frame ready to be characterized.

    Attributes
    ----------
    peaks
        int64 (N, 2): initial peaks ``s`` (row, col).
    cutouts
        float32 (N, 32, 32), ADU, masked and out-of-frame pixels filled with the local median.
    edge
        bool (N,): the cutout crossed the frame edge.
    pixel_mask
        bool (N, 32, 32), True on masked detector pixels, or None when no cutout holds one.
    shape
        ``(rows, cols)`` of the frame.
    mask
        bool (rows, cols) pixel mask of the frame, or None.
    """

    peaks: np.ndarray
    cutouts: np.ndarray
    edge: np.ndarray
    pixel_mask: np.ndarray | None
    shape: tuple[int, int] = (0, 0)
    mask: np.ndarray | None = None

    @property
    def masked(self) -> np.ndarray:
        """Bool (N,): the cutout holds a masked pixel."""
        if self.pixel_mask is None:
            return np.zeros(len(self.peaks), dtype=bool)
        return self.pixel_mask.any(axis=(1, 2))


def prepare_frame(frame: np.ndarray, *, peaks=None, peak_params: dict | None = None,
                  corrections: FrameCorrections | None = None, frame_number: int = 0) -> PreparedFrame:
    """Correct a validated frame, find its peaks (unless given) and cut them out.

    A constant or all-saturated frame, or one without peaks above the threshold, gives no peaks
    (with a logged warning).

    Parameters
    ----------
    frame
        Validated 2D raw frame, ADU.
    peaks
        Optional (N, 2) initial peaks to use instead of the peak search.
    peak_params
        Peak-search parameters (:func:`check_peak_params`).
    corrections
        Dark, flat field and mask; default: the automatic mask only.
    frame_number
        For log messages.

    Raises
    ------
    FrameError
        Corrections of another shape than the frame, every pixel masked, bad ``peaks``.
    SettingsError
        Bad peak parameters.
    """
    params = check_peak_params(peak_params)
    corr = corrections if corrections is not None else FrameCorrections(saturation=params["saturation"])
    lo, hi = frame.min(), frame.max()
    saturation = params["saturation"]
    image, mask = frame, None
    if peaks is not None:
        p = check_peaks(peaks)
        image, mask = corr.apply(frame)
    elif saturation is not None and lo >= saturation:
        log.warning("frame %d is all saturated (every pixel >= %g ADU): empty spot table", frame_number,
                    saturation)
        p = np.zeros((0, 2), dtype=np.int64)
    elif lo == hi:
        log.warning("frame %d is constant (%g ADU everywhere): empty spot table", frame_number, float(lo))
        p = np.zeros((0, 2), dtype=np.int64)
    else:
        image, mask = corr.apply(frame)
        p = find_peaks(image, validate=False, mask=mask, **params)
        if len(p) == 0:
            log.warning("frame %d: no peaks above threshold: empty spot table", frame_number)
    cut = extract_cutouts(image, p, CUTOUT_SIZE, mask=mask)
    pm = cutout_pixel_mask(mask, p, CUTOUT_SIZE)
    if pm is not None and not pm.any():
        pm = None
    edge = cutout_edge_mask(frame.shape, p, CUTOUT_SIZE)
    return PreparedFrame(peaks=p, cutouts=cut, edge=edge, pixel_mask=pm, shape=frame.shape, mask=mask)
