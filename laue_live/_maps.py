"""What a map of a raster scan shows: where each frame sits on the sample, and which value, with its unit.

One definition for every map of laue-live: the web dashboard, ``laue-live query map``
(:func:`laue_live.catalog.plot_quality_map`) and the live matplotlib map
(:class:`laue_live.views.LiveSpotMap`). Plain Python and numpy; tables are read as mappings of
columns (a pandas DataFrame, a dict of arrays, a decoded 0MQ spot table).

* **Where**: :func:`map_geometry` places the raster's cells on the sample in micrometres, from the
  start document (laue-live's ``laue_live`` raster metadata with its motor units, else what
  bluesky's ``grid_scan`` records); :func:`map_extent` is the matching ``imshow`` extent.
* **What**: a :class:`MapValue`. Either one of the per-frame values of :data:`MAP_VALUES` (good
  spots, spots, good fraction, mean Sim, total spot intensity, median spot width, analysis time,
  failed), or any other numeric column of a run's per-frame table (an indexed fraction, where the
  run has one), or a statistic (:data:`STATISTICS`) of one spot-table column over one spot family
  (:data:`SPOT_FAMILIES`: all, good, bad, edge, masked, saturated, double). :func:`map_value` names one;
  :func:`frame_value` computes it for one frame, :func:`run_values` for every frame of a run. An
  indexed run adds the values of its grains (:data:`GRAIN_VALUES`: misorientation, strain
  components, matched fraction...; computed by :func:`laue_live.indexing.grain_values`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from laue_live._errors import SettingsError
from laue_live._run import scan_geometry
from laue_live._schema import FRAME_COLUMNS, SPOT_COLUMNS

__all__ = [
    "LENGTH_UNITS_UM",
    "map_geometry",
    "map_extent",
    "MapValue",
    "MAP_VALUES",
    "VALUE_NAMES",
    "GRAIN_VALUES",
    "GRAIN_VALUE_NAMES",
    "ORIENTATION",
    "grain_value",
    "SPOT_FAMILIES",
    "STATISTICS",
    "map_value",
    "spot_family",
    "frame_value",
    "frame_values",
    "run_values",
    "map_title",
    "value_limits",
    "map_image",
    "draw_map",
]

#: Motor engineering units understood as lengths, and their size in micrometres.
LENGTH_UNITS_UM = {"um": 1.0, "µm": 1.0, "μm": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0,
                   "micrometre": 1.0, "nm": 1e-3, "mm": 1e3, "m": 1e6}


# ------------------------------------------------------------------------------------------- where
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
        units = laue.get("units")  # the motors' units, recorded beside a plain grid_scan
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


def _half_step(centres: np.ndarray) -> float:
    steps = np.abs(np.diff(centres))
    steps = steps[steps > 0]
    return float(steps.min()) / 2 if len(steps) else 0.5


def map_extent(geometry: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """``imshow`` extent (left, right, bottom, top) of :func:`map_geometry`'s cells, row 0 at the top.

    Each cell is centred on its stage position, so the map reaches half a step beyond the first and
    last positions (half a unit for a single point), whichever way the motors ran.
    """
    x, y = np.asarray(geometry["x"], float), np.asarray(geometry["y"], float)
    hx, hy = _half_step(x), _half_step(y)
    sx = 1.0 if x[-1] >= x[0] else -1.0
    sy = 1.0 if y[-1] >= y[0] else -1.0
    return (float(x[0] - sx * hx), float(x[-1] + sx * hx), float(y[-1] + sy * hy), float(y[0] - sy * hy))


# -------------------------------------------------------------------------------------------- what
#: Spot families a spot-column statistic may be taken over: name -> what the legend says.
SPOT_FAMILIES = {"all": "all spots", "good": "good spots", "bad": "bad spots",
                 "edge": "spots at the frame edge", "masked": "spots touching the mask",
                 "saturated": "saturated spots",
                 "double": "components of double spots"}
#: Statistics of a spot column over a frame's spots of one family.
STATISTICS = ("mean", "median", "min", "max", "sum", "count")

_SPOT_UNITS = {c.name: c.unit for c in SPOT_COLUMNS}
_FRAME_UNITS = {c.name: c.unit for c in FRAME_COLUMNS}
_NOT_VALUES = {"frame", "spot", "x", "y", "error", "parent"}  # identifiers and text, nothing to map


@dataclass(frozen=True)
class MapValue:
    """One quantity per frame, mapped over the raster.

    Parameters
    ----------
    name
        Key in the dashboard's JSON and in the value pickers: a per-frame value, a per-frame column,
        or a spot-table column.
    label
        What the colour scale says, in words.
    unit
        Unit shown beside the label (``""`` for a plain number).
    family
        For a spot-table column: the spots it is taken over (a key of :data:`SPOT_FAMILIES`);
        ``None`` for a per-frame value.
    statistic
        For a spot-table column: how a frame's spots make one number (:data:`STATISTICS`).
    """

    name: str
    label: str
    unit: str
    family: str | None = None
    statistic: str | None = None

    @property
    def title(self) -> str:
        """Colour-scale title: label and unit."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    @property
    def per_spot(self) -> bool:
        """Whether the value is a statistic of a spot-table column."""
        return self.family is not None

    @property
    def diverging(self) -> bool:
        """Whether the value is signed about zero (a strain component): a diverging scale centred on 0."""
        return self.name.startswith("strain_")


