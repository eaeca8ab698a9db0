"""Storing and reading back the ground truth of simulated frames.

The truth of many frames is one table with a ``frame`` column (0-based frame number within the
file or run) and the columns of :data:`STORED_TRUTH_COLUMNS`. It lives either

* in the detector's HDF5 file, next to the images: one 1-D dataset per column under
  ``/entry/truth/`` (``shape`` stored as an integer code, the class names in the attribute
  ``shape_classes``), or
* in a Parquet (``.parquet``) or CSV (``.csv``) file.

:func:`read_ground_truth` reads any of them into a pandas DataFrame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from laue_live._errors import SettingsError
from laue_live.sim._shapes import SHAPES

__all__ = ["STORED_TRUTH_COLUMNS", "conform_truth", "read_ground_truth", "H5TruthWriter", "TRUTH_GROUP"]

TRUTH_GROUP = "/entry/truth"

#: Column -> dtype of a stored truth table (missing columns are filled with -1 / NaN / False).
STORED_TRUTH_COLUMNS: dict[str, str] = {
    "frame": "int64",
    "spot": "int32",
    "row": "float64",
    "col": "float64",
    "centroid_row": "float64",
    "centroid_col": "float64",
    "shape": "str",
    "amplitude": "float64",
    "peak_height": "float64",
    "background": "float64",
    "sigma_row": "float64",
    "sigma_col": "float64",
    "w_major": "float64",
    "w_minor": "float64",
    "angle_deg": "float64",
    "eta": "float64",
    "skew": "float64",
    "streak_length": "float64",
    "streak_dir_row": "float64",
    "streak_dir_col": "float64",
    "split_d_row": "float64",
    "split_d_col": "float64",
    "split_ratio": "float64",
    "saturated": "bool",
    "h": "int32",
    "k": "int32",
    "l": "int32",
    "energy_keV": "float64",
    "grain": "int32",
    "intensity": "float64",
    "x": "float64",
    "y": "float64",
}


def conform_truth(
    truth: pd.DataFrame, frame: int | None = None, x: float = np.nan, y: float = np.nan
) -> pd.DataFrame:
    """Return ``truth`` with exactly :data:`STORED_TRUTH_COLUMNS`, at their dtypes.

    ``frame``, ``x`` and ``y`` (stage position) are set when given; missing integer columns become
    -1, float columns NaN, ``saturated`` False.
    """
    n = len(truth)
    out = {}
    for name, dtype in STORED_TRUTH_COLUMNS.items():
        if name == "frame" and frame is not None:
            out[name] = np.full(n, frame, np.int64)
        elif name in ("x", "y") and name not in truth.columns:
            out[name] = np.full(n, x if name == "x" else y, np.float64)
        elif name in truth.columns:
            out[name] = truth[name].to_numpy().astype(object if dtype == "str" else dtype)
        elif dtype == "str":
            out[name] = np.full(n, "", object)
        elif dtype == "bool":
            out[name] = np.zeros(n, bool)
        elif dtype.startswith("int"):
            out[name] = np.full(n, -1, dtype)
        else:
            out[name] = np.full(n, np.nan, dtype)
    return pd.DataFrame(out)


class H5TruthWriter:
    """Appends truth rows to ``/entry/truth`` of an open :class:`h5py.File` (create before SWMR)."""

    def __init__(self, h5file) -> None:
        # h5py only for HDF5 files
        import h5py

        grp = h5file.require_group(TRUTH_GROUP)
        grp.attrs["shape_classes"] = json.dumps(list(SHAPES))
        grp.attrs["convention"] = "0-based (row, col), pixel centres at integers"
        self._ds = {}
        for name, dtype in STORED_TRUTH_COLUMNS.items():
            dt = np.int8 if dtype == "str" else (np.uint8 if dtype == "bool" else np.dtype(dtype))
            self._ds[name] = grp.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(4096,))
        self._h5py = h5py

    def append(self, truth: pd.DataFrame) -> None:
        """Append rows (already conformed with :func:`conform_truth`)."""
        n = len(truth)
        codes = {s: i for i, s in enumerate(SHAPES)}
        for name, ds in self._ds.items():
            values = truth[name].to_numpy()
            if STORED_TRUTH_COLUMNS[name] == "str":
                values = np.array([codes.get(v, -1) for v in values], np.int8)
            old = ds.shape[0]
            ds.resize((old + n,))
            ds[old:] = values.astype(ds.dtype)
            ds.flush()


def read_ground_truth(path: str | Path, frame: int | None = None) -> pd.DataFrame:
    """Read the ground truth written by the simulator.

    Parameters
    ----------
    path
        An HDF5 file written by :class:`~laue_live.sim.SimLaueDetector` (``mode="hdf5"``) or by
        ``laue-live sim write --format hdf5``, or a ``.parquet``/``.csv`` truth table.
    frame
        Only the spots of this frame (0-based) if given.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`STORED_TRUTH_COLUMNS`; positions 0-based, pixel centres at integers.

    Raises
    ------
    SettingsError
        If the file is missing or holds no truth table.
    """
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"no ground-truth file at {path}")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5", ".nxs"):
        # h5py only for HDF5 files
        import h5py

        with h5py.File(path, "r", swmr=True) as f:
            if TRUTH_GROUP not in f:
                raise SettingsError(f"{path} holds no {TRUTH_GROUP} group")
            grp = f[TRUTH_GROUP]
            classes = json.loads(grp.attrs.get("shape_classes", "[]"))
            data = {}
            for name, dtype in STORED_TRUTH_COLUMNS.items():
                if name not in grp:
                    continue
                v = grp[name][()]
                if dtype == "str":
                    v = np.array([classes[i] if 0 <= i < len(classes) else "" for i in v], dtype=object)
                elif dtype == "bool":
                    v = v.astype(bool)
                data[name] = v
        df = pd.DataFrame(data)
    elif suffix == ".parquet":
        df = pd.read_parquet(path)
    elif suffix == ".csv":
        df = pd.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"])
        df["shape"] = df["shape"].astype(str)
    else:
        raise SettingsError(f"unknown ground-truth file type {path.suffix!r} (use .h5, .parquet or .csv)")
    if frame is not None:
        df = df[df["frame"] == frame].reset_index(drop=True)
    return df
