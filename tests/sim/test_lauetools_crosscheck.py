"""Cross-check against LaueTools' own simulation (LaueTools 3.2.19 in .lauetools-venv).

``scripts/lauetools_env.sh`` makes the venv (``.ci/run`` does, so CI runs these); LaueTools runs
there in a subprocess and answers in JSON (the ``lauetools`` fixture). The geometry is the BM32
calibration (:class:`laue_live.geometry.Calibration` defaults, those of ``calib.det``) and the Si
orientation matrix of ``calib.det`` for nw1_0000.tif, written out here so that the test needs only
the repository.
"""

from __future__ import annotations

import numpy as np
import pytest

from laue_live.geometry import Calibration
from laue_live.sim import Material, get_material, random_rotation, simulate_spots

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
#: ``UB matrix`` of ../shared/data/bm32/calib.det (the Si substrate of nw1_0000.tif).
U_BM32_SI = np.array([[0.6504412, 0.502561, 0.569525],
                      [-0.0269536, 0.7646121, -0.6439269],
                      [-0.7590783, 0.4034858, 0.510881]])


@pytest.fixture(scope="module")
def bm32_calibration():
    """The BM32 calibration and Si orientation (as ``read_det(calib.det)`` gives them)."""
    cal = Calibration()
    assert (cal.dd, cal.xcen, cal.ycen, cal.xbet, cal.xgam) == (79.612, 977.81, 932.17, 0.477, 0.447)
    return cal, U_BM32_SI


def _orientation(material, u_det):
    seed = CASES[material]
    return u_det if seed is None else random_rotation(np.random.default_rng(seed))


@pytest.fixture(scope="module")
def lauetools_xy(bm32_calibration, lauetools):
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
    answer = lauetools(_SCRIPT, args)
    rows, cols = cal.frame_shape
    result = {}
    for m, res in zip(CASES, answer, strict=True):
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
    # float64 rounding of two implementations of one formula: measured 1.4e-12 px (Si), 1.2e-12 (Ge),
    # 9.4e-13 (Cu)
    assert d.min(axis=1).max() < 2.2e-12 and d.min(axis=0).max() < 2.2e-12, d.min(axis=1).max()


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
    nearest = d.min(axis=1)
    dropped = nearest > 0.01
    assert dropped.sum() == 2 and len(lt) == 139  # measured: the two |F|^2 ~ 1e-6 F(000)^2 spots
    assert nearest[~dropped].max() < 2.2e-12, nearest[~dropped].max()  # measured 1.0e-12 px
    extra = ours[d.min(axis=0) > 0.01]
    assert len(extra) > 0 and (extra["l"] % 2 == 1).all()
