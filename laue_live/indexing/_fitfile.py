"""LaueTools ``.fit`` files: write indexed grains as LaueTools does, and read them (ours or LaueTools').

The layout is that of ``LaueTools.IOLaueTools.writefitfile`` (LaueTools 3.2): ``#`` header lines
(``#Number of indexed spots: N``, ``#Element``, ``#grainIndex``, ``#Mean Deviation(pixel): d``), a
``#spot_index ...`` column line followed by one row per indexed spot, then ``#`` footer blocks
(``#UB matrix in q= (UB) B0 G*``, ``#B0 matrix``, ``#UBB0 matrix``, ``#Umatrix``/``#Bmatrix``,
``#deviatoric strain in direct crystal frame (10-3 unit)``, ``#DetectorParameters``, ...), one block
per grain. LaueTools' ``readfitfile_multigrains`` reads what :func:`write_fit` writes. Pixel
positions in the file are LaueTools' (1-based, X = column); :func:`read_fit` adds the project's
0-based ``row, col``.
"""

from __future__ import annotations

import ast
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from laue_live._errors import SettingsError
from laue_live.geometry import Calibration, pixel_to_angles
from laue_live.indexing._indexer import INTENSITY_COLUMNS, Grain

__all__ = ["write_fit", "read_fit", "FitGrain"]

_COLUMNS = ("spot_index", "Intensity", "h", "k", "l", "pixDev", "energy(keV)", "Xexp", "Yexp", "2theta_exp",
            "chi_exp", "Xtheo", "Ytheo", "2theta_theo", "chi_theo", "Qx", "Qy", "Qz", "grainindex")


def _matrix(m, decimals: int) -> list[str]:
    text = np.array2string(np.round(np.asarray(m, dtype=float), decimals), max_line_width=400,
                           suppress_small=False, precision=decimals)
    return text.splitlines()


def _grain_block(grain: Grain, calibration: Calibration, b0: np.ndarray, peak_file: str) -> list[str]:
    sp = grain.spots
    n = len(sp)
    bright = next((c for c in INTENSITY_COLUMNS if c in sp.columns), None)
    inten = sp[bright].to_numpy(float) if bright else np.zeros(n)
    row, col = sp["row"].to_numpy(float), sp["col"].to_numpy(float)
    rt, ct = sp["row_theo"].to_numpy(float), sp["col_theo"].to_numpy(float)
    tth, chi = pixel_to_angles(row, col, calibration)
    ttht, chit = pixel_to_angles(rt, ct, calibration)
    hkl = sp[["h", "k", "l"]].to_numpy(float)
    q = hkl @ grain.UB.T
    data = np.column_stack([sp.index.to_numpy(float), inten, hkl, sp["deviation_px"].to_numpy(float),
                            sp["energy_keV"].to_numpy(float), col + 1, row + 1, tth, chi, ct + 1, rt + 1,
                            ttht, chit, q, np.full(n, grain.index, float)])
    ub = grain.UB @ np.linalg.inv(b0)  # q = UB B0 G*
    qr_u, qr_b = np.linalg.qr(ub)
    signs = np.sign(np.diag(qr_b))
    qr_u, qr_b = qr_u * signs, qr_b * signs[:, None]
    lines = [
        f"Strain and Orientation Refinement from experimental file: {peak_file}",
        f"File created at {time.asctime()} with laue_live",
        f"Number of indexed spots: {n}",
        "Element",
        grain.material,
        "grainIndex",
        f"G_{grain.index}",
        f"Mean Deviation(pixel): {grain.deviation_px:.3f}",
        " ".join(_COLUMNS),
    ]
    out = ["#" + ln for ln in lines]
    out += [" ".join(f"{v:.6f}" for v in r) for r in data]
    footer = ["UB matrix in q= (UB) B0 G* ", *_matrix(ub, 9),
              "Umatrix in q_lab= (Umatrix) (B) B0 G* ", *_matrix(qr_u, 9),
              "Bmatrix in q_lab= (U) (Bmatrix) B0 G* ", *_matrix(qr_b, 9),
              "(B-I)*1000 ", *_matrix((qr_b - np.eye(3)) * 1000.0, 3),
              "B0 matrix in q= UB (B0) G*", *_matrix(b0, 8),
              "UBB0 matrix in q= (UB B0) G* i.e. recip. basis vectors are columns in LT frame: "
              "astar = UBB0[:,0], bstar = UBB0[:,1], cstar = UBB0[:,2]. (abcstar as columns on xyzlab1, "
              "xlab1 = ui, ui = unit vector along incident beam)", *_matrix(grain.UB, 8),
              "deviatoric strain in direct crystal frame (10-3 unit)",
              *_matrix(_lt_crystal_frame(grain.strain, b0) * 1000.0, 2),
              "equivalent (von Mises) strain sqrt(2/3 dev:dev), frame independent (10-3 unit)",
              f"{grain.equivalent_strain * 1000.0:.3f}",
              "laue_live U (polar decomposition, q = U (I + strain)^-1 B0 G*)", *_matrix(grain.U, 9),
              "DetectorParameters", str(list(calibration.params)),
              "pixelsize", str(calibration.pixel_size),
              "Frame dimensions", str(tuple(calibration.frame_shape))]
    out += ["#" + ln for ln in footer]
    return out