#: The per-frame values of the map pickers, in menu order.
MAP_VALUES: tuple[MapValue, ...] = (
    MapValue("n_good", "good spots", "per frame"),
    MapValue("n_spots", "spots", "per frame"),
    MapValue("good_fraction", "good spots / spots", "%"),
    MapValue("mean_sim", "mean Sim", "0 to 1"),
    MapValue("total_intensity", "total spot intensity", "ADU"),
    MapValue("median_width", "median spot width sqrt(σrow·σcol)", "px"),
    MapValue("seconds", "analysis time", "s"),
    MapValue("failed", "failed frame", "1 = failed"),
)
VALUE_NAMES = tuple(v.name for v in MAP_VALUES)
_BY_NAME = {v.name: v for v in MAP_VALUES}

#: The values of an indexed run's grains (one grain per frame; :func:`laue_live.indexing.grain_values`
#: computes them from the run's ``grains`` table, strain components in 1e-3), in menu order. The
#: orientation itself is mapped in inverse-pole-figure colours, not on a scale
#: (:func:`laue_live.indexing.orientation_colors`).
GRAIN_VALUES: tuple[MapValue, ...] = (
    MapValue("misorientation", "misorientation to the reference", "deg"),
    MapValue("equivalent_strain", "equivalent deviatoric strain (von Mises)", "10⁻³"),
    *(MapValue(f"strain_{k}", f"deviatoric strain {k}", "10⁻³")
      for k in ("xx", "yy", "zz", "xy", "xz", "yz")),
    MapValue("matched_fraction", "matched fraction of the predicted spots", "0 to 1"),
    MapValue("intensity_fraction", "matched fraction of the predicted intensity", "0 to 1"),
    MapValue("deviation_px", "mean spot deviation from the refined prediction", "px"),
    MapValue("n_matched", "spots matched", "per frame"),
    MapValue("n_grains", "grains found", "per frame"),
)
GRAIN_VALUE_NAMES = tuple(v.name for v in GRAIN_VALUES)
#: The orientation of each frame's grain, drawn in inverse-pole-figure colours (RGB cells, a colour
#: key instead of a colour scale).
ORIENTATION = MapValue("orientation", "orientation (inverse pole figure)", "")
_GRAIN_BY_NAME = {v.name: v for v in (ORIENTATION, *GRAIN_VALUES)}


def grain_value(name) -> MapValue | None:
    """Return the grain value named ``name`` (:data:`ORIENTATION` or of :data:`GRAIN_VALUES`), else None."""
    if isinstance(name, MapValue):
        return name if name.name in _GRAIN_BY_NAME and not name.per_spot else None
    return _GRAIN_BY_NAME.get(name)


