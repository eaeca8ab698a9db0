"""Simulated frames with known orientation and strain (the simulator's forward model as truth)."""

from __future__ import annotations

import numpy as np
import pytest

from laue_live.geometry import BM32_CALIBRATION, deviatoric, random_rotation
from laue_live.indexing import Indexer, index_spots, misorientation_deg
from laue_live.sim import simulated_spot_table

N_STRAINED = 8
# position noise of the spot tables: the exact fit's and the CNN's error on good spots (PosErr 0.044 px)
NOISE_PX = 0.05


@pytest.fixture(scope="module")
def si_indexer():
    return Indexer("Si", BM32_CALIBRATION)


def _strained_case(seed: int):
    rng = np.random.default_rng(seed)
    u = random_rotation(rng)
    e = rng.uniform(-2e-3, 2e-3, (3, 3))
    e = (e + e.T) / 2  # strain components up to 2e-3
    spots = simulated_spot_table([("Si", u, e)], BM32_CALIBRATION, rng, position_noise_px=NOISE_PX,
                                 n_spurious=20)
    return u, e, spots


def strain_error(indexer, grain, u_true, e_true) -> float:
    """Largest deviatoric-strain component error, in the truth's crystal frame."""
    traces = np.einsum("ij,nji->n", grain.U.T @ u_true, indexer.rotations)
    r = indexer.rotations[int(np.argmax(traces))]  # grain.U = u_true R
    return float(np.abs(r @ grain.strain @ r.T - deviatoric(e_true)).max())


def test_strained_single_grains(si_indexer):
    mis, err = [], []
    for seed in range(N_STRAINED):
        u, e, spots = _strained_case(seed)
        res = si_indexer.index(spots)
        assert len(res.grains) == 1, res.summary()
        g = res.grains[0]
        mis.append(misorientation_deg(g.U, u, si_indexer.rotations))
        err.append(strain_error(si_indexer, g, u, e))
        # every matched spot is a true spot of the grain with its true hkl (up to the symmetry op)
        assert (spots.loc[g.spots.index, "grain"] == 0).all()
    # measured (8 frames, 0.05 px noise): misorientation max 0.0037 deg, strain error max 5.2e-5,
    # median 2.5e-5
    # (0.1 px noise: 0.0075 deg, 1.04e-4, 5.1e-5; no noise: 2e-14 deg, 1.5e-6)
    assert max(mis) < 0.0056
    assert max(err) < 8e-5
    assert np.median(err) < 4e-5


def test_orientation_only_refinement():
    from laue_live.indexing import IndexerSettings

    ix = Indexer("Si", BM32_CALIBRATION, settings=IndexerSettings(refine_strain=False))
    rng = np.random.default_rng(9)
    u = random_rotation(rng)
    spots = simulated_spot_table([("Si", u, None)], BM32_CALIBRATION, rng, position_noise_px=NOISE_PX)
    g = ix.index(spots).grains[0]
    assert np.all(g.strain == 0)
    assert misorientation_deg(g.U, u, ix.rotations) < 0.003  # measured 0.0011 deg
    # a 2e-3 strain left unrefined moves spots by pixels: the fit is rejected or far worse than refined
    _, _, strained = _strained_case(0)
    res = ix.index(strained)
    assert not res.grains or res.grains[0].deviation_px > 0.5


def test_polycrystal_three_grains_per_frame(si_indexer):
    found = total = extra = 0
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        us = [random_rotation(rng) for _ in range(3)]
        spots = simulated_spot_table([("Si", u, None) for u in us], BM32_CALIBRATION, rng,
                                     position_noise_px=NOISE_PX, n_spurious=20)
        res = si_indexer.index(spots)
        hits = [any(misorientation_deg(g.U, u, si_indexer.rotations) < 0.02 for g in res.grains) for u in us]
        found += sum(hits)
        total += 3
        extra += len(res.grains) - sum(hits)
        for g in res.grains:  # a grain's spots are (almost all) its own
            truth = spots.loc[g.spots.index, "grain"].to_numpy()
            assert np.mean(truth == np.bincount(truth[truth >= 0]).argmax()) > 0.95
    # measured: 18/18 found, no extra grain (twin shadows are dropped)
    assert found / total >= 0.9
    assert extra == 0


def test_gan_grain():
    rng = np.random.default_rng(5)
    u = random_rotation(rng)
    spots = simulated_spot_table([("GaN", u, None)], BM32_CALIBRATION, rng, position_noise_px=NOISE_PX)
    grains = index_spots(spots, "GaN", BM32_CALIBRATION)
    assert len(grains) == 1
    from laue_live.geometry import get_material
    from laue_live.indexing import pattern_rotations

    _, rot = pattern_rotations(get_material("GaN"))
    assert misorientation_deg(grains[0].U, u, rot) < 0.01  # measured 0.002 deg


def test_broken_refinement_is_caught(si_indexer, monkeypatch):
    """A refinement that does nothing leaves large deviations: the strain bound bites."""
    import laue_live.indexing._indexer as mod

    monkeypatch.setattr(mod, "refine_grain", lambda u, strain, *a, **k: (u, strain))
    u, e, spots = _strained_case(1)
    res = si_indexer.index(spots)
    errs = [strain_error(si_indexer, g, u, e) for g in res.grains]
    assert not errs or max(errs) > 1e-4


def test_two_materials_in_one_frame():
    """A Si substrate and a GaN grain on it: Si first, then GaN on the spots Si left."""
    from laue_live.indexing import index_materials

    rng = np.random.default_rng(12)
    u_si, u_gan = random_rotation(rng), random_rotation(rng)
    spots = simulated_spot_table([("Si", u_si, None), ("GaN", u_gan, None)], BM32_CALIBRATION, rng,
                                 position_noise_px=NOISE_PX, n_spurious=10)
    res = index_materials([Indexer("Si", BM32_CALIBRATION), Indexer("GaN", BM32_CALIBRATION)], spots)
    assert [g.material for g in res.grains] == ["Si", "GaN"]
    assert [g.index for g in res.grains] == [0, 1]
    for g, truth in zip(res.grains, (0, 1), strict=True):
        assert (spots.loc[g.spots.index, "grain"] == truth).mean() > 0.95
        assert (res.spots.loc[g.spots.index, "grain"] == g.index).all()


def test_real_substrate_and_nanowires(bm32_lists_dir):
    """nw1_0001 (BM32): the Si substrate and two GaN nanowire grains from LaueTools' peak list."""
    import pandas as pd

    from laue_live.geometry import read_det
    from laue_live.indexing import index_materials

    df = pd.read_csv(bm32_lists_dir / "peaks_GaN_Si_nw1_0001_box16.csv")
    spots = pd.DataFrame({"row": df["peak_Y"] - 1, "col": df["peak_X"] - 1, "intensity": df["peak_I"]})
    cal, _ = read_det(bm32_lists_dir / "calib.det")
    res = index_materials([Indexer("Si", cal), Indexer("GaN", cal)], spots)
    # measured: Si 83 spots 0.338 px, GaN 63 spots 0.148 px and 49 spots 0.309 px; 195 of 196 indexed
    assert [g.material for g in res.grains] == ["Si", "GaN", "GaN"]
    assert (res.spots["grain"] >= 0).sum() >= 185
    assert all(g.deviation_px < 0.5 for g in res.grains)
