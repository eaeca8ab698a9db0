"""The per-frame values a map can show, with their labels and units, from live tables or from Tiled."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MapValue", "MAP_VALUES", "VALUE_NAMES", "frame_values", "run_values"]


@dataclass(frozen=True)
class MapValue:
    """One quantity per frame, mapped over the raster.

    Parameters
    ----------
    name
        Key in the dashboard's JSON and in the value picker.
    label
        What the colour scale says.
    unit
        Unit shown beside the label (``""`` for a count).
    """

    name: str
    label: str
    unit: str

    @property
    def title(self) -> str:
        """Colour-scale title: label and unit."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


#: Values of the map picker, in menu order.
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


def _column(table, name: str) -> np.ndarray | None:
    try:
        return np.asarray(table[name], dtype=float)
    except (KeyError, IndexError, TypeError, ValueError):
        return None


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


def run_values(summary, spots=None) -> dict[str, Any]:
    """Every :data:`MAP_VALUES` entry of every frame of a run read back from Tiled.

    Parameters
    ----------
    summary
        The run's per-frame summary (:func:`laue_live.catalog.frame_summary`).
    spots
        Its spot table with at least ``frame, intensity, sigma_row, sigma_col`` (or ``None``).

    Returns
    -------
    dict
        ``frames`` (list of int), ``values`` (name -> list of float, NaN where unknown) and
        ``errors`` (frame -> why it failed, for failed frames).
    """
    frames = summary["frame"].to_numpy(np.int64)
    n = summary["n_spots"].to_numpy(dtype=float, copy=True)
    good = summary["n_good"].to_numpy(dtype=float, copy=True)
    failed = summary["failed"].to_numpy(bool) if "failed" in summary else np.zeros(len(frames), bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = {"n_good": good, "n_spots": n, "good_fraction": np.where(n > 0, 100.0 * good / n, np.nan),
                  "mean_sim": summary["mean_sim"].to_numpy(dtype=float, copy=True),
                  "total_intensity": np.where(n == 0, 0.0, np.nan),
                  "median_width": np.full(len(frames), np.nan),
                  "seconds": summary["seconds"].to_numpy(dtype=float, copy=True) if "seconds" in summary
                  else np.full(len(frames), np.nan),
                  "failed": failed.astype(float)}
    if spots is not None and len(spots):
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
    errors = {}
    if "error" in summary:
        for f, bad, err in zip(frames, failed, summary["error"], strict=True):
            if bad:
                errors[int(f)] = str(err)
    return {"frames": frames.tolist(), "values": {k: v.tolist() for k, v in values.items()}, "errors": errors}
