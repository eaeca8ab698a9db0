"""Cross-check against LaueTools' own simulation (skipped unless its separate venv exists).

``../shared/tools/lauetools_env.sh`` makes ``.lauetools-venv``; LaueTools runs there in a subprocess
and answers in JSON.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from laue_live.sim import Material, get_material, random_rotation, simulate_spots

REPO = Path(__file__).resolve().parents[2]
LT_PY = REPO / ".lauetools-venv" / "bin" / "python"

_SCRIPT = """
import json, sys
import numpy as np
from LaueTools import lauecore
out = []
for args in json.loads(sys.stdin.read()):
    grain = [np.eye(3), "dilat", np.array(args["U"]), args["material"]]
    res = lauecore.SimulateLaue_full_np(grain, 5, 23, args["calib"], pixelsize=args["pixel_size"],
                                       dim=tuple(args["dim"]), removeharmonics=1, detectordiameter=300.0)
    out.append({"X": np.asarray(res[3]).tolist(), "Y": np.asarray(res[4]).tolist()})
print(json.dumps(out))
"""
CASES = {"Si": None, "Ge": 3, "Cu": 4, "Al2O3": 5}

pytestmark = pytest.mark.skipif(not LT_PY.exists(), reason="LaueTools venv (.lauetools-venv) not present")


def _orientation(material, u_det):
    seed = CASES[material]
    return u_det if seed is None else random_rotation(np.random.default_rng(seed))


@pytest.fixture(scope="module")
def lauetools_xy(bm32_calibration):
    """LaueTools' spot positions (0-based row, col, on the frame) for every case, one subprocess."""
    cal, u_det = bm32_calibration
    args = [
        {
            "U": _orientation(m, u_det).tolist(),
            "material": m,
            "calib": cal.params,
            "pixel_size": cal.pixel_size,
            "dim": list(cal.frame_shape),
        }
        for m in CASES
    ]
    out = subprocess.run(
        [str(LT_PY), "-c", _SCRIPT],
        input=json.dumps(args),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rows, cols = cal.frame_shape
    result = {}
    for m, res in zip(CASES, json.loads(out.stdout.strip().splitlines()[-1]), strict=True):
        xy = np.column_stack([res["Y"], res["X"]]) - 1.0  # LaueTools X = col + 1, Y = row + 1
        on = (xy[:, 0] >= -0.5) & (xy[:, 0] < rows - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < cols - 0.5)
        result[m] = xy[on]
    return result


@pytest.mark.parametrize("material", ["Si", "Ge", "Cu"])
def test_cubic_patterns_equal_lauetools(bm32_calibration, lauetools_xy, material):
    cal, u_det = bm32_calibration
    u = _orientation(material, u_det)
    lt = lauetools_xy[material]
    ours = simulate_spots(material, u, cal)[["row", "col"]].to_numpy()
    assert len(lt) == len(ours)
    d = np.linalg.norm(lt[:, None] - ours[None], axis=2)
    assert d.min(axis=1).max() < 0.01 and d.min(axis=0).max() < 0.01


def test_al2o3_positions_equal_lauetools(bm32_calibration, lauetools_xy):
    """Same lattice as LaueTools: every LaueTools spot is ours; our extra spots have odd l.

    LaueTools' "Al2O3" rule keeps only even l; R-3c forbids odd l only when h, k or i is zero, and the
    structure factor keeps e.g. (1 1 3). Two LaueTools spots with |F|^2 ~ 1e-6 F(000)^2 are dropped by us.
    """
    cal, u_det = bm32_calibration
    ref = get_material("Al2O3")
    lt_lattice = Material("Al2O3_LT", (4.785, 4.785, 12.991, 90, 90, 120), ref.atoms, ref.debye_waller)
    u = _orientation("Al2O3", u_det)
    lt = lauetools_xy["Al2O3"]
    ours = simulate_spots(lt_lattice, u, cal)
    d = np.linalg.norm(lt[:, None] - ours[["row", "col"]].to_numpy()[None], axis=2)
    assert (d.min(axis=1) < 0.01).mean() > 0.97
    extra = ours[d.min(axis=0) > 0.01]
    assert len(extra) > 0 and (extra["l"] % 2 == 1).all()
