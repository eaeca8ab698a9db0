"""Raster scan of a sample under the Laue beam, on top of :func:`bluesky.plans.grid_scan`.

The start document gets a ``laue_live`` entry (:data:`LAUE_MD_KEY`) that the live analysis and the
map views read to place every frame on the sample map (see ``docs/sim.md``)::

    md["laue_live"] = {
        "version": 1,
        "plan": "raster_scan",
        "scan_shape": [ny, nx],          # rows = slow axis (y), columns = fast axis (x)
        "fast_axis": "x",                # x moves at every point, y once per row
        "snake": bool,                   # True: odd rows run x backwards
        "x_motor": "stage_x", "y_motor": "stage_y",   # data keys of the motor readbacks
        "x_range": [x_start, x_stop], "y_range": [y_start, y_stop],   # inclusive, motor units
        "x_step": ..., "y_step": ...,    # signed, motor units (0 for a single point)
        "units": "um",                   # motor engineering units if known
        "detectors": ["laue"], "image_keys": ["laue_image"],
        "sample": {...},                 # a detector's sample.describe(), if it has one
        "material": "Si",                # the sample's material, if known
        "calibration": {...},            # dd, xcen, ycen, xbet, xgam, pixel_size, frame_shape
    }

Frame ``i`` (0-based, = event ``seq_num - 1``) is at map row ``i // nx`` and column ``i % nx``,
reversed (``nx - 1 - i % nx``) on odd rows when ``snake`` is true: :func:`laue_live.plans.frame_index`
(the analysis-run contract's one rule, re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import bluesky.plans as bp

from laue_live._errors import SettingsError

__all__ = ["raster_scan", "LAUE_MD_KEY"]

#: Key of laue-live's entry in the start document.
LAUE_MD_KEY = "laue_live"


def _motor_key(motor) -> str:
    hints = getattr(motor, "hints", None) or {}
    fields = hints.get("fields") if isinstance(hints, dict) else None
    return fields[0] if fields else motor.name


def raster_scan(
    detectors: Sequence,
    x_motor,
    x_start: float,
    x_stop: float,
    nx: int,
    y_motor,
    y_start: float,
    y_stop: float,
    ny: int,
    *,
    snake: bool = False,
    md: dict | None = None,
):
    """Raster-scan the sample: ``ny`` rows along ``y`` (slow), ``nx`` points along ``x`` (fast).

    Parameters
    ----------
    detectors
        Readable devices, typically a :class:`laue_live.sim.SimLaueDetector` or a real area detector.
    x_motor, x_start, x_stop, nx
        Fast axis: motor, first and last position (inclusive, motor units), number of points.
    y_motor, y_start, y_stop, ny
        Slow axis, likewise.
    snake
        Run odd rows backwards (saves the fast axis' return moves).
    md
        Extra start-document metadata; a ``laue_live`` entry given here is merged into the one
        the plan writes.

    Yields
    ------
    bluesky.utils.Msg
        The messages of :func:`bluesky.plans.grid_scan`.

    Raises
    ------
    SettingsError
        For ``nx`` or ``ny`` < 1, non-finite limits or no detector.
    """
    if not detectors:
        raise SettingsError("raster_scan needs at least one detector")
    for name, n in (("nx", nx), ("ny", ny)):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise SettingsError(f"{name} must be an integer >= 1, got {n!r}")
    limits = (x_start, x_stop, y_start, y_stop)
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in limits):
        raise SettingsError(f"scan limits must be finite numbers, got {limits}")

    laue: dict = {
        "version": 1,
        "plan": "raster_scan",
        "scan_shape": [ny, nx],
        "fast_axis": "x",
        "snake": bool(snake),
        "x_motor": _motor_key(x_motor),
        "y_motor": _motor_key(y_motor),
        "x_range": [float(x_start), float(x_stop)],
        "y_range": [float(y_start), float(y_stop)],
        "x_step": (x_stop - x_start) / (nx - 1) if nx > 1 else 0.0,
        "y_step": (y_stop - y_start) / (ny - 1) if ny > 1 else 0.0,
        "detectors": [d.name for d in detectors],
    }
    units = getattr(x_motor, "egu", None)
    if isinstance(units, str) and units:
        laue["units"] = units
    image_keys = [d.image_key for d in detectors if isinstance(getattr(d, "image_key", None), str)]
    if image_keys:
        laue["image_keys"] = image_keys
    for det in detectors:
        sample = getattr(det, "sample", None)
        if sample is not None and hasattr(sample, "describe"):
            laue["sample"] = sample.describe()
            if "material" in laue["sample"]:
                laue["material"] = laue["sample"]["material"]
            cal = getattr(sample, "calibration", None)
            if cal is not None and hasattr(cal, "to_dict"):
                laue["calibration"] = cal.to_dict()
            break
    md = dict(md or {})
    laue.update(md.pop(LAUE_MD_KEY, {}) or {})
    md[LAUE_MD_KEY] = laue
    md.setdefault("plan_name", "raster_scan")
    if "material" in laue:
        md.setdefault("sample", str(laue["material"]))
    return (
        yield from bp.grid_scan(
            list(detectors),
            y_motor,
            y_start,
            y_stop,
            ny,
            x_motor,
            x_start,
            x_stop,
            nx,
            snake_axes=bool(snake),
            md=md,
        )
    )