def _lt_crystal_frame(strain: np.ndarray, b0: np.ndarray) -> np.ndarray:
    """Strain from our crystal frame (x along a*, z along c) to LaueTools' direct one (x along a)."""
    direct = np.linalg.inv(b0).T  # columns a, b, c in our frame
    q, r = np.linalg.qr(direct)
    q = q * np.sign(np.diag(r))  # columns: LaueTools' direct-frame axes in our frame
    return q.T @ strain @ q


def write_fit(path, grains, calibration: Calibration, peak_file: str = "") -> Path:
    """Write indexed grains as a LaueTools ``.fit`` file (one block per grain).

    Parameters
    ----------
    path
        Output file.
    grains
        A :class:`Grain` or a list of them (e.g. :attr:`IndexResult.grains`), of one material each.
    calibration
        The calibration they were indexed with (written as ``DetectorParameters``).
    peak_file
        Name of the peak list indexed (for the header).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    grains = [grains] if isinstance(grains, Grain) else list(grains)
    lines: list[str] = []
    for g in grains:
        b0 = (np.eye(3) + g.strain) @ np.linalg.solve(g.U, g.UB)  # UB = U (I + strain)^-1 B0
        lines += _grain_block(g, calibration, b0, peak_file)
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class FitGrain:
    """One grain block of a ``.fit`` file.

    Attributes
    ----------
    material
        ``#Element`` value.
    spots
        The indexed spots: the file's columns by name, plus 0-based ``row, col`` (from ``Xexp, Yexp``)
        and ``row_theo, col_theo`` (from ``Xtheo, Ytheo``) when present.
    mean_deviation_px
        ``#Mean Deviation(pixel)`` (NaN if absent).
    UB, B0, U, UBB0
        The matrices found (``None`` if absent); ``U`` is the file's ``#Umatrix``.
    devstrain
        ``#deviatoric strain in direct crystal frame``, dimensionless (the file's is in 1e-3), or ``None``.
    detector
        ``#DetectorParameters`` ``[dd, xcen, ycen, xbet, xgam]`` or ``None``.
    pixel_size
        ``#pixelsize`` or ``None``.
    frame_shape
        ``#Frame dimensions`` or ``None``.
    """

    material: str
    spots: pd.DataFrame
    mean_deviation_px: float
    UB: np.ndarray | None
    B0: np.ndarray | None
    U: np.ndarray | None
    UBB0: np.ndarray | None
    devstrain: np.ndarray | None
    detector: list[float] | None
    pixel_size: float | None
    frame_shape: tuple[int, int] | None

    def calibration(self) -> Calibration | None:
        """Return the file's detector parameters as a :class:`Calibration` (``None`` if incomplete)."""
        if self.detector is None or self.pixel_size is None:
            return None
        kw = {"frame_shape": self.frame_shape} if self.frame_shape else {}
        return Calibration(*self.detector[:5], pixel_size=self.pixel_size, **kw)


_NUM_ROW = re.compile(r"^[\s\d.eE+\-]+$")


