"""The two real indexed frames of LaueTools' examples: our indexing beside LaueTools' (.fit, own run)."""

from __future__ import annotations

import numpy as np
import pytest

from laue_live.geometry import decompose_ub
from laue_live.indexing import Indexer, IndexerSettings, misorientation_deg
from tests.indexing.conftest import primitive, symmetry_op


@pytest.fixture(scope="module")
def indexed(real_frame):
    ix = Indexer(real_frame.material, real_frame.calibration)
    return ix, ix.index(real_frame.spots)


def test_one_grain_found_with_deviation_no_worse_than_lauetools(real_frame, indexed):
    _, res = indexed
    assert len(res.grains) == 1
    g = res.grains[0]
    # measured: Si 109 spots, 0.217 px (.fit: 71 spots, 0.244 px); Ge 95 spots, 0.191 px (.fit: 95, 0.191)
    assert g.n_matched >= len(real_frame.fit.spots)
    assert g.deviation_px <= real_frame.fit.mean_deviation_px + 0.0005
    assert g.deviation_px <= real_frame.lauetools["pixdev"] + 0.001  # LaueTools' own run: 0.2167, 0.1913
    assert g.matched_fraction > 0.5 and g.intensity_fraction > 0.9  # measured 0.96/0.95 (Si), 0.60/0.99 (Ge)


def test_same_orientation_and_strain_as_lauetools_own_refinement(real_frame, indexed):
    """LaueTools' IndexSpotsSet (strain refined) of the same spots: orientation and strain agree."""
    ix, res = indexed
    g = res.grains[0]
    u_lt, e_lt = decompose_ub(real_frame.lauetools_ub, ix.B)
    # measured: 5e-6 deg (Si), 2e-5 deg (Ge)
    assert misorientation_deg(g.U, u_lt, ix.rotations) < 1e-4
    _, r = symmetry_op(ix, g.U, u_lt)
    # measured: 1e-7 (both)
    assert np.abs(r @ g.strain @ r.T - e_lt).max() < 2e-6


def test_orientation_within_0_01_deg_of_the_fit_file(real_frame):
    """The .fit U comes from an orientation-only refinement (B = I): compare with ours, orientation-only."""
    ix = Indexer(real_frame.material, real_frame.calibration, settings=IndexerSettings(refine_strain=False))
    g = ix.index(real_frame.spots).grains[0]
    # measured: 0.0010 deg (Si), 0.0009 deg (Ge); the target is 0.01 deg
    assert misorientation_deg(g.U, real_frame.fit.U, ix.rotations) < 0.0015


def test_lauetools_spots_matched_with_the_same_hkl(real_frame, indexed):
    """>= 95% of the .fit's indexed spots are ours too, with the same hkl up to symmetry and harmonics."""
    ix, res = indexed
    g = res.grains[0]
    fit = real_frame.fit.spots
    m, _ = symmetry_op(ix, g.U, real_frame.fit.U)
    ref = primitive(fit[["h", "k", "l"]].to_numpy() @ m.T)
    ours_pos = g.spots[["row", "col"]].to_numpy()
    d = np.linalg.norm(fit[["row", "col"]].to_numpy()[:, None] - ours_pos[None], axis=2)
    found = d.min(axis=1) < 0.2  # same peak (the .fit rounds its positions, up to 0.11 px off the .dat)
    same = found & np.all(primitive(g.spots[["h", "k", "l"]].to_numpy()[d.argmin(axis=1)]) == ref, axis=1)
    # measured: 100% (71/71 Si, 95/95 Ge), and the exact harmonic label too
    assert same.mean() >= 0.99
    ours = g.spots[["h", "k", "l"]].to_numpy()[d.argmin(axis=1)]
    exact = np.all(ours == fit[["h", "k", "l"]].to_numpy() @ m.T, axis=1)
    assert exact[found].mean() >= 0.99


def test_lauetools_own_indexing_matches_ours_spot_for_spot(real_frame, indexed):
    ix, res = indexed
    g = res.grains[0]
    lt = np.array(real_frame.lauetools["spots"], dtype=float)
    u_lt, _ = decompose_ub(real_frame.lauetools_ub, ix.B)
    m, _ = symmetry_op(ix, g.U, u_lt)
    d = np.linalg.norm(lt[:, None, :2] - g.spots[["row", "col"]].to_numpy()[None], axis=2)
    j = d.argmin(axis=1)
    same = (d.min(axis=1) < 0.02) & np.all(g.spots[["h", "k", "l"]].to_numpy()[j] == lt[:, 2:] @ m.T, axis=1)
    assert same.mean() >= 0.99  # measured 109/109 (Si), 95/95 (Ge)


def test_per_spot_labels(real_frame, indexed):
    _, res = indexed
    s = res.spots
    assert len(s) == len(real_frame.spots) and s.index.equals(real_frame.spots.index)
    labelled = s[s["grain"] == 0]
    g = res.grains[0]
    assert set(g.spots.index) <= set(labelled.index)
    assert (labelled[["h", "k", "l"]].abs().sum(axis=1) > 0).all()
    assert (s.loc[s["grain"] < 0, ["h", "k", "l"]] == 0).all().all()
    table = res.grains_table()
    assert len(table) == 1 and table.loc[0, "n_matched"] == g.n_matched