def map_value(name: str, spots: str | None = None, statistic: str = "mean", *,
              frame_columns: Sequence[str] = ()) -> MapValue:
    """Name the value of a map: a per-frame value or column, or a statistic of a spot column.

    Parameters
    ----------
    name
        One of :data:`VALUE_NAMES`, another numeric column of the run's per-frame table (listed in
        ``frame_columns``, e.g. ``indexed_fraction``), a spot-table column (``sigma_row``,
        ``intensity``, ``sim``...), or a grain value of an indexed run (``orientation``,
        :data:`GRAIN_VALUE_NAMES`).
    spots
        For a spot column: the family of spots (:data:`SPOT_FAMILIES`; default ``"all"``). Not
        allowed with a per-frame value.
    statistic
        For a spot column: ``mean`` (default), ``median``, ``min``, ``max``, ``sum`` or ``count``.
    frame_columns
        Columns of the run's per-frame table, for values beyond :data:`MAP_VALUES`.

    Raises
    ------
    SettingsError
        An unknown name, family or statistic, or a column that holds no number; the message lists
        what may be mapped.
    """
    frame_names = [*VALUE_NAMES, *[c for c in frame_columns if c not in VALUE_NAMES and c not in _NOT_VALUES
                                   and c not in _SPOT_UNITS]]
    spot_names = [c for c in _SPOT_UNITS if c not in _NOT_VALUES]
    if name in _NOT_VALUES:
        raise SettingsError(f"{name!r} is an identifier or text, not a value to map; map one of "
                            f"{', '.join(frame_names)}, or a spot column ({', '.join(spot_names)}) with "
                            "--spots FAMILY")
    if name in _GRAIN_BY_NAME and name not in frame_names:
        if spots is not None:
            raise SettingsError(f"{name!r} is a grain value: --spots goes with a spot column "
                                f"({', '.join(spot_names)})")
        return _GRAIN_BY_NAME[name]
    if name in frame_names or name in _FRAME_UNITS:
        if spots is not None:
            raise SettingsError(f"{name!r} is a per-frame value: --spots goes with a spot column "
                                f"({', '.join(spot_names)})")
        if name in _BY_NAME:
            return _BY_NAME[name]
        return MapValue(name, name.replace("_", " "), _FRAME_UNITS.get(name, ""))
    if name in spot_names:
        family = spots or "all"
        if family not in SPOT_FAMILIES:
            raise SettingsError(f"unknown spot family {family!r}: use {', '.join(SPOT_FAMILIES)}")
        if statistic not in STATISTICS:
            raise SettingsError(f"unknown statistic {statistic!r}: use {', '.join(STATISTICS)}")
        if statistic == "count":
            return MapValue(name, f"number of {SPOT_FAMILIES[family]}", "per frame", family, statistic)
        unit = _SPOT_UNITS[name] if statistic != "sum" or _SPOT_UNITS[name] else ""
        return MapValue(name, f"{statistic} {name} of {SPOT_FAMILIES[family]}", unit, family, statistic)
    raise SettingsError(f"unknown map value {name!r}: map one of {', '.join(frame_names)}, a spot "
                        f"column ({', '.join(spot_names)}) with --spots {'|'.join(SPOT_FAMILIES)}, or "
                        f"of an indexed run {', '.join(_GRAIN_BY_NAME)}")


def _column(table, name: str) -> np.ndarray | None:
    try:
        return np.asarray(table[name], dtype=float)
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def spot_family(table, family: str) -> np.ndarray:
    """Boolean mask of the spots of a table that belong to ``family`` (:data:`SPOT_FAMILIES`)."""
    n = len(np.asarray(table["frame"] if "frame" in table else table["row"]))

    def flag(name: str) -> np.ndarray:
        values = _column(table, name)
        return np.zeros(n, bool) if values is None else values.astype(bool)

    if family == "all":
        return np.ones(n, bool)
    if family == "good":
        return flag("good")
    if family == "bad":
        return ~flag("good")
    if family == "double":
        values = _column(table, "component")
        return np.zeros(n, bool) if values is None else values > 0
    if family in ("edge", "masked", "saturated"):
        return flag(family)
    raise SettingsError(f"unknown spot family {family!r}: use {', '.join(SPOT_FAMILIES)}")


