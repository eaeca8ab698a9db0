"""``laue-live sim write``: frames on disk with their ground truth."""

from __future__ import annotations

import json

import h5py
import numpy as np
import tifffile
from typer.testing import CliRunner

from laue_live.cli import app
from laue_live.sim import read_ground_truth

runner = CliRunner()


def test_write_tiff(tmp_path):
    out = tmp_path / "tif"
    res = runner.invoke(
        app, ["sim", "write", str(out), "--n", "2", "--format", "tiff", "--material", "Ge", "--seed", "3"]
    )
    assert res.exit_code == 0, res.output
    frames = sorted(out.glob("sim_*.tif"))
    assert [f.name for f in frames] == ["sim_0000.tif", "sim_0001.tif"]
    img = tifffile.imread(frames[1])
    assert img.dtype == np.uint16 and img.shape == (2018, 2016)
    truth = read_ground_truth(out / "truth.parquet")
    csv = read_ground_truth(out / "truth.csv")
    assert sorted(truth["frame"].unique()) == [0, 1] and len(csv) == len(truth)
    assert (csv["shape"] == truth["shape"]).all()
    np.testing.assert_allclose(csv["row"], truth["row"])
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["sample"]["material"] == "Ge" and meta["n_frames"] == 2


def test_write_hdf5_poly(tmp_path):
    out = tmp_path / "h5"
    res = runner.invoke(
        app,
        ["sim", "write", str(out), "--n", "2", "--format", "hdf5", "--sample", "poly", "--material", "Al"],
    )
    assert res.exit_code == 0, res.output
    with h5py.File(out / "sim.h5", "r") as f:
        assert f["/entry/data/data"].shape == (2, 2018, 2016)
    t = read_ground_truth(out / "sim.h5")
    assert len(t) == len(read_ground_truth(out / "truth.parquet")) > 0


def test_write_bad_options(tmp_path):
    res = runner.invoke(app, ["sim", "write", str(tmp_path), "--format", "png"])
    assert res.exit_code != 0 and "tiff or hdf5" in res.output
    res = runner.invoke(app, ["sim", "write", str(tmp_path), "--material", "Kryptonite"])
    assert res.exit_code != 0 and "unknown material" in res.output


def test_write_on_a_marccd_preset(tmp_path):
    """--detector MARCCD165: 2048 x 2048 frames, 0 outside the round window, ~10 ADU offset."""
    from laue_live.describe import analyze_frame

    out = tmp_path / "mar"
    res = runner.invoke(app, ["sim", "write", str(out), "--n", "1", "--material", "Ge",
                              "--detector", "marccd165"])
    assert res.exit_code == 0, res.output
    img = tifffile.imread(out / "sim_0000.tif")
    rr, cc = np.mgrid[:2048, :2048]
    outside = np.hypot(rr - 1023.5, cc - 1023.5) > 1024
    assert img.shape == (2048, 2048) and (img[outside] == 0).all() and (img[~outside] > 0).all()
    assert 10 <= np.median(img[~outside]) < 60
    t = analyze_frame(img)
    assert len(t) > 50 and (np.hypot(t["row"] - 1023.5, t["col"] - 1023.5) <= 1024).all()
    res = runner.invoke(app, ["sim", "write", str(out), "--detector", "pilatus"])
    assert res.exit_code != 0 and "unknown detector" in res.output
