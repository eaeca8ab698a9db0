"""LaueTools ``.dat`` peak lists and ``.cor`` files: export a spot table so that LaueTools can index it.

A ``.cor`` file is the input of LaueTools' indexing: one row per spot with ``2theta chi X Y I``
(degrees, 1-based pixels, intensity) and the detector calibration in ``#`` comment lines, as
``LaueTools.IOLaueTools.writefile_cor`` writes it.

The format is that of ``LaueTools.IOLaueTools.writefile_Peaklist`` (LaueTools 3.2): a header line
``peak_X peak_Y peak_Itot peak_Isub peak_fwaxmaj peak_fwaxmin peak_inclination Xdev Ydev peak_bkg
Ipixmax``, one whitespace-separated row per peak, then ``#`` comment lines (``# Comments: nb of
peaks N``, optionally ``# Calibration parameters`` and ``# dd : ...`` lines). Positions are 1-based
with X = column and Y = row; this is the only place where the project converts:
``X = col + 1``, ``Y = row + 1``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from laue_live._errors import SpotTableError

__all__ = ["write_lauetools_dat", "read_lauetools_dat", "write_lauetools_cor", "DAT_COLUMNS"]

DAT_COLUMNS = ("peak_X", "peak_Y", "peak_Itot", "peak_Isub", "peak_fwaxmaj", "peak_fwaxmin",
               "peak_inclination", "Xdev", "Ydev", "peak_bkg", "Ipixmax")
_NEEDED = ("row", "col", "d_row", "d_col", "sigma_row", "sigma_col", "amplitude", "background",
           "peak_intensity")
_CALIB_KEYS = ("dd", "xcen", "ycen", "xbet", "xgam", "pixelsize")


def _calibration_lines(calibration) -> list[str]:
    if calibration is None:
        return []
    if is_dataclass(calibration):
        calibration = asdict(calibration)
    if isinstance(calibration, Mapping):
        c = dict(calibration)
        if "pixel_size" in c and "pixelsize" not in c:
            c["pixelsize"] = c.pop("pixel_size")
        if "frame_shape" in c and "framedim" not in c:
            c["framedim"] = tuple(c.pop("frame_shape"))
        keys = [k for k in (*_CALIB_KEYS, "xpixelsize", "ypixelsize", "CCDLabel", "framedim") if k in c]
        items = [(k, c[k]) for k in keys]
    else:
        vals = list(np.asarray(calibration, dtype=float).ravel())
        if len(vals) not in (5, 6):
            raise SpotTableError(f"calibration needs 5 or 6 parameters (dd, xcen, ycen, xbet, xgam[, "
                                 f"pixelsize]), got {len(vals)}")
        items = list(zip(_CALIB_KEYS, vals, strict=False))
    return ["# Calibration parameters"] + [f"# {k}     :   {v}" for k, v in items]


def write_lauetools_dat(table, path, *, calibration=None, comments: str | None = None) -> Path:
    """Write a spot table as a LaueTools ``.dat`` peak list.

    Column mapping (table -> ``.dat``): ``peak_X = col + 1``, ``peak_Y = row + 1`` (1-based,
    X = column), ``peak_Isub`` = fitted peak height above background ``alpha / (2 pi s_r s_c)``
    (ADU), ``peak_Itot = peak_Isub + peak_bkg``, ``peak_fwaxmaj/min`` = larger/smaller Gaussian sigma
    (px, as LaueTools writes them), ``peak_inclination`` = 0 if the larger sigma is along columns
    (X), 90 otherwise (the fit is axis-aligned), ``Xdev = d_col``, ``Ydev = d_row``,
    ``peak_bkg = background``, ``Ipixmax = peak_intensity``. Positions are written with 4 decimals
    (LaueTools writes 2; its reader, ``numpy.loadtxt``, takes either). Rows whose position is not
    finite are skipped.

    Parameters
    ----------
    table
        Spot table (pandas DataFrame) with at least ``row, col, d_row, d_col, sigma_row, sigma_col,
        amplitude, background, peak_intensity``.
    path
        Output file (``.dat`` is conventional).
    calibration
        Optional detector calibration written as LaueTools ``# key : value`` comments: a
        :class:`laue_live.geometry.Calibration`, a dict with LaueTools keys, or 5-6 numbers
        ``dd, xcen, ycen, xbet, xgam[, pixelsize]``.
    comments
        Optional extra comment line.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    SpotTableError
        If a needed column is missing or the calibration is malformed.
    """
    missing = [c for c in _NEEDED if c not in table.columns]
    if missing:
        raise SpotTableError(f"cannot write a .dat peak list: table lacks column(s) {missing}")
    t = table[list(_NEEDED)].astype(np.float64)
    t = t[np.isfinite(t["row"]) & np.isfinite(t["col"])]
    sr, sc = t["sigma_row"].to_numpy(), t["sigma_col"].to_numpy()
    bkg = t["background"].to_numpy()
    with np.errstate(all="ignore"):
        height = t["amplitude"].to_numpy() / (2 * np.pi * sr * sc)
    data = np.column_stack([
        t["col"].to_numpy() + 1, t["row"].to_numpy() + 1, height + bkg, height,
        np.fmax(sr, sc), np.fmin(sr, sc), np.where(sc >= sr, 0.0, 90.0),
        t["d_col"].to_numpy(), t["d_row"].to_numpy(), bkg, np.nan_to_num(t["peak_intensity"].to_numpy()),
    ])
    lines = [" ".join(DAT_COLUMNS)]
    fmt = "%.4f   %.4f   %.2f   %.2f   %.4f   %.4f    %.3f   %.4f   %.4f   %.2f   %d"
    lines += [fmt % (*row[:10], int(row[10])) for row in data]
    lines.append(f"# File created at {time.asctime()} with laue_live")
    lines.append(f"# Comments: nb of peaks {len(data)}")
    lines += _calibration_lines(calibration)
    if comments:
        lines.append("# " + comments.replace("\n", " "))
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_lauetools_dat(path):
    """Read a LaueTools ``.dat`` peak list (written by LaueTools or :func:`write_lauetools_dat`).

    Parameters
    ----------
    path
        The ``.dat`` file.

    Returns
    -------
    pandas.DataFrame
        The file's columns under their LaueTools names, plus the project's 0-based positions
        ``row = peak_Y - 1``, ``col = peak_X - 1`` and ``d_row = Ydev``, ``d_col = Xdev`` (px).
        ``DataFrame.attrs["calibration"]`` holds the ``# key : value`` calibration comments, if any.

    Raises
    ------
    SpotTableError
        If the file has no recognisable header or malformed rows.
    """
    path = Path(path)
    text = path.read_text(errors="replace").splitlines()
    if not text:
        raise SpotTableError(f"{path}: empty file, not a LaueTools peak list")
    header = text[0].split()
    if header[:2] != ["peak_X", "peak_Y"]:
        raise SpotTableError(f"{path}: first line {text[0]!r} is not a LaueTools peak-list header")
    rows, calib = [], {}
    for k, line in enumerate(text[1:], start=2):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            if ":" in s:
                key, _, val = s[1:].partition(":")
                key = key.strip()
                if key in (*_CALIB_KEYS, "xpixelsize", "ypixelsize", "CCDLabel", "framedim"):
                    try:
                        calib[key] = float(val)
                    except ValueError:
                        calib[key] = val.strip()
            continue
        try:
            vals = [float(x) for x in s.split()]
        except ValueError as exc:
            raise SpotTableError(f"{path}:{k}: malformed peak row {s!r}") from exc
        if len(vals) != len(header):
            raise SpotTableError(f"{path}:{k}: {len(vals)} values for {len(header)} columns")
        rows.append(vals)
    df = pd.DataFrame(np.array(rows, dtype=np.float64).reshape(-1, len(header)), columns=header)
    df["row"] = df["peak_Y"] - 1
    df["col"] = df["peak_X"] - 1
    if "Ydev" in df and "Xdev" in df:
        df["d_row"] = df["Ydev"]
        df["d_col"] = df["Xdev"]
    df.attrs["calibration"] = calib
    return df


def write_lauetools_cor(table, path, calibration, *, detector=None, comments: str | None = None) -> Path:
    """Write a spot table as a LaueTools ``.cor`` file (the input of LaueTools' indexing).

    Columns ``2theta chi X Y I``: the scattering angles of each spot's position in LaueTools'
    convention (:func:`laue_live.geometry.pixel_to_angles`, from ``row``/``col`` and
    ``calibration``, degrees), ``X = col + 1``, ``Y = row + 1`` and ``I`` = fitted peak height plus
    background (``peak_Itot`` of the ``.dat``, what LaueTools' own ``.dat`` -> ``.cor`` conversion
    takes), spots sorted by decreasing ``I``. Then the ``# Calibration parameters`` block with
    ``dd, xcen, ycen, xbet, xgam, pixelsize, xpixelsize, ypixelsize, CCDLabel, framedim,
    detectordiameter, kf_direction`` as LaueTools writes and reads it. Rows without a finite
    position are skipped.

    Parameters
    ----------
    table
        Spot table (``row, col, sigma_row, sigma_col, amplitude, background``).
    path
        Output file (``.cor``).
    calibration
        :class:`laue_live.geometry.Calibration` of the detector.
    detector
        :class:`laue_live.geometry.Detector` or preset name for ``CCDLabel`` (default: the preset
        whose frame shape and pixel size match the calibration, else ``sCMOS``).
    comments
        Optional extra comment line.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    SpotTableError
        A needed column is missing or the calibration is not a ``Calibration``.
    """
    from laue_live.geometry import DETECTORS, Calibration, get_detector, pixel_to_angles

    if not isinstance(calibration, Calibration):
        raise SpotTableError("a .cor file needs a laue_live.geometry.Calibration, got "
                             f"{type(calibration).__name__}")
    needed = ("row", "col", "sigma_row", "sigma_col", "amplitude", "background")
    missing = [c for c in needed if c not in table]
    if missing:
        raise SpotTableError(f"cannot write a .cor file: table lacks column(s) {missing}")
    if detector is None:
        match = [d for d in DETECTORS.values() if tuple(d.frame_shape) == tuple(calibration.frame_shape)
                 and abs(d.pixel_size - calibration.pixel_size) < 1e-3]
        detector = match[0] if match else DETECTORS["sCMOS"]
    det = get_detector(detector)
    t = table[list(needed)].astype(np.float64)
    t = t[np.isfinite(t["row"]) & np.isfinite(t["col"])]
    with np.errstate(all="ignore"):
        height = t["amplitude"].to_numpy() / (2 * np.pi * t["sigma_row"].to_numpy()
                                              * t["sigma_col"].to_numpy())
        tth, chi = pixel_to_angles(t["row"].to_numpy(), t["col"].to_numpy(), calibration)
    inten = np.nan_to_num(height + t["background"].to_numpy())
    data = np.column_stack([tth, chi, t["col"].to_numpy() + 1, t["row"].to_numpy() + 1, inten])
    data = data[np.argsort(-data[:, 4], kind="stable")]
    lines = ["2theta       chi         X           Y           I       "]
    lines += [f"{a:.5f}   {b:.5f}   {x:.5f}   {y:.5f}   {i:.2f}" for a, b, x, y, i in data]
    lines.append(f"# File created at {time.asctime()} with laue_live")
    rows, cols = calibration.frame_shape
    diameter = max(rows, cols) * calibration.pixel_size
    lines.append("# Calibration parameters")
    px = calibration.pixel_size
    for k, v in (("dd", calibration.dd), ("xcen", calibration.xcen), ("ycen", calibration.ycen),
                 ("xbet", calibration.xbet), ("xgam", calibration.xgam), ("pixelsize", px),
                 ("xpixelsize", px), ("ypixelsize", px),
                 ("CCDLabel", det.name), ("framedim", (rows, cols)), ("detectordiameter", diameter),
                 ("kf_direction", "Z>0")):
        lines.append(f"# {k}     :   {v}")
    if comments:
        lines += ["# Comments", "# " + comments.replace("\n", " ")]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
