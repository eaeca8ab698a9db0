"""Spot tables from files for indexing: LaueTools ``.dat`` and ``.cor`` peak lists, our CSV and Parquet.

Every reader returns a DataFrame with the project's 0-based ``row, col`` (px), a brightness column
when the file has one, and ``attrs["calibration"]``: the calibration the file carries (LaueTools
``# key : value`` comments), as a dict of LaueTools keys, empty if none.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd

from laue_live._errors import SettingsError, SpotTableError
from laue_live.geometry import Calibration
from laue_live.spots import read_lauetools_dat

__all__ = ["SPOT_FILE_SUFFIXES", "read_spot_file", "read_lauetools_cor", "calibration_from_file_keys"]

#: File kinds :func:`read_spot_file` reads.
SPOT_FILE_SUFFIXES = (".dat", ".cor", ".csv", ".parquet")
_CALIB_KEYS = ("dd", "xcen", "ycen", "xbet", "xgam", "pixelsize", "xpixelsize", "framedim")


def read_lauetools_cor(path) -> pd.DataFrame:
    """Read a LaueTools ``.cor`` peak list (``2theta chi X Y I ...`` and ``# key : value`` comments).

    Returns
    -------
    pandas.DataFrame
        The file's columns, ``two_theta, chi`` (degrees), ``row = Y - 1``, ``col = X - 1``,
        ``intensity`` (the ``I`` column), and ``attrs["calibration"]``.

    Raises
    ------
    SpotTableError
        If the header or a row is malformed.
    """
    path = Path(path)
    lines = path.read_text(errors="replace").splitlines()
    if not lines or lines[0].split()[:4] != ["2theta", "chi", "X", "Y"]:
        raise SpotTableError(f"{path}: first line is not a LaueTools .cor header '2theta chi X Y I ...'")
    header = lines[0].split()
    rows, calib = [], {}
    for n, line in enumerate(lines[1:], start=2):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            key, sep, val = s[1:].partition(":")
            key = key.strip()
            if sep and key in _CALIB_KEYS:
                val = val.strip()
                try:
                    calib[key] = ast.literal_eval(val) if key == "framedim" else float(val)
                except (ValueError, SyntaxError):
                    raise SpotTableError(f"{path}:{n}: cannot read {key} = {val!r}") from None
            continue
        try:
            vals = [float(v) for v in s.split()]
        except ValueError:
            raise SpotTableError(f"{path}:{n}: malformed peak row {s!r}") from None
        if len(vals) < 5:
            raise SpotTableError(f"{path}:{n}: {len(vals)} values, need at least 2theta chi X Y I")
        rows.append(vals[: len(header)])
    df = pd.DataFrame(np.array(rows, dtype=float).reshape(-1, len(header)), columns=header)
    df = df.rename(columns={"2theta": "two_theta"})
    df["row"] = df["Y"] - 1.0
    df["col"] = df["X"] - 1.0
    df["intensity"] = df["I"]
    df.attrs["calibration"] = calib
    return df


def calibration_from_file_keys(keys: dict, frame_shape=None) -> Calibration | None:
    """Return a :class:`Calibration` from LaueTools ``# key : value`` comments (``None`` if incomplete)."""
    if not all(k in keys for k in ("dd", "xcen", "ycen", "xbet", "xgam")):
        return None
    pix = keys.get("pixelsize", keys.get("xpixelsize"))
    if pix is None:
        return None
    shape = keys.get("framedim", frame_shape)
    if isinstance(shape, str):
        try:
            shape = ast.literal_eval(shape)
        except (ValueError, SyntaxError):
            return None
    kw = {"frame_shape": tuple(int(v) for v in shape)} if shape is not None else {}
    try:
        return Calibration(*(float(keys[k]) for k in ("dd", "xcen", "ycen", "xbet", "xgam")),
                           pixel_size=float(pix), **kw)
    except (TypeError, ValueError):
        return None


def read_spot_file(path) -> pd.DataFrame:
    """Read a spot table for indexing from a ``.dat``, ``.cor``, ``.csv`` or ``.parquet`` file.

    CSV and Parquet files are spot tables with 0-based ``row, col`` columns (as ``laue-live analyze
    --out`` writes them).

    Raises
    ------
    SettingsError
        If the file is missing or of another kind.
    SpotTableError
        If its content is not a spot table.
    """
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"no such spot file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".dat":
        df = read_lauetools_dat(path)
    elif suffix == ".cor":
        df = read_lauetools_cor(path)
    elif suffix in (".csv", ".parquet"):
        try:
            df = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        except (ValueError, OSError, pd.errors.ParserError) as exc:
            raise SpotTableError(f"{path}: cannot read the table: {exc}") from None
        df.attrs["calibration"] = {}
    else:
        kinds = ", ".join(SPOT_FILE_SUFFIXES)
        raise SettingsError(f"unknown spot file type {suffix!r} ({path}): use one of {kinds}")
    if not {"row", "col"} <= set(df.columns):
        raise SpotTableError(f"{path}: the table has no 'row' and 'col' columns (0-based pixel positions)")
    df.attrs.setdefault("calibration", {})
    return df
