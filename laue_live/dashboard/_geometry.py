"""Where each frame of a raster scan sits on the sample, in micrometres, from the run's start document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from laue_live._run import scan_geometry

__all__ = ["LENGTH_UNITS_UM", "map_geometry"]

#: Motor engineering units understood as lengths, and their size in micrometres.
LENGTH_UNITS_UM = {"um": 1.0, "µm": 1.0, "μm": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0,
                   "micrometre": 1.0, "nm": 1e-3, "mm": 1e3, "m": 1e6}


def _axis(start_stop, n: int) -> np.ndarray | None:
    try:
        a, b = (float(v) for v in start_stop)
    except (TypeError, ValueError):
        return None
    if not (np.isfinite(a) and np.isfinite(b)):
        return None
    return np.linspace(a, b, n) if n > 1 else np.array([a])


def map_geometry(start: Mapping[str, Any], n_frames: int | None = None) -> dict[str, Any]:
    """Raster geometry of a scan for drawing maps: cell centres along both axes, in µm when known.

    Read from laue-live's raster metadata (``laue_live``: ``scan_shape``, ``x_range``, ``y_range``,
    ``units``, ``snake``, motor names), else from what bluesky's ``grid_scan`` records (``shape``,
    ``extents``, ``snaking``, ``motors``). Positions in a length unit (``um``, ``mm``, ``nm``, ``m``)
    are converted to micrometres; other or unknown units are kept as motor units and said so.
    Without a 2-D shape, frames fill one row of ``n_frames`` cells numbered by point.

    Parameters
    ----------
    start
        The analysis run's (or raw run's) start document.
    n_frames
        Frames seen so far, used only when the start document holds no shape.

    Returns
    -------
    dict
        ``shape`` (rows, cols), ``snake`` (odd rows run backwards), ``x``/``y`` (cell centres along
        columns / rows), ``unit`` (``"µm"``, a motor unit or ``"point"``), ``x_label``/``y_label``
        (axis titles with the unit), ``known`` (the shape came from the document).
    """
    shape = scan_geometry(start).shape
    known = shape is not None
    if shape is None:
        shape = (1, max(int(n_frames or 0), 1))
    rows, cols = shape
    laue = start.get("laue_live") if isinstance(start.get("laue_live"), Mapping) else {}
    motors = list(start.get("motors") or [])
    if laue.get("scan_shape") is not None or laue.get("x_range") is not None:
        y_name, x_name = laue.get("y_motor"), laue.get("x_motor")
        y, x = _axis(laue.get("y_range"), rows), _axis(laue.get("x_range"), cols)
        units = laue.get("units")
        snake = bool(laue.get("snake", False))
    else:
        y_name, x_name = (motors + [None, None])[:2] if len(motors) >= 2 else (None, None)
        extents = start.get("extents") or []
        y = _axis(extents[0], rows) if len(extents) == 2 else None
        x = _axis(extents[1], cols) if len(extents) == 2 else None
        units = None
        snaking = start.get("snaking") or [False]
        snake = bool(snaking[-1]) if isinstance(snaking, list | tuple) else bool(snaking)
    if x is None or y is None or not known:
        return {"shape": shape, "snake": snake, "x": np.arange(cols, dtype=float),
                "y": np.arange(rows, dtype=float), "unit": "point", "x_label": "fast axis (point)",
                "y_label": "slow axis (point)", "known": known}
    scale = LENGTH_UNITS_UM.get(str(units).strip()) if units else None
    if scale is not None:
        x, y, unit = x * scale, y * scale, "µm"
    else:
        unit = str(units) if units else "motor units"
    return {"shape": shape, "snake": snake, "x": x, "y": y, "unit": unit,
            "x_label": f"{x_name or 'fast axis'} ({unit})", "y_label": f"{y_name or 'slow axis'} ({unit})",
            "known": True}
