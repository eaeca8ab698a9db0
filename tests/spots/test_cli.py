from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from laue_live._schema import spot_column_names
from laue_live.cli import app

runner = CliRunner()


def test_analyze_real_frame_writes_outputs(bm32_dir, tmp_path):
    out, dat, png = tmp_path / "t.parquet", tmp_path / "t.dat", tmp_path / "t.png"
    r = runner.invoke(app, ["analyze", str(bm32_dir / "nw1_0000.tif"), "--out", str(out), "--dat", str(dat),
                            "--plot", str(png)])
    assert r.exit_code == 0, r.output
    assert "spots:" in r.output and "good" in r.output
    t = pd.read_parquet(out)
    assert list(t.columns) == spot_column_names() and len(t) > 13  # measured 20 on the crop
    assert t["two_theta"].isna().all()  # no calibration given
    assert dat.read_text().startswith("peak_X peak_Y")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_analyze_bad_inputs(tmp_path):
    r = runner.invoke(app, ["analyze", str(tmp_path / "missing.tif")])
    assert r.exit_code == 1 and "no such frame" in r.output
    bad = tmp_path / "line.npy"
    np.save(bad, np.zeros(40, np.uint16))
    r = runner.invoke(app, ["analyze", str(bad)])
    assert r.exit_code == 1 and "2D" in r.output
    r = runner.invoke(app, ["analyze", str(bad), "--method", "magic"])
    assert r.exit_code != 0 and "fit" in r.output
    flat = tmp_path / "flat.npy"
    np.save(flat, np.full((64, 64), 1000, np.uint16))
    r = runner.invoke(app, ["analyze", str(flat), "--out", str(tmp_path / "e.csv")])
    assert r.exit_code == 0 and "0 spots" in r.output
    assert list(pd.read_csv(tmp_path / "e.csv").columns) == spot_column_names()


def test_analyze_many_frames_tables_dat_and_cor(real_crops, tmp_path):
    """A folder + a glob: per-frame tables, .dat and .cor, one combined table; a bad file is one line."""
    import dataclasses

    import tifffile

    from laue_live.spots import read_lauetools_dat

    folder = tmp_path / "scan"
    folder.mkdir()
    crop = real_crops["AH12_CMT_r14_0200"]
    tifffile.imwrite(folder / "f0.tif", crop.frame)
    tifffile.imwrite(folder / "f1.tif", crop.frame[::-1].copy())
    (folder / "f2.tif").write_bytes((folder / "f0.tif").read_bytes()[:5000])  # truncated
    r0, c0 = crop.origin
    cal = dataclasses.replace(crop.calibration, xcen=crop.calibration.xcen - c0,
                              ycen=crop.calibration.ycen - r0, frame_shape=crop.frame.shape)
    det = tmp_path / "crop.det"
    det.write_text(", ".join(str(v) for v in (*cal.params, cal.pixel_size, *cal.frame_shape)) + "\n")
    out, out_dir = tmp_path / "all.parquet", tmp_path / "per_frame"
    r = runner.invoke(app, ["analyze", str(folder), "--calibration", str(det), "--out", str(out),
                            "--out-dir", str(out_dir), "--good-only"])
    assert r.exit_code == 1  # one frame failed; the others are written
    assert "f2.tif" in r.output and "truncated or corrupt" in r.output and "Traceback" not in r.output
    both = pd.read_parquet(out)
    assert list(both.columns) == spot_column_names() and set(both["frame"]) == {0, 1}
    assert both["two_theta"].between(40, 140).all() and both["chi"].between(-50, 50).all()
    summary = pd.read_csv(tmp_path / "all.frames.csv")
    assert summary["error"].fillna("").str.contains("truncated").tolist() == [False, False, True]
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["f0.cor", "f0.csv", "f0.dat", "f1.cor", "f1.csv", "f1.dat"]
    table = pd.read_csv(out_dir / "f0.csv")
    good = table[table["good"] & ~table["edge"] & ~table["masked"]]
    assert len(read_lauetools_dat(out_dir / "f0.dat")) == len(good) < len(table)  # --good-only
    cor = (out_dir / "f0.cor").read_text().splitlines()
    assert cor[0].split() == ["2theta", "chi", "X", "Y", "I"]
    rows = np.array([ln.split() for ln in cor[1:] if not ln.startswith("#")], float)
    assert len(rows) == len(good) and (np.diff(rows[:, 4]) <= 0).all()  # sorted by intensity
    assert "# CCDLabel     :   sCMOS" in cor and f"# xcen     :   {cal.xcen}" in cor


LT_PY = Path(__file__).resolve().parents[2] / ".lauetools-venv" / "bin" / "python"


@pytest.mark.skipif(not LT_PY.exists(), reason="LaueTools venv (.lauetools-venv) not present")
def test_lauetools_reads_our_cor_file(real_crops, tmp_path):
    import json
    import subprocess

    from laue_live.describe import analyze_frame
    from laue_live.spots import write_lauetools_cor

    crop = real_crops["Ge_blanc_0000"]
    t = analyze_frame(crop.frame, calibration=crop.calibration)
    path = write_lauetools_cor(t, tmp_path / "ge.cor", crop.calibration)
    code = ("import json, sys, warnings; warnings.filterwarnings('ignore'); "
            "import LaueTools.IOLaueTools as IO; "
            "r = IO.readfile_cor(sys.argv[1], output_CCDparamsdict=True); "
            "print(json.dumps({'data': r[0].tolist(), 'calib': r[-1]}))")
    out = subprocess.run([str(LT_PY), "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    assert out.returncode == 0 and line, out.stderr[-2000:]
    got = json.loads(line[-1])
    data = np.array(got["data"])  # 2theta, chi, X, Y, I per spot
    assert len(data) == len(t)
    assert got["calib"]["CCDLabel"] == "MARCCD165" and got["calib"]["dd"] == crop.calibration.dd
    ours = t.sort_values("peak_intensity", ascending=False)
    np.testing.assert_allclose(np.sort(data[:, 0]), np.sort(ours["two_theta"]), atol=1e-4)
