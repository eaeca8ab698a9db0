"""LaueTools 3.2.19 itself reads our ``.dat`` and ``.cor`` files, and we read the ``.dat`` it writes.

LaueTools runs in its own venv (``scripts/lauetools_env.sh``, run by ``.ci/run``) through the
``lauetools`` fixture. What LaueTools does with our file is what an indexing run at a beamline
does with it: ``IOLaueTools.read_Peaklist`` (the peak list), ``readCalibParametersInFile`` (the
calibration comments) and ``LaueGeometry.Compute_data2thetachi`` (the scattering angles of every
peak, the first step of ``.dat`` -> ``.cor``), compared with our table and our own geometry; and
``IOLaueTools.readfile_cor`` (the input of LaueTools' indexing) with ``LaueGeometry.calc_uflab``
(LaueTools' angles of the file's own X, Y with the file's own calibration).
"""

from __future__ import annotations

import numpy as np
import pytest

from laue_live.describe import analyze_frame
from laue_live.geometry import Calibration, pixel_to_angles
from laue_live.spots import read_lauetools_dat, write_lauetools_cor, write_lauetools_dat
from laue_live.spots._lauetools import DAT_COLUMNS

_READ = """
import json, sys
import numpy as np
from LaueTools import IOLaueTools as IO, LaueGeometry as LG
args = json.loads(sys.stdin.read())
out = []
for path in args["paths"]:
    data, names = IO.read_Peaklist(path, output_columnsname=True)
    with open(path) as f:
        calib = IO.readCalibParametersInFile(f, guessCCDLabel=False)
    tth, chi, inten, x, y = LG.Compute_data2thetachi(
        path, sorting_intensity="no", detectorparams=args["calib"], pixelsize=args["pixelsize"])
    out.append({"names": names, "data": np.atleast_2d(data).tolist(),
                "calib": {k: v for k, v in calib.items() if isinstance(v, (int, float))},
                "tth": np.atleast_1d(tth).tolist(), "chi": np.atleast_1d(chi).tolist(),
                "x": np.atleast_1d(x).tolist(), "y": np.atleast_1d(y).tolist()})
print(json.dumps(out))
"""

_READ_COR = """
import json, sys
import numpy as np
from LaueTools import IOLaueTools as IO, LaueGeometry as LG
out = []
for path in json.loads(sys.stdin.read()):
    alldata, theta, chi, x, y, inten, det, ccd = IO.readfile_cor(path, output_CCDparamsdict=True)
    tth_lt, chi_lt = LG.calc_uflab(np.atleast_1d(x), np.atleast_1d(y), det, returnAngles=1,
                                   pixelsize=ccd["pixelsize"], kf_direction=ccd["kf_direction"])
    out.append({"tth": (2 * np.atleast_1d(theta)).tolist(), "chi": np.atleast_1d(chi).tolist(),
                "x": np.atleast_1d(x).tolist(), "y": np.atleast_1d(y).tolist(),
                "I": np.atleast_1d(inten).tolist(), "det": list(det),
                "ccd": {k: ccd[k] for k in ("CCDLabel", "pixelsize", "kf_direction")},
                "framedim": list(ccd["framedim"]),
                "tth_lt": np.atleast_1d(tth_lt).tolist(), "chi_lt": np.atleast_1d(chi_lt).tolist()})
print(json.dumps(out))
"""

_WRITE = """
import json, os, sys
import numpy as np
from LaueTools import IOLaueTools as IO
args = json.loads(sys.stdin.read())
for prefix, rows in args["files"].items():
    IO.writefile_Peaklist(prefix, np.array(rows, dtype=float), dirname=args["dir"], comments="laue-live test")
print(json.dumps(sorted(os.listdir(args["dir"]))))
"""

SPOTS = [(150.3, 1800.7, 9000, 1.3, 0.9), (1000.6, 30.2, 4000, 1.0, 1.4), (1700.1, 1000.4, 20000, 1.1, 1.1),
         (60.8, 70.5, 6000, 0.8, 1.2), (1950.2, 1950.9, 15000, 1.6, 1.0), (932.4, 977.7, 30000, 1.2, 1.2)]


