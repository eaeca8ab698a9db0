"""``laue-live index`` on spot files and a frame, and its answers to bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from laue_live.cli import app
from laue_live.indexing import read_fit
from tests.indexing.conftest import DATA

runner = CliRunner()


def test_cor_file_carries_its_calibration(tmp_path):
    out, spots = tmp_path / "grains.csv", tmp_path / "spots.parquet"
    r = runner.invoke(app, ["index", str(DATA / "Ge_blanc_0000_LT_5.cor"), "-m", "Ge", "-o", str(out),
                            "--spots-out", str(spots), "--fit-dir", str(tmp_path / "fit")])
    assert r.exit_code == 0, r.output
    assert "1 grain(s), 95 of 97 spots indexed" in r.output
    grains = pd.read_csv(out)
    assert len(grains) == 1 and grains.loc[0, "n_matched"] == 95 and grains.loc[0, "file"].endswith(".cor")
    assert grains.loc[0, "deviation_px"] < 0.2
    labelled = pd.read_parquet(spots)
    assert (labelled["grain"] == 0).sum() == 95
    assert len(read_fit(tmp_path / "fit" / "Ge_blanc_0000_LT_5.fit")[0].spots) == 95


def test_dat_with_det_and_orientation_only():
    r = runner.invoke(app, ["index", str(DATA / "AH12_CMT_r14_0200_LT_0.dat"), "-m", "Si",
                            "-d", str(DATA / "testcalib.det"), "--orientation-only"])
    assert r.exit_code == 0, r.output
    assert "1 grain(s)" in r.output and "xx 0.000 yy 0.000" in r.output


def test_csv_table_and_material_from_lattice(tmp_path):
    from laue_live.spots import read_lauetools_dat

    t = read_lauetools_dat(DATA / "Ge_blanc_0000_LT_5.dat")[["row", "col", "peak_Itot"]]
    t.to_csv(tmp_path / "t.csv", index=False)
    r = runner.invoke(app, ["index", str(tmp_path / "t.csv"), "--lattice", "5.6575 5.6575 5.6575 90 90 90",
                            "--space-group", "Fd-3m", "-d", str(DATA / "calibGe111.det")])
    assert r.exit_code == 0, r.output
    assert "1 grain(s)" in r.output


def test_wrong_setup_says_no_grain():
    r = runner.invoke(app, ["index", str(DATA / "AH12_CMT_r14_0200_LT_0.dat"), "-m", "Ge",
                            "-d", str(DATA / "calibGe111.det")])
    assert r.exit_code == 0
    assert "no grain found" in r.output and "best candidate" in r.output


@pytest.mark.parametrize(("args", "message"), [
    (["nothere.dat", "-m", "Si", "-d", "x.det"], "error: cannot read calibration file"),
    (["{dat}", "-m", "Unobtainium", "-d", "{det}"], "unknown material"),
    (["{dat}", "-m", "Si"], "carries no calibration"),
    (["{dat}", "-d", "{det}"], "give the material"),
    (["{dat}", "--cif", "{det}", "-d", "{det}"], "cannot read CIF file"),
    (["{dat}", "-m", "Si", "-d", "{det}", "-o", "g.txt"], "must end in .csv or .parquet"),
    (["{det}", "-m", "Si", "-d", "{det}"], "use a spot file"),
    (["{missing}", "-m", "Si", "-d", "{det}"], "no such spot file"),
])
def test_bad_input_one_line(args, message, tmp_path):
    fill = {"dat": str(DATA / "AH12_CMT_r14_0200_LT_0.dat"), "det": str(DATA / "testcalib.det"),
            "missing": str(tmp_path / "none.dat")}
    r = runner.invoke(app, ["index", *[a.format(**fill) for a in args]])
    assert r.exit_code != 0
    assert message in r.output
    assert "Traceback" not in r.output


def test_frame_input(tmp_path):
    """A rendered frame: peak search + fit + index, against the simulator's truth."""
    from laue_live.geometry import BM32_CALIBRATION, get_material, random_rotation
    from laue_live.indexing import misorientation_deg, pattern_rotations
    from laue_live.sim import RenderConfig, render_frame, simulate_spots

    u = random_rotation(np.random.default_rng(4))
    frame = render_frame(simulate_spots("Si", u, BM32_CALIBRATION), RenderConfig(), rng=4).frame
    np.save(tmp_path / "f.npy", frame)
    det = tmp_path / "calib.det"
    c = BM32_CALIBRATION
    det.write_text(f"{c.dd}, {c.xcen}, {c.ycen}, {c.xbet}, {c.xgam}, {c.pixel_size}, 2018, 2016\n")
    out = tmp_path / "g.csv"
    r = runner.invoke(app, ["index", str(tmp_path / "f.npy"), "-m", "Si", "-d", str(det), "-o", str(out)])
    assert r.exit_code == 0, r.output
    g = pd.read_csv(out)
    assert len(g) == 1
    found = g[[f"u{i}{j}" for i in (1, 2, 3) for j in (1, 2, 3)]].to_numpy().reshape(3, 3)
    _, rot = pattern_rotations(get_material("Si"))
    assert misorientation_deg(found, u, rot) < 0.02
