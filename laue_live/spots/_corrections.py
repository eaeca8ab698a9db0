"""Detector corrections applied to a frame before the peak search: dark, flat field and pixel mask.

Mask convention: ``True`` (or non-zero in a file) marks a pixel that must not be used, as in
pyFAI's ``.msk`` files and NeXus ``pixel_mask``. A masked pixel never enters the background, never
becomes a spot pixel and gets zero weight in the Gaussian fit; a spot whose 32 x 32 cutout holds a
masked pixel is flagged ``masked`` in the spot table (as ``edge`` flags cutouts that cross the
frame's edge).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from laue_live._errors import FrameError

__all__ = ["FrameCorrections", "correct_frame", "auto_mask"]

log = logging.getLogger(__name__)

#: An isolated saturated pixel is "hot" when none of its 8 neighbours reaches this fraction of the
#: saturation: a real saturated spot spreads over several bright pixels.
_HOT_NEIGHBOUR_FRACTION = 0.25


def _as_image(a, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2 or arr.dtype.kind not in "iufb":
        raise FrameError(f"{what} must be a 2D numeric array, got shape {arr.shape} and dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise FrameError(f"{what} holds NaN or infinite values")
    return arr


def auto_mask(frame, *, saturation: float | None = 65535.0) -> np.ndarray | None:
    """Pixels of a raw frame that carry no signal: read 0, or hot.

    * **0 ADU**: no active area (the corners outside a MarCCD's circular window read exactly 0),
      dead pixels and gaps. A working pixel of these detectors always reads its offset (a BM32
      sCMOS ~1000 ADU, a MarCCD ~10-40 ADU), so 0 means "no pixel here".
    * **hot**: a saturated pixel none of whose 8 neighbours reaches a quarter of the saturation
      (a zinger or a stuck pixel; a real spot that saturates has bright neighbours).

    Parameters
    ----------
    frame
        2D raw frame (before dark subtraction), ADU.
    saturation
        Saturation value, ADU; None skips the hot-pixel test.

    Returns
    -------
    numpy.ndarray or None
        bool (rows, cols), True where masked; None when no pixel is (the common case, no array made).
    """
    f = np.asarray(frame)
    lo, hi = f.min(), f.max()
    mask = None
    if lo == 0 < hi:  # (a frame with negative values is already processed: 0 is a value there)
        mask = f == 0
    if saturation is not None and hi >= saturation:
        hot = _isolated_saturated(f, saturation)
        if hot.size:
            if mask is None:
                mask = np.zeros(f.shape, dtype=bool)
            mask.ravel()[hot] = True
            log.debug("%d hot pixel(s) masked", hot.size)
    return mask


def _isolated_saturated(f: np.ndarray, saturation: float) -> np.ndarray:
    h, w = f.shape
    idx = np.flatnonzero(f >= saturation)
    r, c = np.divmod(idx, w)
    nb = np.full(idx.size, -np.inf)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr or dc:
                rr, cc = r + dr, c + dc
                ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
                v = np.full(idx.size, -np.inf)
                v[ok] = f[rr[ok], cc[ok]]
                np.maximum(nb, v, out=nb)
    return idx[nb < _HOT_NEIGHBOUR_FRACTION * saturation]


@dataclass
class FrameCorrections:
    """What is done to every frame of a detector before its spots are searched.

    Parameters
    ----------
    mask
        Static pixel mask (bool or 0/non-0 array of the frame's shape, True/non-zero = not used),
        e.g. from :func:`laue_live.io.read_mask`.
    dark
        Dark frame (ADU) subtracted from every frame; its 0-reading pixels are masked.
    flat
        Flat field: frames are divided by ``flat / median(flat)`` (pixels with ``flat <= 0`` are
        masked).
    auto
        Mask each frame's 0-reading and hot pixels (:func:`auto_mask`).
    beamstop
        ``(row, col, radius)`` of a circular beamstop shadow to mask, px (0-based).
    saturation
        Saturation value for the hot-pixel test, ADU.

    Raises
    ------
    FrameError
        A mask, dark or flat that is not a finite 2D array, or arrays of different shapes.
    """

    mask: np.ndarray | None = None
    dark: np.ndarray | None = None
    flat: np.ndarray | None = None
    auto: bool = True
    beamstop: tuple[float, float, float] | None = None
    saturation: float | None = 65535.0
    _static: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        shapes = {}
        if self.mask is not None:
            self.mask = _as_image(self.mask, "mask").astype(bool, copy=False)
            shapes["mask"] = self.mask.shape
        if self.dark is not None:
            self.dark = _as_image(self.dark, "dark frame")
            shapes["dark frame"] = self.dark.shape
        if self.flat is not None:
            flat = _as_image(self.flat, "flat field").astype(np.float32)
            good = flat > 0
            if not good.any():
                raise FrameError("flat field has no positive pixel")
            self.flat = np.where(good, flat / np.float32(np.median(flat[good])), np.float32(1.0))
            self._static["flat_bad"] = ~good
            shapes["flat field"] = self.flat.shape
        if len(set(shapes.values())) > 1:
            raise FrameError("mask, dark and flat must have the same shape, got "
                             + ", ".join(f"{k} {v}" for k, v in shapes.items()))
        if self.beamstop is not None:
            b = tuple(float(v) for v in self.beamstop)
            if len(b) != 3 or not np.all(np.isfinite(b)) or b[2] <= 0:
                raise FrameError(f"beamstop must be (row, col, radius > 0) in px, got {self.beamstop}")
            self.beamstop = b

    @property
    def is_identity(self) -> bool:
        """No correction and no mask at all: frames go through untouched."""
        return (self.mask is None and self.dark is None and self.flat is None and not self.auto
                and self.beamstop is None)

    def static_mask(self, shape: tuple[int, int]) -> np.ndarray | None:
        """Return the mask that is the same for every frame of ``shape`` (file, dark, flat, beamstop)."""
        key = ("static", tuple(shape))
        if key not in self._static:
            m = None if self.mask is None else self.mask.copy()
            extra = []
            if self.dark is not None:
                extra.append(self.dark == 0)
            if "flat_bad" in self._static:
                extra.append(self._static["flat_bad"])
            if self.beamstop is not None:
                r0, c0, rad = self.beamstop
                rr = (np.arange(shape[0]) - r0)[:, None]
                cc = (np.arange(shape[1]) - c0)[None, :]
                extra.append(rr * rr + cc * cc <= rad * rad)
            for e in extra:
                m = e.copy() if m is None else (m | e)
            self._static[key] = m if m is not None and m.any() else None
        return self._static[key]

    def apply(self, frame) -> tuple[np.ndarray, np.ndarray | None]:
        """Correct one frame.

        Parameters
        ----------
        frame
            Validated 2D raw frame, ADU.

        Returns
        -------
        image, mask
            The corrected image (the frame itself, no copy, when there is no dark and no flat;
            float32 otherwise) and the bool mask (None when no pixel is masked).

        Raises
        ------
        FrameError
            A mask, dark or flat of another shape than the frame, or every pixel masked.
        """
        f = np.asarray(frame)
        for what, arr in (("mask", self.mask), ("dark frame", self.dark), ("flat field", self.flat)):
            if arr is not None and arr.shape != f.shape:
                raise FrameError(f"{what} has shape {arr.shape} but the frame is {f.shape}")
        mask = self.static_mask(f.shape)
        if self.auto:
            auto = auto_mask(f, saturation=self.saturation)
            if auto is not None:
                mask = auto if mask is None else (mask | auto)
        image = f
        if self.dark is not None:
            image = f.astype(np.float32) - self.dark.astype(np.float32)
        if self.flat is not None:
            image = (image if image is not f else f.astype(np.float32)) / self.flat
        if mask is not None and mask.all():
            raise FrameError(f"every pixel of the {f.shape[0]} x {f.shape[1]} frame is masked")
        return image, mask


def correct_frame(frame, corrections: FrameCorrections | None = None):
    """Dark-subtract, flat-field and mask a frame (:meth:`FrameCorrections.apply`).

    ``corrections=None`` applies the default: the automatic mask only.
    """
    return (corrections or FrameCorrections()).apply(frame)