def _read_matrix(lines: list[str], i: int) -> np.ndarray:
    vals = []
    j = i
    while len(vals) < 9 and j < len(lines):
        j += 1
        text = lines[j].lstrip("#").replace("[", " ").replace("]", " ")
        if not _NUM_ROW.match(text.strip() or "x"):
            continue
        vals += [float(v) for v in text.split()]
    if len(vals) != 9:
        raise ValueError("incomplete 3 x 3 matrix")
    return np.array(vals).reshape(3, 3)


def read_fit(path) -> list[FitGrain]:
    """Read a LaueTools ``.fit`` file (LaueTools' or :func:`write_fit`'s): a :class:`FitGrain` per block.

    Raises
    ------
    SettingsError
        If the file is missing or holds no ``Number of indexed spots`` block, or a block is malformed.
    """
    path = Path(path)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise SettingsError(f"cannot read .fit file {path}: {exc}") from None
    starts = [i for i, ln in enumerate(lines) if re.match(r"#\s*Number of indexed spots", ln)]
    if not starts:
        raise SettingsError(f"{path}: not a LaueTools .fit file (no 'Number of indexed spots' line)")
    grains = []
    for s, e in zip(starts, [*starts[1:], len(lines)], strict=True):
        # a block's header may start a few lines before its 'Number of indexed spots' line
        try:
            grains.append(_read_block(lines, s, e))
        except (ValueError, IndexError, SyntaxError) as exc:
            raise SettingsError(f"{path}: malformed grain block at line {s + 1}: {exc}") from None
    return grains


def _read_block(lines: list[str], start: int, end: int) -> FitGrain:
    n = int(lines[start].split(":")[-1])
    info: dict = {"material": "", "mean": np.nan, "UB": None, "B0": None, "U": None, "UBB0": None,
                  "strain": None, "det": None, "pix": None, "shape": None}
    spots = pd.DataFrame()
    i = start
    while i < end:
        ln = lines[i]
        key = ln.lstrip("#").strip()
        if key == "Element":
            info["material"] = lines[i + 1].lstrip("#").strip()
        elif key.startswith(("Mean Deviation", "Mean Pixel Deviation")):
            info["mean"] = float(key.split(":")[-1])
        elif key.startswith("spot_index") or key.startswith("spot#"):
            cols = key.split()
            rows = [[float(v) for v in lines[i + 1 + r].replace("#", "").split()] for r in range(n)]
            spots = pd.DataFrame(np.array(rows, dtype=float).reshape(n, -1), columns=cols[: len(rows[0])]
                                 if rows else cols)
            i += n
        elif key.startswith("UB matrix"):
            info["UB"] = _read_matrix(lines, i)
        elif key.startswith("UBB0 matrix"):
            info["UBB0"] = _read_matrix(lines, i)
        elif key.startswith("B0 matrix"):
            info["B0"] = _read_matrix(lines, i)
        elif key.startswith("Umatrix"):
            info["U"] = _read_matrix(lines, i)
        elif key.startswith("deviatoric strain in direct crystal"):
            info["strain"] = _read_matrix(lines, i) / 1000.0
        elif key == "DetectorParameters":
            info["det"] = [float(v) for v in ast.literal_eval(lines[i + 1].lstrip("#").strip())]
        elif key == "pixelsize":
            info["pix"] = float(lines[i + 1].lstrip("#").strip())
        elif key == "Frame dimensions":
            info["shape"] = tuple(int(v) for v in ast.literal_eval(lines[i + 1].lstrip("#").strip()))
        i += 1
    for x, y, r, c in (("Xexp", "Yexp", "row", "col"), ("Xtheo", "Ytheo", "row_theo", "col_theo")):
        if x in spots and y in spots:
            spots[r] = spots[y] - 1.0
            spots[c] = spots[x] - 1.0
    if info["B0"] is None and info["UB"] is not None and info["UBB0"] is not None:
        info["B0"] = np.linalg.solve(info["UB"], info["UBB0"])
    return FitGrain(info["material"], spots, info["mean"], info["UB"], info["B0"], info["U"], info["UBB0"],
                    info["strain"], info["det"], info["pix"], info["shape"])