def _statistic(values: np.ndarray, statistic: str) -> float:
    if statistic == "count":
        return float(len(values))
    values = values[np.isfinite(values)]
    if statistic == "sum":
        return float(values.sum())
    if not len(values):
        return math.nan
    return float({"mean": np.mean, "median": np.median, "min": np.min, "max": np.max}[statistic](values))


def frame_values(summary: Mapping[str, Any], table=None) -> dict[str, float]:
    """Every :data:`MAP_VALUES` entry of one frame, from its summary row and its spot table.

    Parameters
    ----------
    summary
        The frame's summary (``n_spots``, ``n_good``, ``mean_sim``, ``seconds``, ``failed``).
    table
        The frame's spot table (mapping column -> array, or DataFrame); ``None`` leaves the values
        that need it (total intensity, median width) NaN unless the frame has no spot.

    Returns
    -------
    dict
        Value name -> float; NaN where unknown. A failed frame has NaN everywhere but ``failed = 1``.
    """
    nan = math.nan
    if bool(summary.get("failed", False)):
        out = dict.fromkeys(VALUE_NAMES, nan)
        out["failed"] = 1.0
        out["seconds"] = float(summary.get("seconds", nan) or nan)
        return out
    n = int(summary.get("n_spots", 0) or 0)
    good = int(summary.get("n_good", 0) or 0)
    mean_sim = summary.get("mean_sim")
    out = {"n_good": float(good), "n_spots": float(n),
           "good_fraction": 100.0 * good / n if n else nan,
           "mean_sim": float(mean_sim) if mean_sim is not None else nan,
           "total_intensity": 0.0 if n == 0 else nan, "median_width": nan,
           "seconds": float(summary.get("seconds", nan) or 0.0), "failed": 0.0}
    if table is not None and n:
        intensity = _column(table, "intensity")
        if intensity is not None and len(intensity):
            out["total_intensity"] = float(np.nansum(intensity))
        sr, sc = _column(table, "sigma_row"), _column(table, "sigma_col")
        if sr is not None and sc is not None and len(sr):
            with np.errstate(invalid="ignore"):
                width = np.sqrt(sr * sc)
            if np.isfinite(width).any():
                out["median_width"] = float(np.nanmedian(width))
    return out


def frame_value(value: MapValue, summary: Mapping[str, Any], table=None) -> float:
    """Return the value of one frame, from its summary row and (spot values) its spot table; NaN if unknown.

    A failed frame is NaN (``failed`` and ``seconds`` excepted); a spot statistic of a frame with no
    spot of the family is NaN (``count`` and ``sum``: 0).
    """
    if not value.per_spot:
        if value.name in _BY_NAME:
            return frame_values(summary, table)[value.name]
        if bool(summary.get("failed", False)):
            return math.nan
        v = summary.get(value.name)
        try:
            return math.nan if v is None else float(v)
        except (TypeError, ValueError):
            return math.nan
    if bool(summary.get("failed", False)) or table is None:
        return math.nan
    values = _column(table, value.name)
    if values is None:
        return math.nan
    return _statistic(values[spot_family(table, value.family)], value.statistic)


