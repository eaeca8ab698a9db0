"""Sample models: grain maps, strain gradients, bending; determinism."""

from __future__ import annotations

import numpy as np
import pytest

from laue_live import SettingsError
from laue_live.sim import BentCrystal, Polycrystal, SingleCrystal


def test_polycrystal_boundaries_overlap_patterns():
    s = Polycrystal("Cu", n_grains=6, extent=((0, 20), (0, 20)), beam_size=1.0, seed=2)
    xs = np.linspace(0, 20, 41)
    ids = s.grain_id_at(xs, np.full_like(xs, 10.0))
    change = np.flatnonzero(np.diff(ids))[0]
    xb = 0.5 * (xs[change] + xs[change + 1])  # on a boundary: two grains under the beam
    grains = s.grains_at(xb, 10.0)
    assert len(grains) >= 2 and sum(w for _, _, w in grains) == pytest.approx(1.0)
    spots = s.spots_at(xb, 10.0)
    assert spots["grain"].nunique() >= 2
    inside = s.spots_at(*s.seeds[0])
    assert inside["grain"].nunique() == 1
    f = s.frame_at(xb, 10.0)
    assert f.truth["grain"].nunique() >= 2
    assert s.describe()["n_grains"] == 6


def test_strain_gradient_moves_spots_across_the_sample():
    grad = np.zeros((2, 3, 3))
    grad[0] = np.diag([1e-4, -0.5e-4, -0.5e-4])  # per micrometre along x
    s = SingleCrystal("Si", seed=1, strain_gradient=grad)
    a, b = s.spots_at(0.0, 0.0), s.spots_at(20.0, 0.0)
    m = a.merge(b, on=["h", "k", "l"], suffixes=("", "_b"))
    assert np.hypot(m["row"] - m["row_b"], m["col"] - m["col_b"]).max() > 0.5
    np.testing.assert_allclose(s.strain_at(10, 0), 10 * grad[0])


def test_bent_crystal_rotates_and_smears():
    s = BentCrystal("Ge", seed=3, curvature=0.05, beam_size=2.0, n_sub=3)
    assert len(s.grains_at(0, 0)) == 3
    a = s.spots_at(0.0, 0.0)
    b = s.spots_at(10.0, 0.0)
    ka = a[a["grain"] == 1].set_index(["h", "k", "l"])
    kb = b[b["grain"] == 1].set_index(["h", "k", "l"])
    common = ka.index.intersection(kb.index)
    shift = np.hypot(
        ka.loc[common, "row"] - kb.loc[common, "row"], ka.loc[common, "col"] - kb.loc[common, "col"]
    )
    assert shift.median() > 5  # 0.5 deg of lattice rotation moves spots by many pixels


def test_samples_are_deterministic_given_a_seed():
    a = Polycrystal("Al", n_grains=4, seed=7).frame_at(3.0, 4.0)
    b = Polycrystal("Al", n_grains=4, seed=7).frame_at(3.0, 4.0)
    c = Polycrystal("Al", n_grains=4, seed=8).frame_at(3.0, 4.0)
    assert np.array_equal(a.frame, b.frame)
    assert not np.array_equal(a.frame, c.frame)


def test_bad_sample_parameters():
    with pytest.raises(SettingsError):
        Polycrystal("Cu", n_grains=0)
    with pytest.raises(SettingsError):
        SingleCrystal("Si", seed=-1)
    with pytest.raises(SettingsError):
        SingleCrystal("Si", strain_gradient=np.zeros((3, 3)))
    with pytest.raises(SettingsError):
        BentCrystal("Si", beam_size=0)
    with pytest.raises(SettingsError, match="finite"):
        SingleCrystal("Si").spots_at(np.nan, 0)


def test_grains_can_have_their_own_spot_quality():
    s = Polycrystal("Cu", n_grains=4, seed=5, grain_shape_mixes=("clean", "deformed"))
    mixes = [g.shape_mix for g in s.grains]
    assert set(mixes) <= {"clean", "deformed"} and s.describe()["grain_shape_mixes"] == mixes
    gid = mixes.index("deformed")
    f = s.frame_at(*s.seeds[gid])
    assert set(f.truth["shape"]) <= {"gaussian", "split", "asymmetric", "elongated", "pseudo_voigt"}
    assert (f.truth["shape_mix"] == "deformed").all()
    with pytest.raises(SettingsError, match="unknown shape mix"):
        Polycrystal("Cu", grain_shape_mixes=("shiny",))
