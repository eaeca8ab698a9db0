from __future__ import annotations

import numpy as np
import pytest

from laue_live import SpotTableError
from laue_live.describe import analyze_frame
from laue_live.geometry import Calibration
from laue_live.spots import read_lauetools_dat, write_lauetools_dat

# the exact layout LaueTools 3.2's IOLaueTools.writefile_Peaklist writes (2 decimals)
LAUETOOLS_DAT = (
    "peak_X peak_Y peak_Itot peak_Isub peak_fwaxmaj peak_fwaxmin "
    "peak_inclination Xdev Ydev peak_bkg Ipixmax\n"
    """631.62   1725.87   63149.27   62056.37   1.40   0.91    330.478   -0.38   -0.13   1092.90   56554
1188.95   1789.34   52025.79   50885.28   1.23   0.96    159.375   -0.05   0.34   1140.51   55844
# File created at Tue Sep 14 10:00:00 2021 with IOLaueTools.py
# Comments: nb of peaks 2
"""
)


def _table():
    rng = np.random.default_rng(0)
    rr, cc = np.mgrid[:200, :180]
    img = 1000 + rng.normal(0, 3, rr.shape)
    for r, c, h in [(50.3, 60.8, 9000), (140.6, 30.2, 4000), (100.1, 150.4, 20000)]:
        img += h * np.exp(-0.5 * (((rr - r) / 1.3) ** 2 + ((cc - c) / 0.9) ** 2))
    return analyze_frame(np.rint(img).astype(np.uint16))


def test_round_trip(tmp_path):
    t = _table()
    assert len(t) == 3
    p = write_lauetools_dat(t, tmp_path / "peaks.dat", calibration=Calibration())
    back = read_lauetools_dat(p)
    assert len(back) == 3
    assert np.allclose(back["row"], t["row"], atol=1e-4) and np.allclose(back["col"], t["col"], atol=1e-4)
    # 1-based, X = column
    assert np.allclose(back["peak_X"], t["col"] + 1, atol=1e-4)
    assert np.allclose(back["peak_Y"], t["row"] + 1, atol=1e-4)
    assert np.allclose(back["d_row"], t["d_row"], atol=1e-4)
    assert np.allclose(back["Xdev"], t["d_col"], atol=1e-4)
    assert np.allclose(back["peak_fwaxmaj"], np.fmax(t["sigma_row"], t["sigma_col"]), atol=1e-4)
    assert np.allclose(back["peak_bkg"], t["background"], atol=0.01)
    height = t["amplitude"] / (2 * np.pi * t["sigma_row"] * t["sigma_col"])
    assert np.allclose(back["peak_Isub"], height, atol=0.01)
    assert np.allclose(back["peak_Itot"] - back["peak_bkg"], back["peak_Isub"], atol=0.02)
    assert (back["Ipixmax"] == t["peak_intensity"]).all()
    assert (back["peak_inclination"] == 90).all()  # wider along rows
    assert back.attrs["calibration"]["dd"] == pytest.approx(79.612)
    assert back.attrs["calibration"]["xcen"] == pytest.approx(977.81)
    assert "# Comments: nb of peaks 3" in p.read_text()


def test_reads_lauetools_written_file(tmp_path):
    p = tmp_path / "lt.dat"
    p.write_text(LAUETOOLS_DAT)
    df = read_lauetools_dat(p)
    assert len(df) == 2
    assert df["col"][0] == pytest.approx(630.62) and df["row"][0] == pytest.approx(1724.87)
    assert df["Ipixmax"][1] == 55844


def test_empty_table_and_errors(tmp_path):
    t = _table().iloc[:0]
    p = write_lauetools_dat(t, tmp_path / "empty.dat", calibration=[79.6, 977.8, 932.2, 0.47, 0.45])
    assert len(read_lauetools_dat(p)) == 0
    with pytest.raises(SpotTableError, match="lacks"):
        write_lauetools_dat(_table().drop(columns="sigma_row"), tmp_path / "x.dat")
    with pytest.raises(SpotTableError, match="5 or 6"):
        write_lauetools_dat(_table(), tmp_path / "x.dat", calibration=[1, 2])
    bad = tmp_path / "bad.dat"
    bad.write_text("hello world\n1 2\n")
    with pytest.raises(SpotTableError, match="header"):
        read_lauetools_dat(bad)
    bad.write_text(LAUETOOLS_DAT.replace("56554", "56554 7"))
    with pytest.raises(SpotTableError, match="12 values"):
        read_lauetools_dat(bad)
