"""Detector presets: frame shape, pixel size, saturation and active area of the Laue detectors in use.

The names are LaueTools' ``CCDLabel`` values, so that a preset and a LaueTools ``.det`` or ``.cor``
file name the same detector. To add a detector, add one :class:`Detector` to :data:`DETECTORS`
(and, if users call it otherwise, its other names to ``aliases``); the CLI (``--detector``), the
service settings (``detector``) and the simulator (:meth:`laue_live.sim.RenderConfig.for_detector`)
pick it up from there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from laue_live._errors import SettingsError
from laue_live.geometry._calibration import BM32_CALIBRATION, Calibration

__all__ = ["Detector", "DETECTORS", "get_detector", "nominal_calibration"]


@dataclass(frozen=True)
class Detector:
    """One Laue detector model.

    Parameters
    ----------
    name
        LaueTools' ``CCDLabel`` of the detector.
    frame_shape
        ``(rows, cols)`` of a frame, px.
    pixel_size
        Pixel pitch, mm (square pixels).
    saturation
        Highest value a pixel can read, ADU.
    active_radius
        Radius of a circular active window centred on the frame, px (pixels outside read 0); None
        when the whole frame is active.
    offset
        Typical offset (pedestal) of a pixel without signal, ADU.
    description
        One line for people.
    aliases
        Other names accepted by :func:`get_detector` (case-insensitive).
    """

    name: str
    frame_shape: tuple[int, int]
    pixel_size: float
    saturation: float = 65535.0
    active_radius: float | None = None
    offset: float = 0.0
    description: str = ""
    aliases: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """Plain-JSON form (metadata of runs and files)."""
        d = asdict(self)
        d["frame_shape"] = list(self.frame_shape)
        d["aliases"] = list(self.aliases)
        return d


#: The known detectors, by LaueTools ``CCDLabel``.
DETECTORS: dict[str, Detector] = {
    d.name: d
    for d in (
        Detector("sCMOS", (2018, 2016), 0.0734, 65535.0, None, 1000.0,
                 "ESRF BM32 sCMOS camera (Photonic Science), 2018 x 2016 px of 73.4 um, 16 bit, "
                 "~1000 ADU pedestal", aliases=("bm32", "bm32-scmos", "scmos")),
        Detector("MARCCD165", (2048, 2048), 0.079142, 65535.0, 1024.0, 10.0,
                 "MarCCD 165 (165 mm round window): 2048 x 2048 px of 79.142 um, 16 bit, pixels "
                 "outside the 1024-px circle read 0", aliases=("marccd", "marccd165", "mar165")),
    )
}


def get_detector(name: str | Detector) -> Detector:
    """Look a detector preset up by name or alias (case-insensitive).

    Raises
    ------
    SettingsError
        Unknown name (the message lists the known ones).
    """
    if isinstance(name, Detector):
        return name
    key = str(name).strip().lower()
    for d in DETECTORS.values():
        if key == d.name.lower() or key in d.aliases:
            return d
    known = ", ".join(f"{d.name} ({', '.join(d.aliases)})" for d in DETECTORS.values())
    raise SettingsError(f"unknown detector {name!r}; known: {known}")


def nominal_calibration(detector: str | Detector, dd: float | None = None) -> Calibration:
    """Return a plausible calibration of a detector preset, for simulations without a ``.det`` file.

    The BM32 sCMOS gets the real calibration of ``nw1_0000.tif`` (:data:`BM32_CALIBRATION`); any other
    detector a top-reflection geometry with the normal to the detector through the frame's centre
    (``xbet = xgam = 0``) at ``dd`` mm (default 70, as the MarCCD165 at BM32).
    """
    d = get_detector(detector)
    if d.name == "sCMOS" and dd is None:
        return BM32_CALIBRATION
    rows, cols = d.frame_shape
    return Calibration(dd=70.0 if dd is None else float(dd), xcen=(cols + 1) / 2, ycen=(rows + 1) / 2,
                       xbet=0.0, xgam=0.0, pixel_size=d.pixel_size, frame_shape=d.frame_shape)
