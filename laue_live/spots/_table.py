"""Descriptors + initial peaks -> a schema spot table: the one place where spot tables are assembled."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from laue_live._rules import is_good_spot
from laue_live._schema import SPOT_COLUMNS, empty_spot_table
from laue_live.geometry import pixel_to_angles
from laue_live.spots._fit_descriptors import DESCRIPTOR_COLUMNS

__all__ = ["spot_table_from_descriptors", "spot_angles"]


def spot_angles(row, col, calibration) -> tuple[np.ndarray, np.ndarray]:
    """``(2theta, chi)`` of 0-based positions in LaueTools' convention, float32 degrees.

    Parameters
    ----------
    row, col
        Positions, px (0-based, pixel centres at integers).
    calibration
        :class:`laue_live.geometry.Calibration`, or None (then both are NaN).
    """
    row = np.asarray(row, dtype=np.float64)
    if calibration is None:
        nan = np.full(row.shape, np.nan, dtype=np.float32)
        return nan, nan.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        tth, chi = pixel_to_angles(row, np.asarray(col, dtype=np.float64), calibration)
    return np.asarray(tth, dtype=np.float32), np.asarray(chi, dtype=np.float32)


def spot_table_from_descriptors(desc: pd.DataFrame | Mapping, peaks, edge, frame_number: int = 0,
                                attrs: Mapping | None = None, *, masked=None,
                                calibration=None) -> pd.DataFrame:
    """Assemble a schema spot table from descriptors and the initial peaks they came from.

    Used by the CPU path (:func:`laue_live.analyze_frames`) and the torch pipeline alike.

    Parameters
    ----------
    desc
        Descriptors, one row per peak: a DataFrame or a mapping of (N,) arrays holding
        :data:`~laue_live.spots.DESCRIPTOR_COLUMNS` (as :func:`laue_live.characterize` returns).
    peaks
        (N, 2) int initial peaks ``s`` (row, col).
    edge
        (N,) bool: cutout padded at the frame edge.
    frame_number
        Value of the ``frame`` column.
    attrs
        ``DataFrame.attrs`` of the table (default: those of ``desc``).
    masked
        (N,) bool: the cutout holds masked detector pixels (default: none).
    calibration
        :class:`laue_live.geometry.Calibration` for ``two_theta`` and ``chi`` (NaN without).

    Returns
    -------
    pandas.DataFrame
        Exactly :data:`laue_live._schema.SPOT_COLUMNS`: ``row, col = s + (d_row, d_col)``; ``good``
        follows :func:`laue_live.is_good_spot` and additionally requires a converged fit;
        ``parent`` -1 and ``component`` 0 (a single spot).
    """
    attrs = dict(getattr(desc, "attrs", {}) if attrs is None else attrs)
    peaks = np.asarray(peaks)
    n = len(peaks)
    if n == 0:
        table = empty_spot_table()
        table.attrs.update(attrs)
        return table
    cols = {k: np.asarray(desc[k]) for k in DESCRIPTOR_COLUMNS}
    d_row, d_col = cols["d_row"].astype(np.float64), cols["d_col"].astype(np.float64)
    data = {
        **cols,
        "frame": np.full(n, frame_number, dtype=np.int64),
        "spot": np.arange(n, dtype=np.int32),
        "row0": peaks[:, 0],
        "col0": peaks[:, 1],
        "row": peaks[:, 0] + d_row,
        "col": peaks[:, 1] + d_col,
        "good": is_good_spot(cols["sim"], d_row, d_col) & cols["converged"].astype(bool),
        "edge": np.asarray(edge, dtype=bool),
        "masked": np.zeros(n, bool) if masked is None else np.asarray(masked, dtype=bool),
        "parent": np.full(n, -1),
        "component": np.zeros(n),
    }
    data["two_theta"], data["chi"] = spot_angles(data["row"], data["col"], calibration)
    # one fresh array per column, not consolidated into blocks: 4x faster for 10^4 spots (measured)
    table = pd.DataFrame({c.name: data[c.name].astype(c.dtype) for c in SPOT_COLUMNS}, copy=False)
    table.attrs.update(attrs)
    return table
