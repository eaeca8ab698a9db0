from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from laue_live._schema import spot_column_names
from laue_live.cli import app
from laue_live.cli._app import _register

_register()
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
