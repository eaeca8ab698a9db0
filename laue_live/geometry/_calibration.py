"""Detector calibration in LaueTools' terms, and a reader for LaueTools ``.det`` files.

LaueTools describes BM32's top-reflection detector by five parameters, ``dd, xcen, ycen, xbet, xgam``
(see :class:`Calibration`), plus the pixel size and the frame dimensions. A ``.det`` file written by
LaueTools' calibration GUI holds them on its first line, usually followed by the orientation matrix of
the crystal used for the calibration and ``# key : value`` comment lines.

Pixel positions in LaueTools (``xcen, ycen`` and the peak lists) are X = column, Y = row, with the
same origin as the peak lists. This module keeps the numbers exactly as LaueTools writes them; the
simulator converts to the project's 0-based ``(row, col)`` convention (``row = Y - 1``,
``col = X - 1``) in one place.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from laue_live._errors import SettingsError

__all__ = ["Calibration", "read_det", "BM32_CALIBRATION"]


@dataclass(frozen=True)
class Calibration:
    """Geometry of a top-reflection Laue detector, in LaueTools' parameters.

    Parameters
    ----------
    dd
        Sample-detector distance: length of the normal from the sample point I to the detector
        plane (point O), mm.
    xcen, ycen
        Pixel coordinates (X = column, Y = row, LaueTools' 1-based origin) of O, the foot of
        that normal, px.
    xbet
        Tilt of the detector plane about the horizontal axis perpendicular to the beam: angle
        between IO and the vertical z axis, degrees.
    xgam
        In-plane rotation of the pixel axes, degrees.
    pixel_size
        Pixel pitch, mm (square pixels).
    frame_shape
        ``(rows, cols)`` of the frame, px.
    """

    dd: float = 79.612
    xcen: float = 977.81
    ycen: float = 932.17
    xbet: float = 0.477
    xgam: float = 0.447
    pixel_size: float = 0.0734
    frame_shape: tuple[int, int] = (2018, 2016)

    def __post_init__(self) -> None:
        values = (self.dd, self.xcen, self.ycen, self.xbet, self.xgam, self.pixel_size)
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise SettingsError(f"calibration parameters must be finite numbers, got {values}")
        if self.dd <= 0:
            raise SettingsError(f"detector distance dd must be > 0 mm, got {self.dd}")
        if self.pixel_size <= 0:
            raise SettingsError(f"pixel_size must be > 0 mm, got {self.pixel_size}")
        shape = tuple(int(n) for n in self.frame_shape)
        if len(shape) != 2 or min(shape) < 1:
            raise SettingsError(f"frame_shape must be (rows, cols) >= 1, got {self.frame_shape}")
        object.__setattr__(self, "frame_shape", shape)

    @property
    def params(self) -> list[float]:
        """``[dd, xcen, ycen, xbet, xgam]``, the five-parameter list LaueTools functions take."""
        return [self.dd, self.xcen, self.ycen, self.xbet, self.xgam]

    def to_dict(self) -> dict:
        """Plain-JSON form (for start documents and file metadata)."""
        d = asdict(self)
        d["frame_shape"] = list(self.frame_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        """Inverse of :meth:`to_dict`."""
        known = {k: d[k] for k in ("dd", "xcen", "ycen", "xbet", "xgam", "pixel_size") if k in d}
        if "frame_shape" in d:
            known["frame_shape"] = tuple(d["frame_shape"])
        return cls(**known)


#: The BM32 calibration of ``nw1_0000.tif`` (Si, 15 Sep 2021), the simulator's default.
BM32_CALIBRATION = Calibration()

_MATRIX_RE = re.compile(r"\[\s*\[.*?\]\s*\]", re.S)


def read_det(path: str | Path) -> tuple[Calibration, np.ndarray | None]:
    """Read a LaueTools ``.det`` calibration file.

    Parameters
    ----------
    path
        The ``.det`` file. Its first line is ``dd, xcen, ycen, xbet, xgam[, pixelsize, dim1, dim2]``;
        ``# pixelsize : ...`` and ``# framedim : (rows, cols)`` comment lines override the defaults,
        and an ``Orientation Matrix:`` block, if present, is returned too.

    Returns
    -------
    calibration, orientation
        The calibration and the 3 x 3 orientation matrix (LaueTools frame: x along the beam,
        z vertical up), or ``None`` if the file holds none.

    Raises
    ------
    SettingsError
        If the file is missing or its first line does not hold at least five numbers.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SettingsError(f"cannot read calibration file {path}: {exc}") from exc
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise SettingsError(f"calibration file {path} is empty")
    try:
        first = [float(v) for v in re.split(r"[,\s]+", lines[0].strip("[] ")) if v]
    except ValueError as exc:
        raise SettingsError(
            f"{path}: first line must be 'dd, xcen, ycen, xbet, xgam, ...': {lines[0]!r}"
        ) from exc
    if len(first) < 5:
        raise SettingsError(f"{path}: first line holds {len(first)} numbers, need dd, xcen, ycen, xbet, xgam")
    kw: dict = dict(zip(("dd", "xcen", "ycen", "xbet", "xgam"), first[:5], strict=True))
    if len(first) >= 6:
        kw["pixel_size"] = first[5]
    if len(first) >= 8:
        kw["frame_shape"] = (int(first[6]), int(first[7]))
    for ln in lines:
        m = re.match(r"#\s*(\w+)\s*:\s*(.+)$", ln)
        if not m:
            continue
        key, value = m.group(1).lower(), m.group(2).strip()
        try:
            if key == "pixelsize":
                kw["pixel_size"] = float(value)
            elif key == "framedim":
                rows, cols = ast.literal_eval(value)
                kw["frame_shape"] = (int(rows), int(cols))
        except (ValueError, SyntaxError, TypeError) as exc:
            raise SettingsError(f"{path}: cannot parse '{ln}'") from exc
    calibration = Calibration(**kw)

    orientation = None
    idx = text.find("Orientation Matrix")
    if idx >= 0:
        m = _MATRIX_RE.search(text, idx)
        if m is None:
            raise SettingsError(f"{path}: 'Orientation Matrix' without a [[...]] matrix")
        try:
            orientation = np.array(ast.literal_eval(m.group(0)), dtype=float)
        except (ValueError, SyntaxError) as exc:
            raise SettingsError(f"{path}: cannot parse the orientation matrix") from exc
        if orientation.shape != (3, 3) or not np.all(np.isfinite(orientation)):
            raise SettingsError(f"{path}: orientation matrix must be 3 x 3 finite, got {orientation.shape}")
    return calibration, orientation
