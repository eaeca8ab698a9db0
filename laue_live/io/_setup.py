"""From file names to the objects the analysis takes: detector corrections and calibration."""

from __future__ import annotations

from pathlib import Path

from laue_live._errors import SettingsError
from laue_live.geometry import Calibration, Detector, get_detector, read_det
from laue_live.io._masks import read_image, read_mask
from laue_live.spots import FrameCorrections

__all__ = ["load_corrections", "load_calibration", "parse_beamstop"]


def parse_beamstop(text: str | None) -> tuple[float, float, float] | None:
    """``"row,col,radius"`` (px, 0-based) -> a tuple, or None for None/empty.

    Raises
    ------
    SettingsError
        Not three numbers.
    """
    if text is None or not str(text).strip():
        return None
    try:
        vals = tuple(float(v) for v in str(text).replace(" ", "").split(","))
    except ValueError:
        vals = ()
    if len(vals) != 3:
        raise SettingsError(f"beamstop must be 'row,col,radius' in px, got {text!r}")
    return vals  # type: ignore[return-value]


def load_corrections(mask: str | Path | None = None, dark: str | Path | None = None,
                     flat: str | Path | None = None, *, auto: bool = True,
                     beamstop: tuple[float, float, float] | str | None = None,
                     detector: str | Detector | None = None) -> FrameCorrections:
    """Build :class:`laue_live.spots.FrameCorrections` from files.

    Parameters
    ----------
    mask
        Mask file (:func:`laue_live.io.read_mask`: non-zero = not used).
    dark, flat
        Dark frame and flat field files (any frame file).
    auto
        Also mask each frame's 0-reading and hot pixels.
    beamstop
        ``(row, col, radius)`` px or ``"row,col,radius"``.
    detector
        Preset (:func:`laue_live.geometry.get_detector`): its saturation is used for the hot-pixel
        test, and mask, dark and flat must have its frame shape.

    Raises
    ------
    FrameFileError
        An unreadable file or a mask of the wrong shape.
    FrameError, SettingsError
        Inconsistent shapes, a bad beamstop or detector name.
    """
    det = None if detector is None else get_detector(detector)
    shape = None if det is None else det.frame_shape
    m = None if mask is None else read_mask(mask, shape=shape)
    d = None if dark is None else read_image(dark)
    f = None if flat is None else read_image(flat)
    for what, arr in (("dark frame", d), ("flat field", f)):
        if arr is not None and shape is not None and arr.shape != tuple(shape):
            raise SettingsError(f"{what} has shape {arr.shape} but the {det.name} frames are {tuple(shape)}")
    bs = parse_beamstop(beamstop) if isinstance(beamstop, str) else beamstop
    return FrameCorrections(mask=m, dark=d, flat=f, auto=auto, beamstop=bs,
                            saturation=65535.0 if det is None else det.saturation)


def load_calibration(path: str | Path | None, detector: str | Detector | None = None) -> Calibration | None:
    """Read a LaueTools ``.det`` calibration (None for None); check it against a detector preset.

    Raises
    ------
    SettingsError
        Unreadable file, or a pixel size or frame shape that contradicts ``detector``.
    """
    if path is None:
        return None
    cal, _ = read_det(path)
    if detector is not None:
        det = get_detector(detector)
        if abs(cal.pixel_size - det.pixel_size) > 1e-3 or tuple(cal.frame_shape) != tuple(det.frame_shape):
            raise SettingsError(f"calibration {path} ({cal.frame_shape[0]} x {cal.frame_shape[1]} px of "
                                f"{cal.pixel_size} mm) does not describe a {det.name} "
                                f"({det.frame_shape[0]} x {det.frame_shape[1]} px of {det.pixel_size} mm)")
    return cal
