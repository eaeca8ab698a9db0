"""Materials from lattice + space group and from CIF files; pattern symmetry; strain algebra."""

from __future__ import annotations

import numpy as np
import pytest

from laue_live import SettingsError
from laue_live.geometry import (
    BM32_CALIBRATION,
    MATERIALS,
    Material,
    decompose_ub,
    deviatoric,
    random_rotation,
    read_cif,
    simulate_spots,
    strained_ub,
)
from laue_live.indexing import pattern_rotations
from tests.indexing.conftest import DATA

SI_LATTICE = (5.4309, 5.4309, 5.4309, 90, 90, 90)
HKL = [[1, 1, 1], [2, 0, 0], [2, 2, 0], [2, 2, 2], [4, 0, 0], [3, 1, 1], [1, 0, 0], [4, 2, 0]]


def test_builtin_materials_have_their_space_group_and_extinctions():
    assert MATERIALS["Si"].space_group == "Fd-3m"
    # diamond: 111, 220, 400, 311 allowed; 200, 222, 100, 420 forbidden
    assert MATERIALS["Si"].allowed(HKL).tolist() == [True, False, True, False, True, True, False, False]
    # fcc: unmixed parity
    assert MATERIALS["Cu"].allowed(HKL).tolist() == [True, True, True, True, True, True, False, True]


def test_from_space_group_with_atoms_equals_the_builtin():
    si = Material.from_space_group("Si2", SI_LATTICE, "Fd-3m", atoms=[("Si", (0, 0, 0))])
    assert len(si.atoms[0][1]) == 8
    hkl = np.stack(np.meshgrid(*[np.arange(-6, 7)] * 3, indexing="ij"), -1).reshape(-1, 3)
    assert np.array_equal(si.allowed(hkl), MATERIALS["Si"].allowed(hkl))


def test_from_space_group_without_atoms_uses_systematic_absences():
    m = Material.from_space_group("SiSG", SI_LATTICE, "Fd-3m")
    # 222 is forbidden by the atoms on 8a, not by the space group
    assert m.allowed(HKL).tolist() == [True, False, True, True, True, True, False, False]
    u = random_rotation(np.random.default_rng(0))
    assert len(simulate_spots(m, u, BM32_CALIBRATION)) >= len(simulate_spots("Si", u, BM32_CALIBRATION))


def test_cif_reader():
    m = read_cif(DATA / "Si_diamond.cif")
    assert m.name == "Si" and m.lattice == pytest.approx(SI_LATTICE)
    assert m.space_group.startswith("F d -3 m")
    assert np.array_equal(m.allowed(HKL), MATERIALS["Si"].allowed(HKL))


@pytest.mark.parametrize(("bad", "message"), [
    (lambda: Material.from_space_group("x", SI_LATTICE, "Xyz"), "unknown space group"),
    (lambda: Material.from_space_group("x", (3, 3, 5, 90, 90, 90), "Fd-3m"), "does not fit"),
    (lambda: Material.from_space_group("x", (1, 2), "P1"), "6 finite numbers"),
    (lambda: Material("x", SI_LATTICE, ()), "atoms or its space group"),
])
def test_bad_materials(bad, message):
    with pytest.raises(SettingsError, match=message):
        bad()


def test_bad_cif(tmp_path):
    with pytest.raises(SettingsError):
        read_cif(tmp_path / "missing.cif")
    p = tmp_path / "nocell.cif"
    p.write_text("data_x\n_chemical_formula_sum 'Si'\n")
    with pytest.raises(SettingsError, match="unit cell"):
        read_cif(p)


@pytest.mark.parametrize(("name", "n"), [("Si", 24), ("Cu", 24), ("GaN", 12), ("Al2O3", 6)])
def test_pattern_rotations(name, n):
    ops, rot = pattern_rotations(MATERIALS[name])
    assert len(ops) == n and np.array_equal(ops[0], np.eye(3))
    assert np.allclose(np.einsum("nij,nkj->nik", rot, rot), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(rot), 1.0)


def test_strained_ub_round_trip():
    rng = np.random.default_rng(2)
    u = random_rotation(rng)
    e = rng.uniform(-2e-3, 2e-3, (3, 3))
    e = (e + e.T) / 2
    b = MATERIALS["GaN"].B
    u2, e2 = decompose_ub(1.7 * strained_ub(u, e, b), b)
    assert np.abs(u2 - u).max() < 1e-12
    assert np.abs(e2 - deviatoric(e)).max() < 1e-6  # second order in the strain
