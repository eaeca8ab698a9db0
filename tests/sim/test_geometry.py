"""Spot positions: LaueTools conventions checked against the real BM32 frame, materials, harmonics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from laue_live import SettingsError
from laue_live.geometry import BM32_CALIBRATION, Calibration, read_det
from laue_live.sim import MATERIALS, get_material, pixel_to_angles, random_rotation, simulate_spots


def test_read_det(bm32_calibration):
    cal, u = bm32_calibration
    assert cal == Calibration(79.612, 977.81, 932.17, 0.477, 0.447, 0.0734, (2018, 2016))
    assert u.shape == (3, 3)
    np.testing.assert_allclose(u.T @ u, np.eye(3), atol=1e-5)
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_read_det_without_matrix_and_bad_files(tmp_path):
    p = tmp_path / "a.det"
    p.write_text("70.0, 1024, 1024, 0.1, -0.2, 0.08, 2048, 2048\n")
    cal, u = read_det(p)
    assert u is None and cal.frame_shape == (2048, 2048) and cal.pixel_size == 0.08
    bad = tmp_path / "bad.det"
    bad.write_text("hello world\n")
    with pytest.raises(SettingsError, match="first line"):
        read_det(bad)
    with pytest.raises(SettingsError, match="cannot read"):
        read_det(tmp_path / "missing.det")
    with pytest.raises(SettingsError, match="dd must be > 0"):
        Calibration(dd=-1)


@pytest.mark.parametrize("frame", ["nw1_0000", "nw1_0001"])
def test_simulated_si_matches_real_peaks(bm32_calibration, bm32_lists_dir, frame):
    """The simulated Si spots fall within 1 px of LaueTools' peaks on the real frames."""
    cal, u = bm32_calibration
    spots = simulate_spots("Si", u, cal)
    assert 100 <= len(spots) <= 130
    peaks = pd.read_csv(bm32_lists_dir / f"peaks_GaN_Si_{frame}_box16.csv")
    real = np.column_stack([peaks["peak_Y"] - 1, peaks["peak_X"] - 1])  # 1-based X = col -> 0-based
    sim = spots[["row", "col"]].to_numpy()
    dist = np.linalg.norm(real[:, None, :] - sim[None, :, :], axis=2)
    nearest = dist.min(axis=1)
    matching = nearest < 5.0  # real peaks that are Si spots (the others are GaN nanowire spots)
    assert matching.sum() >= 70
    within = (nearest[matching] < 1.0).mean()
    assert within >= 0.8, f"only {within:.0%} of the matched Si peaks within 1 px"
    assert np.median(nearest[matching]) < 0.5
    # the brightest simulated spots are all seen on the real frame
    top = dist[:, :40].min(axis=0)
    assert (top < 1.0).mean() >= 0.8


def test_spots_on_frame_no_duplicates_and_angles(bm32_calibration):
    cal, u = bm32_calibration
    s = simulate_spots("Ge", u, cal)
    rows, cols = cal.frame_shape
    assert s["row"].between(-0.5, rows - 0.5).all() and s["col"].between(-0.5, cols - 0.5).all()
    # harmonics share a pixel: one spot per direction
    key = np.round(s[["row", "col"]].to_numpy(), 3)
    assert len(np.unique(key, axis=0)) == len(s)
    assert s["energy_keV"].between(5, 23).all()
    assert s["two_theta"].between(40, 140).all()
    tt, chi = pixel_to_angles(s["row"].to_numpy(), s["col"].to_numpy(), cal)
    np.testing.assert_allclose(tt, s["two_theta"], atol=1e-6)
    np.testing.assert_allclose(chi, s["chi"], atol=1e-6)
    assert s["intensity"].max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("name", "allowed", "forbidden"),
    [
        ("Si", [(1, 1, 1), (2, 2, 0), (4, 0, 0)], [(2, 0, 0), (2, 2, 2), (1, 1, 0)]),
        ("Cu", [(1, 1, 1), (2, 0, 0)], [(1, 1, 0), (2, 1, 0)]),
        ("Al2O3", [(1, 0, 4), (1, 1, 3), (0, 0, 6)], [(0, 0, 3), (1, 0, 0), (0, 0, 1)]),
        ("GaN", [(0, 0, 2), (1, 0, 0), (1, 0, 1), (1, 1, 0)], [(0, 0, 1), (1, 1, 1), (0, 0, 3)]),
    ],
)
def test_extinctions_from_structure_factor(name, allowed, forbidden):
    mat = get_material(name)
    s = np.full(len(allowed), 0.2)
    assert (mat.structure_factor_sq(np.array(allowed), s) > 1.0).all()
    s = np.full(len(forbidden), 0.2)
    assert (mat.structure_factor_sq(np.array(forbidden), s) < 1e-6).all()


def test_all_materials_give_patterns():
    rng = np.random.default_rng(0)
    u = random_rotation(rng)
    counts = {name: len(simulate_spots(name, u, BM32_CALIBRATION)) for name in MATERIALS}
    assert all(n > 10 for n in counts.values()), counts
    assert counts["Al2O3"] > counts["Cu"]  # big cell, many reflections


def test_strain_moves_spots_and_energy_band_filters(bm32_calibration):
    cal, u = bm32_calibration
    ref = simulate_spots("Si", u, cal)
    eps = np.diag([2e-3, -1e-3, -1e-3])
    strained = simulate_spots("Si", u, cal, strain=eps)
    merged = ref.merge(strained, on=["h", "k", "l"], suffixes=("", "_s"))
    shift = np.hypot(merged["row"] - merged["row_s"], merged["col"] - merged["col_s"])
    assert len(merged) > 80 and shift.max() > 0.3 and shift.median() < 5
    narrow = simulate_spots("Si", u, cal, energy_range=(8, 12))
    assert 0 < len(narrow) < len(ref)
    assert narrow["energy_keV"].between(8, 12).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"material": "Unobtainium"}, "unknown material"),
        ({"orientation": np.ones((3, 3))}, "rotation"),
        ({"orientation": np.eye(2)}, "3 x 3"),
        ({"energy_range": (23, 5)}, "energy_range"),
        ({"strain": np.ones((3, 3))}, "unphysical"),
        ({"strain": np.arange(9.0).reshape(3, 3) * 1e-4}, "symmetric"),
    ],
)
def test_bad_parameters(kwargs, match):
    args = {"material": "Si", "orientation": np.eye(3), "calibration": BM32_CALIBRATION} | kwargs
    with pytest.raises(SettingsError, match=match):
        simulate_spots(**args)