def run_values(summary, spots=None, value: MapValue | None = None) -> dict[str, Any]:
    """Map values of every frame of a run read back from Tiled.

    Parameters
    ----------
    summary
        The run's per-frame summary (:func:`laue_live.catalog.frame_summary`, a DataFrame).
    spots
        Its spot table with at least the columns the values need (``frame, intensity, sigma_row,
        sigma_col`` for :data:`MAP_VALUES`; the value's column and ``good, edge, saturated,
        component`` for a spot statistic), or ``None``.
    value
        One value to compute; ``None``: every :data:`MAP_VALUES` entry.

    Returns
    -------
    dict
        ``frames`` (list of int), ``values`` (name -> list of float, NaN where unknown) and
        ``errors`` (frame -> why it failed, for failed frames).
    """
    frames = summary["frame"].to_numpy(np.int64)
    failed = summary["failed"].to_numpy(bool) if "failed" in summary else np.zeros(len(frames), bool)
    errors = {}
    if "error" in summary:
        for f, bad, err in zip(frames, failed, summary["error"], strict=True):
            if bad:
                errors[int(f)] = str(err)
    if value is not None and (value.per_spot or value.name not in _BY_NAME):
        values = _one_value(value, summary, spots, frames, failed)
        return {"frames": frames.tolist(), "values": {value.name: values.tolist()}, "errors": errors}
    n = summary["n_spots"].to_numpy(dtype=float, copy=True)
    good = summary["n_good"].to_numpy(dtype=float, copy=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = {"n_good": good, "n_spots": n, "good_fraction": np.where(n > 0, 100.0 * good / n, np.nan),
                  "mean_sim": summary["mean_sim"].to_numpy(dtype=float, copy=True),
                  "total_intensity": np.where(n == 0, 0.0, np.nan),
                  "median_width": np.full(len(frames), np.nan),
                  "seconds": summary["seconds"].to_numpy(dtype=float, copy=True) if "seconds" in summary
                  else np.full(len(frames), np.nan),
                  "failed": failed.astype(float)}
    needs_spots = value is None or value.name in ("total_intensity", "median_width")
    if needs_spots and spots is not None and len(spots):
        with np.errstate(invalid="ignore"):
            width = np.sqrt(spots["sigma_row"].to_numpy(float) * spots["sigma_col"].to_numpy(float))
        grouped = spots.assign(_width=width).groupby("frame")
        total = grouped["intensity"].sum()
        median = grouped["_width"].median()
        pos = {int(f): i for i, f in enumerate(frames)}
        for f, v in total.items():
            if int(f) in pos:
                values["total_intensity"][pos[int(f)]] = float(v)
        for f, v in median.items():
            if int(f) in pos:
                values["median_width"][pos[int(f)]] = float(v)
    for name, arr in values.items():
        if name not in ("failed", "seconds"):
            arr[failed] = np.nan
    if value is not None:
        values = {value.name: values[value.name]}
    return {"frames": frames.tolist(), "values": {k: v.tolist() for k, v in values.items()}, "errors": errors}


def _one_value(value: MapValue, summary, spots, frames: np.ndarray, failed: np.ndarray) -> np.ndarray:
    """Return a per-frame column beyond MAP_VALUES, or a spot statistic, for every frame of a run."""
    if not value.per_spot:
        try:
            out = np.asarray(summary[value.name], dtype=float).copy()
        except (KeyError, TypeError, ValueError):
            raise SettingsError(f"the per-frame table has no numeric column {value.name!r}") from None
        out[failed] = np.nan
        return out
    empty = 0.0 if value.statistic in ("count", "sum") else math.nan
    out = np.full(len(frames), empty)
    if spots is not None and len(spots):
        spot_frames = np.asarray(spots["frame"], dtype=np.int64)
        keep = spot_family(spots, value.family)
        column = np.asarray(spots[value.name], dtype=float)[keep]
        spot_frames = spot_frames[keep]
        order = np.argsort(spot_frames, kind="stable")
        spot_frames, column = spot_frames[order], column[order]
        uniq, starts = np.unique(spot_frames, return_index=True)
        pos = {int(f): i for i, f in enumerate(frames)}
        for f, part in zip(uniq, np.split(column, starts[1:]), strict=True):
            if int(f) in pos:
                out[pos[int(f)]] = _statistic(part, value.statistic)
    out[failed] = np.nan
    return out


# ------------------------------------------------------------------------------------------ drawing
def map_title(value: MapValue, start: Mapping[str, Any], done: int | None = None,
              total: int | None = None) -> str:
    """Title of a map in words: what is mapped, of which scan and sample, how many frames are in.

    E.g. ``"Good spots per frame: scan 12, Cu, fit analysis (34 of 100 frames)"``, on two lines
    when long.
    """
    what = value.label + (" per frame" if value.unit == "per frame" else "")
    scan = start.get("raw_scan_id", start.get("scan_id"))
    parts = [f"scan {scan}" if scan is not None else None, start.get("sample") or None,
             f"{start['method']} analysis" if start.get("method") else None]
    text = what[:1].upper() + what[1:]
    where = ", ".join(str(p) for p in parts if p)
    if done is not None and total is not None:
        where += f" ({done} of {total} frames)"
    if where:
        text += ("\n" if len(text) + len(where) > 60 else ": ") + where.strip()
    return text


def value_limits(value: MapValue, data) -> tuple[float, float] | None:
    """Colour limits of a map: its range (centred on 0 for a signed value), None while it is empty."""
    data = np.asarray(data, dtype=float)
    finite = data[np.isfinite(data)]
    if not finite.size:
        return None
    if value.diverging:
        half = float(np.abs(finite).max()) or 1.0
        return -half, half
    low, high = float(finite.min()), float(finite.max())
    return low, high if high > low else low + 1


def map_image(data) -> np.ndarray:
    """Return what ``imshow`` draws of a map: values masked where NaN, or RGBA cells clear where NaN.

    ``data`` is ``(rows, cols)`` values or ``(rows, cols, 3)`` RGB colours (an orientation map).
    """
    data = np.asarray(data, dtype=float)
    if data.ndim == 2:
        return np.ma.masked_invalid(data)
    known = np.isfinite(data).all(axis=-1, keepdims=True)
    return np.concatenate([np.where(known, data, 0.0), known.astype(float)], axis=-1)


def draw_map(ax, data, geometry: Mapping[str, Any], value: MapValue, *, title: str | None = None,
             cmap: str | None = None, clim: tuple[float, float] | None = None, colorbar=None):
    """Draw a raster map on a matplotlib Axes, cells at their stage positions, with a labelled colour scale.

    Parameters
    ----------
    ax
        matplotlib Axes.
    data
        ``(rows, cols)`` values (NaN: no value: not analysed yet, or failed; drawn grey), or
        ``(rows, cols, 3)`` RGB colours in [0, 1] (an orientation map: no colour scale, its key is
        drawn by :func:`laue_live.indexing.draw_ipf_key`).
    geometry
        :func:`map_geometry` of the scan (axes in µm where the motor units are lengths).
    value
        What is mapped: the colour scale says it, with its unit.
    title
        Axes title (default none).
    cmap, clim
        Colour map (default viridis; a diverging one centred on 0 for a signed value such as a strain
        component) and fixed colour limits (autoscaled if None).
    colorbar
        The colour bar of an earlier drawing on these axes, updated instead of adding another.

    Returns
    -------
    tuple
        ``(image, colorbar)`` (colorbar None for RGB data).
    """
    data = np.asarray(data, dtype=float)
    ax.set_facecolor("0.82")  # masked cells show the axes: grey
    image = ax.imshow(map_image(data), cmap=cmap or ("RdBu_r" if value.diverging else "viridis"),
                      origin="upper", interpolation="nearest", extent=map_extent(geometry),
                      aspect="equal" if geometry.get("unit") in ("µm", "point") else "auto")
    if data.ndim == 2:
        limits = clim or value_limits(value, data)
        if limits is not None:
            image.set_clim(*limits)
        if colorbar is None:
            colorbar = ax.figure.colorbar(image, ax=ax, label=value.title)
        else:
            colorbar.update_normal(image)
            colorbar.set_label(value.title)
    elif colorbar is not None:  # colours need no scale: the one of an earlier drawing goes
        colorbar.remove()
        colorbar = None
    ax.set_xlabel(geometry["x_label"])
    ax.set_ylabel(geometry["y_label"])
    if title:
        ax.set_title(title, fontsize="medium")
    return image, colorbar