@pytest.fixture(scope="module")
def table():
    """Our spot table of a BM32-sized frame with spots spread over the whole detector."""
    rng = np.random.default_rng(4)
    cal = Calibration()
    img = 1000 + rng.normal(0, 3, cal.frame_shape)
    for r, c, h, sr, sc in SPOTS:
        rr, cc = np.arange(int(r) - 12, int(r) + 13)[:, None], np.arange(int(c) - 12, int(c) + 13)[None, :]
        img[rr, cc] += h * np.exp(-0.5 * (((rr - r) / sr) ** 2 + ((cc - c) / sc) ** 2))
    t = analyze_frame(np.rint(img).astype(np.uint16))
    assert len(t) == len(SPOTS) and t["converged"].all()
    return t


def test_lauetools_reads_our_peak_list(table, tmp_path, lauetools):
    cal = Calibration()
    full = write_lauetools_dat(table, tmp_path / "all.dat", calibration=cal)
    one = write_lauetools_dat(table.iloc[:1], tmp_path / "one.dat", calibration=cal)  # LaueTools' 1-peak case
    res = lauetools(_READ, {"paths": [str(full), str(one)], "calib": list(cal.params),
                            "pixelsize": cal.pixel_size})
    for got, t in zip(res, (table, table.iloc[:1]), strict=True):
        assert got["names"] == list(DAT_COLUMNS)
        data = np.asarray(got["data"])
        assert data.shape == (len(t), len(DAT_COLUMNS))
        col = dict(zip(DAT_COLUMNS, data.T, strict=True))
        # positions written with 4 decimals, intensities with 2: LaueTools reads back what we meant
        np.testing.assert_allclose(col["peak_X"], t["col"] + 1, rtol=0, atol=5e-5)  # 1-based, X = column
        np.testing.assert_allclose(col["peak_Y"], t["row"] + 1, rtol=0, atol=5e-5)
        np.testing.assert_allclose(col["Xdev"], t["d_col"], rtol=0, atol=5e-5)
        np.testing.assert_allclose(col["Ydev"], t["d_row"], rtol=0, atol=5e-5)
        sr, sc = t["sigma_row"], t["sigma_col"]
        np.testing.assert_allclose(col["peak_fwaxmaj"], np.fmax(sr, sc), rtol=0, atol=5e-5)
        np.testing.assert_allclose(col["peak_fwaxmin"], np.fmin(sr, sc), rtol=0, atol=5e-5)
        np.testing.assert_array_equal(col["peak_inclination"], np.where(sc >= sr, 0, 90))
        height = t["amplitude"] / (2 * np.pi * t["sigma_row"] * t["sigma_col"])
        np.testing.assert_allclose(col["peak_Isub"], height, rtol=0, atol=5e-3)
        np.testing.assert_allclose(col["peak_bkg"], t["background"], rtol=0, atol=5e-3)
        np.testing.assert_allclose(col["peak_Itot"], height + t["background"], rtol=0, atol=1e-2)
        np.testing.assert_array_equal(col["Ipixmax"], t["peak_intensity"])
        # the calibration comments, as LaueTools reads them
        assert got["calib"] == {"dd": cal.dd, "xcen": cal.xcen, "ycen": cal.ycen, "xbet": cal.xbet,
                                "xgam": cal.xgam, "pixelsize": cal.pixel_size}
        # LaueTools' scattering angles of our peaks are ours (laue_live.geometry)
        x, y = np.asarray(got["x"]), np.asarray(got["y"])
        np.testing.assert_array_equal(x, col["peak_X"])
        tth, chi = pixel_to_angles(y - 1, x - 1, cal)
        # float64 rounding of two implementations of one formula: measured one ulp, 1.4e-14 deg (2theta)
        # and 7.1e-15 deg (chi); bounds of two ulps
        np.testing.assert_allclose(got["tth"], tth, rtol=0, atol=2.9e-14)
        np.testing.assert_allclose(got["chi"], chi, rtol=0, atol=1.5e-14)
    assert min(res[0]["tth"]) < 55 and max(res[0]["tth"]) > 120  # the peaks span the detector


