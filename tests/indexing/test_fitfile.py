"""LaueTools .fit files: ours round-trip, LaueTools' are read, LaueTools reads ours (when its venv exists)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from laue_live import SettingsError
from laue_live.indexing import Indexer, read_fit, write_fit

REPO = Path(__file__).resolve().parents[2]
LT_PY = REPO / ".lauetools-venv" / "bin" / "python"


@pytest.fixture(scope="module")
def si_result(real_frames):
    f = real_frames["Si"]
    return f, Indexer("Si", f.calibration).index(f.spots)


def test_reads_lauetools_fit_files(real_frames):
    si, ge = real_frames["Si"].fit, real_frames["Ge"].fit
    assert (si.material, len(si.spots), si.mean_deviation_px) == ("Si", 71, 0.244)
    assert (ge.material, len(ge.spots), ge.mean_deviation_px) == ("Ge", 95, 0.191)
    assert np.allclose(si.U @ si.U.T, np.eye(3), atol=1e-6)
    assert si.B0 == pytest.approx(np.eye(3) / 5.4309, abs=1e-7)
    assert ge.calibration().pixel_size == 0.079142 and ge.calibration().frame_shape == (2048, 2048)
    assert (si.spots["row"] == si.spots["Yexp"] - 1).all()


def test_round_trip(si_result, tmp_path):
    f, res = si_result
    g = res.grains[0]
    path = write_fit(tmp_path / "si.fit", res.grains, f.calibration, "AH12_CMT_r14_0200_LT_0.dat")
    back = read_fit(path)
    assert len(back) == 1
    b = back[0]
    assert b.material == "Si" and len(b.spots) == g.n_matched
    assert b.mean_deviation_px == pytest.approx(g.deviation_px, abs=1e-3)
    assert np.abs(b.UBB0 - g.UB).max() < 1e-7
    assert np.abs(b.devstrain - g.strain).max() < 1e-5  # cubic: LaueTools' direct frame is ours
    assert (b.spots[["h", "k", "l"]].to_numpy() == g.spots[["h", "k", "l"]].to_numpy()).all()
    assert np.abs(b.spots["row"].to_numpy() - g.spots["row"].to_numpy()).max() < 1e-5
    assert b.calibration() == f.calibration


def test_two_grains_in_one_file(si_result, tmp_path):
    f, res = si_result
    g2 = res.grains[0]
    path = write_fit(tmp_path / "two.fit", [res.grains[0], g2], f.calibration)
    assert len(read_fit(path)) == 2


def test_bad_fit_files(tmp_path):
    with pytest.raises(SettingsError):
        read_fit(tmp_path / "missing.fit")
    p = tmp_path / "x.fit"
    p.write_text("hello\n")
    with pytest.raises(SettingsError, match="not a LaueTools"):
        read_fit(p)
    p.write_text("#Number of indexed spots: 3\n#spot_index h k l\n1 2 3\n")
    with pytest.raises(SettingsError, match="malformed"):
        read_fit(p)


@pytest.mark.skipif(not LT_PY.exists(), reason="LaueTools venv (.lauetools-venv) not present")
def test_lauetools_reads_our_fit_file(si_result, tmp_path):
    f, res = si_result
    path = write_fit(tmp_path / "si.fit", res.grains, f.calibration)
    script = ("import json, sys, numpy as np; import LaueTools.IOLaueTools as IO; "
              "r = IO.readfitfile_multigrains(sys.argv[1], readmore=True); "
              "print(json.dumps({'n': [int(v) for v in r[1]], 'UB': np.asarray(r[3]).tolist()}))")
    out = subprocess.run([str(LT_PY), "-c", script, str(path)], capture_output=True, text=True, timeout=120,
                         check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    ub = np.asarray(got["UB"]).reshape(3, 3)
    g = res.grains[0]
    assert got["n"] == [g.n_matched]
    assert np.abs(ub @ (np.eye(3) / 5.4309) - g.UB).max() < 1e-6
