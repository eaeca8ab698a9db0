"""The spot-table schema: the one definition of every column that writers and readers share.

Conventions
-----------
* Positions are **0-based** ``(row, col)`` floats with pixel centres at integers: the pixel
  ``frame[r, c]`` has its centre at ``(r, c)``. LaueTools' ``.dat`` files are 1-based with
  X = column and Y = row; the conversion happens only in :mod:`laue_live.spots._lauetools`.
* ``row0, col0`` is the initial peak ``s`` (brightest pixel of the component) and
  ``row, col = (row0 + d_row, col0 + d_col)`` is the sub-pixel position ``Pos``.
* Widths are Gaussian standard deviations in pixels, areas in square pixels
  (``area = pi * sigma_row * sigma_col``), intensities in detector ADU.
* ``two_theta, chi`` are the scattering angles of ``(row, col)`` in LaueTools' convention
  (:func:`laue_live.geometry.pixel_to_angles`), degrees; NaN when the table was made without a
  detector calibration.

The same columns are used by :func:`laue_live.analyze_frame`, the Tiled writer, the 0MQ publisher
and every reader; a table that leaves the process always carries ``frame`` too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from laue_live._rules import CUTOUT_SIZE, GOOD_DISTANCE, GOOD_SIM, SATURATION, SIM0_SPAN, SIM0_THRESHOLD

__all__ = [
    "SCHEMA_VERSION",
    "SPOT_TABLE_NAME",
    "Column",
    "SPOT_COLUMNS",
    "FRAME_COLUMNS",
    "GRAIN_COLUMNS",
    "SPOT_INDEX_COLUMNS",
    "INDEXING_COLUMNS",
    "INDEXING_STATUSES",
    "spot_column_names",
    "spot_dtypes",
    "empty_spot_table",
    "conform_spot_table",
    "spot_arrow_schema",
    "frame_arrow_schema",
    "empty_table",
    "describe_schema_markdown",
]

#: Bumped whenever a column is added, removed or changes meaning (2: ``two_theta``, ``chi``, ``masked``).
SCHEMA_VERSION = 2
#: SQL table name used for the appendable spot tables in Tiled (shared by all runs of this schema).
SPOT_TABLE_NAME = f"laue_spots_v{SCHEMA_VERSION}"


@dataclass(frozen=True)
class Column:
    """One column of a table.

    Parameters
    ----------
    name
        Column name (lower case: SQL backends lower-case names anyway).
    dtype
        numpy dtype string.
    unit
        Physical unit, ``""`` for dimensionless or flags.
    description
        What the column holds.
    """

    name: str
    dtype: str
    unit: str
    description: str


#: Columns of a spot table, in order. ``frame`` comes first so that tables of many frames concatenate.
SPOT_COLUMNS: tuple[Column, ...] = (
    Column("frame", "int64", "", "frame number within the run, 0-based (event seq_num - 1)"),
    Column("spot", "int32", "", "spot index within its frame, 0-based"),
    Column("row0", "int32", "px", "initial peak s: row of the brightest pixel of the spot (0-based)"),
    Column("col0", "int32", "px", "initial peak s: column of the brightest pixel of the spot (0-based)"),
    Column("row", "float64", "px", "sub-pixel position Pos, row (0-based, pixel centres at integers)"),
    Column("col", "float64", "px", "sub-pixel position Pos, column (0-based, pixel centres at integers)"),
    Column("two_theta", "float32", "deg",
           "scattering angle 2theta of Pos, LaueTools' convention (NaN without a detector calibration)"),
    Column("chi", "float32", "deg",
           "azimuth chi of Pos, LaueTools' convention (NaN without a detector calibration)"),
    Column("d_row", "float32", "px", "Pos - s along rows (mu1 of the fit)"),
    Column("d_col", "float32", "px", "Pos - s along columns (mu2 of the fit)"),
    Column("sim0", "float32", "",
           "cosine similarity of the background-subtracted cutout and the Gaussian model"),
    Column("sim", "float32", "", f"Sim = 0 if sim0 <= {SIM0_THRESHOLD} else (sim0 - {SIM0_THRESHOLD}) / "
           f"{SIM0_SPAN:g}, in [0, 1]"),
    Column("asp", "float32", "", "aspect ratio min(sigma)/max(sigma), in (0, 1]"),
    Column("area", "float32", "px^2", "pi * sigma_row * sigma_col"),
    Column("sigma_row", "float32", "px", "Gaussian standard deviation along rows"),
    Column("sigma_col", "float32", "px", "Gaussian standard deviation along columns"),
    Column("amplitude", "float32", "ADU px^2", "alpha: integrated intensity of the fitted Gaussian"),
    Column("background", "float32", "ADU", "beta: constant background under the spot"),
    Column("intensity", "float32", "ADU",
           "integrated intensity: sum of background-subtracted cutout pixels"),
    Column("peak_intensity", "float32", "ADU", "value of the brightest pixel (raw, background included)"),
    Column("good", "bool", "", f"good-quality spot: sim > {GOOD_SIM} and |Pos - s| <= {GOOD_DISTANCE} px"),
    Column("edge", "bool", "",
           f"the {CUTOUT_SIZE} x {CUTOUT_SIZE} cutout crossed the frame edge and was padded"),
    Column("masked", "bool", "",
           f"the {CUTOUT_SIZE} x {CUTOUT_SIZE} cutout holds masked detector pixels (filled, and given zero "
           "weight in the fit)"),
    Column("saturated", "bool", "", f"the cutout holds at least one saturated pixel ({SATURATION:g})"),
    Column("converged", "bool", "", "the fit converged (always true for CNN predictions)"),
    Column("parent", "int32", "",
           "for a component of a double spot: the spot index it came from; -1 otherwise"),
    Column("component", "int8", "", "0 for a single spot, 1 or 2 for the components of a double spot"),
)

#: Columns of the per-frame summary stream of an analysis run.
FRAME_COLUMNS: tuple[Column, ...] = (
    Column("frame", "int64", "", "frame number within the run, 0-based"),
    Column("x", "float64", "motor units", "stage position of the first scan axis (NaN if unknown)"),
    Column("y", "float64", "motor units", "stage position of the second scan axis (NaN if unknown)"),
    Column("n_spots", "int32", "", "number of spots found"),
    Column("n_good", "int32", "", "number of good spots"),
    Column("mean_sim", "float32", "", "mean Sim over the spots of the frame (NaN if none)"),
    Column("seconds", "float32", "s", "analysis time of the frame"),
    Column("failed", "bool", "", "the frame could not be analysed (see `error`)"),
    Column("error", "str", "", "why the frame failed, empty otherwise"),
)


_STRAIN_KEYS = ("xx", "yy", "zz", "xy", "xz", "yz")

#: Columns of the ``grains`` stream of an analysis run: one row per grain found in a frame (the
#: indexer's :meth:`laue_live.indexing.IndexResult.grains_table` with the frame number first).
GRAIN_COLUMNS: tuple[Column, ...] = (
    Column("frame", "int64", "", "frame number within the run, 0-based"),
    Column("grain", "int32", "", "grain number within the frame, 0-based, in the order found"),
    Column("material", "str", "", "material name"),
    Column("n_matched", "int32", "", "spots matched and used in the refinement"),
    Column("n_predicted", "int32", "", "spots the refined grain predicts on the detector in the energy band"),
    Column("matched_fraction", "float64", "",
           "share of the predicted spots observed (a spot within the final radius)"),
    Column("intensity_fraction", "float64", "",
           "share of the predicted intensity (kinematic model) on observed spots"),
    Column("deviation_px", "float64", "px", "mean distance between observed and refined predicted positions"),
    *(Column(f"u{i + 1}{j + 1}", "float64", "",
             f"orientation matrix U[{i}, {j}] (q = U B hkl, LaueTools frame)")
      for i in range(3) for j in range(3)),
    *(Column(f"strain_{k}", "float64", "", f"deviatoric strain {k} component, crystal frame")
      for k in _STRAIN_KEYS),
    Column("equivalent_strain", "float64", "",
           "von Mises equivalent of the deviatoric strain, sqrt(2/3 e:e)"),
)

#: Columns of the ``indexed_spots`` stream: the Miller indices of each indexed spot, keyed by
#: ``(frame, spot)`` like the spot table (spots of no grain have no row: ``grain = -1``, ``h = k = l = 0``).
SPOT_INDEX_COLUMNS: tuple[Column, ...] = (
    Column("frame", "int64", "", "frame number within the run, 0-based"),
    Column("spot", "int32", "", "spot index within its frame (the spot table's `spot`)"),
    Column("grain", "int32", "", "grain of the frame the spot belongs to (`grains` stream)"),
    Column("h", "int32", "", "Miller index h (lowest allowed harmonic in the energy band)"),
    Column("k", "int32", "", "Miller index k"),
    Column("l", "int32", "", "Miller index l"),
    Column("deviation_px", "float32", "px",
           "distance between the spot and its grain's refined predicted position"),
)

#: What the ``status`` column of the ``indexing`` stream holds.
INDEXING_STATUSES = {
    "indexed": "at least one grain found",
    "no_grain": "searched, no candidate passed the tests (the best candidate's statistics are given)",
    "failed": "not searched: the frame's spot analysis failed, or the indexer raised (see `reason`)",
    "not_indexed": "not searched: dropped by the queue policy or left when the run closed (see `reason`); "
                   "`laue-live index RUN` indexes it later",
}

#: Columns of the ``indexing`` stream: one row per frame of the run once indexing is on (written after
#: the frame's ``grains`` and ``indexed_spots`` rows).
INDEXING_COLUMNS: tuple[Column, ...] = (
    Column("frame", "int64", "", "frame number within the run, 0-based"),
    Column("status", "str", "", "indexed, no_grain, failed or not_indexed"),
    Column("n_grains", "int32", "", "grains found"),
    Column("n_indexed", "int32", "", "spots given Miller indices"),
    Column("n_spots", "int32", "", "spots in the frame's spot table"),
    Column("seconds", "float32", "s", "indexing time of the frame"),
    Column("reason", "str", "",
           "why no grain (the best candidate's failed test), why it failed, or why it was not indexed"),
    Column("best_n_matched", "int32", "", "no grain: spots the best rejected candidate matched (-1 if none)"),
    Column("best_matched_fraction", "float32", "", "no grain: its matched fraction (NaN if none)"),
    Column("best_deviation_px", "float32", "px", "no grain: its mean pixel deviation (NaN if none)"),
)


def empty_table(columns: tuple[Column, ...]):
    """Return an empty pandas DataFrame with the given schema columns at their dtypes."""
    import pandas as pd  # why: pandas (~0.5 s) loads with the first table, not with the column lists

    return pd.DataFrame({c.name: np.empty(0, dtype=object if c.dtype == "str" else c.dtype)
                         for c in columns})


def spot_column_names() -> list[str]:
    """Names of the spot-table columns, in schema order."""
    return [c.name for c in SPOT_COLUMNS]


def spot_dtypes() -> dict[str, np.dtype]:
    """Map of spot-table column name to numpy dtype."""
    return {c.name: np.dtype(c.dtype) for c in SPOT_COLUMNS}


def empty_spot_table():
    """Return an empty spot table (pandas DataFrame) with every column at its schema dtype."""
    import pandas as pd  # why: pandas (~0.5 s) loads with the first table, not with the column lists

    return pd.DataFrame({c.name: np.empty(0, dtype=c.dtype) for c in SPOT_COLUMNS})


def conform_spot_table(df, frame: int | None = None):
    """Return ``df`` with exactly the schema's columns, in order, at the schema's dtypes.

    Parameters
    ----------
    df
        A pandas DataFrame holding at least the schema's columns (``frame`` may be missing if
        ``frame`` is given).
    frame
        If given, sets the ``frame`` column to this value.

    Raises
    ------
    ValueError
        If a schema column is missing.
    """
    import pandas as pd  # why: pandas (~0.5 s) loads with the first table, not with the column lists

    df = df.copy() if frame is None else df.assign(frame=frame)
    missing = [c.name for c in SPOT_COLUMNS if c.name not in df.columns]
    if missing:
        raise ValueError(f"spot table lacks schema column(s) {missing}")
    return pd.DataFrame(
        {c.name: df[c.name].to_numpy().astype(c.dtype, copy=False) for c in SPOT_COLUMNS}
    ).reset_index(drop=True)


def _arrow_type(dtype: str):
    import pyarrow as pa  # why: only the Arrow schemas need pyarrow

    return pa.string() if dtype == "str" else pa.from_numpy_dtype(np.dtype(dtype))


def spot_arrow_schema():
    """Return the spot table as a :class:`pyarrow.Schema` (Tiled appendable tables, Arrow IPC)."""
    import pyarrow as pa  # why: only the Arrow schemas need pyarrow

    return pa.schema([(c.name, _arrow_type(c.dtype)) for c in SPOT_COLUMNS],
                     metadata={"laue_live_schema_version": str(SCHEMA_VERSION)})


def frame_arrow_schema():
    """Return the per-frame summary as a :class:`pyarrow.Schema`."""
    import pyarrow as pa  # why: only the Arrow schemas need pyarrow

    return pa.schema([(c.name, _arrow_type(c.dtype)) for c in FRAME_COLUMNS],
                     metadata={"laue_live_schema_version": str(SCHEMA_VERSION)})


def describe_schema_markdown() -> str:
    """Return the schema as Markdown tables (used to generate the docs)."""
    lines = [f"Spot table, schema version {SCHEMA_VERSION}", "", "| column | dtype | unit | meaning |",
             "|---|---|---|---|"]
    lines += [f"| `{c.name}` | {c.dtype} | {c.unit} | {c.description} |" for c in SPOT_COLUMNS]
    lines += ["", "Per-frame summary", "", "| column | dtype | unit | meaning |", "|---|---|---|---|"]
    lines += [f"| `{c.name}` | {c.dtype} | {c.unit} | {c.description} |" for c in FRAME_COLUMNS]
    for title, cols in (("Grains (`grains` stream)", GRAIN_COLUMNS),
                        ("Miller indices of the spots (`indexed_spots` stream)", SPOT_INDEX_COLUMNS),
                        ("Per-frame indexing summary (`indexing` stream)", INDEXING_COLUMNS)):
        lines += ["", title, "", "| column | dtype | unit | meaning |", "|---|---|---|---|"]
        lines += [f"| `{c.name}` | {c.dtype} | {c.unit} | {c.description} |" for c in cols]
    return "\n".join(lines) + "\n"