def test_we_read_lauetools_own_peak_list(tmp_path, lauetools):
    rng = np.random.default_rng(9)
    n = 7
    # LaueTools' 10-column array: X, Y, I, fwaxmaj, fwaxmin, inclination, Xdev, Ydev, bkg, Ipixmax
    arr = np.column_stack([rng.uniform(1, 2016, n), rng.uniform(1, 2018, n), rng.uniform(100, 60000, n),
                           rng.uniform(1, 3, n), rng.uniform(0.5, 1, n), rng.uniform(0, 180, n),
                           rng.uniform(-0.5, 0.5, n), rng.uniform(-0.5, 0.5, n), rng.uniform(990, 1100, n),
                           rng.integers(1000, 65535, n)])
    files = lauetools(_WRITE, {"dir": str(tmp_path),
                               "files": {"many": arr.tolist(), "single": arr[:1].tolist()}})
    assert files == ["many.dat", "single.dat"]
    for name, ref in (("many", arr), ("single", arr[:1])):
        df = read_lauetools_dat(tmp_path / f"{name}.dat")
        assert len(df) == len(ref), name
        assert list(df.columns[:len(DAT_COLUMNS)]) == list(DAT_COLUMNS)
        r2 = np.round(ref, 2)  # LaueTools writes 2 decimals
        np.testing.assert_allclose(df["peak_X"], r2[:, 0], atol=1e-9)
        np.testing.assert_allclose(df["col"], r2[:, 0] - 1, atol=1e-9)  # 0-based, X = column
        np.testing.assert_allclose(df["row"], r2[:, 1] - 1, atol=1e-9)
        np.testing.assert_allclose(df["peak_Isub"], r2[:, 2], atol=1e-9)
        np.testing.assert_allclose(df["peak_Itot"], np.round(ref[:, 2] + ref[:, 8], 2), atol=1e-9)
        np.testing.assert_allclose(df["d_col"], r2[:, 6], atol=1e-9)
        np.testing.assert_allclose(df["d_row"], r2[:, 7], atol=1e-9)
        np.testing.assert_allclose(df["peak_bkg"], r2[:, 8], atol=1e-9)
        np.testing.assert_array_equal(df["Ipixmax"], ref[:, 9].astype(int))


def test_lauetools_reads_our_cor_file(table, tmp_path, lauetools):
    cal = Calibration()
    full = write_lauetools_cor(table, tmp_path / "all.cor", cal)
    one = write_lauetools_cor(table.iloc[:1], tmp_path / "one.cor", cal)  # LaueTools' 1-peak case
    res = lauetools(_READ_COR, [str(full), str(one)])
    for got, t in zip(res, (table, table.iloc[:1]), strict=True):
        order = np.argsort(-(t["amplitude"] / (2 * np.pi * t["sigma_row"] * t["sigma_col"]) + t["background"])
                           .to_numpy(), kind="stable")  # brightest first, as the file is written
        t = t.iloc[order]
        # X = col + 1, Y = row + 1, written with 5 decimals
        np.testing.assert_allclose(got["x"], t["col"] + 1, rtol=0, atol=5e-6)
        np.testing.assert_allclose(got["y"], t["row"] + 1, rtol=0, atol=5e-6)
        height = t["amplitude"] / (2 * np.pi * t["sigma_row"] * t["sigma_col"])
        np.testing.assert_allclose(got["I"], height + t["background"], rtol=0, atol=5e-3)
        assert (np.diff(got["I"]) <= 0).all()
        # the calibration block, as LaueTools' indexing takes it
        assert got["det"] == [cal.dd, cal.xcen, cal.ycen, cal.xbet, cal.xgam]
        assert got["ccd"] == {"CCDLabel": "sCMOS", "pixelsize": cal.pixel_size, "kf_direction": "Z>0"}
        assert got["framedim"] == list(cal.frame_shape)
        # the angles in the file are ours, written with 5 decimals (measured up to 4.9e-6 deg off)
        tth, chi = pixel_to_angles(t["row"].to_numpy(), t["col"].to_numpy(), cal)
        np.testing.assert_allclose(got["tth"], tth, rtol=0, atol=5e-6)
        np.testing.assert_allclose(got["chi"], chi, rtol=0, atol=5e-6)
        # LaueTools' own angles of the file's X, Y with the file's calibration are ours: one ulp
        # measured (1.4e-14 deg), bounds of two ulps as for the .dat
        x, y = np.asarray(got["x"]), np.asarray(got["y"])
        tth_xy, chi_xy = pixel_to_angles(y - 1, x - 1, cal)
        np.testing.assert_allclose(got["tth_lt"], tth_xy, rtol=0, atol=2.9e-14)
        np.testing.assert_allclose(got["chi_lt"], chi_xy, rtol=0, atol=2.9e-14)
