from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from laue_live._rules import (
    area_from_star,
    area_star,
    is_good_spot,
    pos_from_star,
    pos_star,
    sim0_from_fit,
    sim_from_sim0,
)
from laue_live._schema import spot_column_names
from laue_live.describe import characterize
from laue_live.spots import DESCRIPTOR_COLUMNS, fit_gaussians, gaussian_model

from .synth import gauss, random_gaussian_spots


def test_pos_star_and_inverse():
    d = np.linspace(-1.09, 1.09, 23)
    assert np.allclose(pos_from_star(pos_star(d)), d)
    assert pos_star(-1.1) == 0 and pos_star(1.1) == 1 and pos_star(0.0) == 0.5
    assert (pos_star(np.array([-5.0, -1.2])) == 0).all() and (pos_star(np.array([1.2, 16])) == 1).all()
    assert np.isclose(pos_star(0.55), (0.55 + 1.1) / 2.2)


def test_area_star_and_inverse():
    a = np.linspace(0.1, 5 * np.pi - 0.01, 17)
    assert np.allclose(area_from_star(area_star(a)), a)
    assert area_star(5 * np.pi) == 1 and area_star(100.0) == 1 and area_star(0.0) == 0
    assert np.isclose(area_star(np.pi), 0.2)


def test_sim_from_sim0():
    s0 = np.array([-0.3, 0.0, 0.85, 0.86, 0.925, 1.0, 1.0 + 1e-7, np.nan])
    sim = sim_from_sim0(s0)
    assert np.allclose(sim, [0, 0, 0, (0.86 - 0.85) / 0.15, 0.5, 1, 1, 0])


def test_good_rule():
    assert is_good_spot(0.51, 0.0, 0.9)
    assert not is_good_spot(0.5, 0.0, 0.0)  # Sim must exceed 0.5
    assert not is_good_spot(0.9, 0.7, 0.7)  # |d| = 0.99 > 0.9
    assert is_good_spot(0.9, 0.6, 0.6)  # |d| = 0.85
    g = is_good_spot(np.array([0.9, 0.9, np.nan]), np.array([0.0, np.nan, 0.0]), np.zeros(3))
    assert g.tolist() == [True, False, False]


def test_characterize_columns_and_values():
    cut, truth = random_gaussian_spots(20, seed=2)
    df = characterize(cut)
    assert list(df.columns) == list(DESCRIPTOR_COLUMNS)
    assert set(DESCRIPTOR_COLUMNS) <= set(spot_column_names())
    assert len(df) == 20 and df.attrs["sim_variant"] == "background"
    assert df["converged"].all()
    area = np.minimum(np.pi * df["sigma_row"] * df["sigma_col"], 25 * np.pi)
    assert np.allclose(df["area"], area, rtol=3.6e-7, atol=0)  # float32 rounding; measured 2.4e-7
    assert np.allclose(df["asp"], np.minimum(df["sigma_row"], df["sigma_col"])
                       / np.maximum(df["sigma_row"], df["sigma_col"]), rtol=3.6e-7, atol=0)
    assert (df["asp"] <= 1).all() and (df["sim"].between(0, 1)).all()
    # Poisson-noised Gaussians: background-subtracted Sim0 close to 1 for bright ones
    bright = truth[:, 0] / (2 * np.pi * truth[:, 4] * truth[:, 5]) > 5000
    assert bright.sum() == 10 and (df["sim0"][bright] > 0.999).all()  # measured min 0.99932
    np.testing.assert_array_equal(df["peak_intensity"], cut[:, 16, 16])
    assert np.allclose(df["intensity"], (cut - df["background"].to_numpy()[:, None, None]).sum(axis=(1, 2)),
                       rtol=5.4e-6, atol=0)  # the float32 cutout sum; measured 3.6e-6
    assert not df["saturated"].any()


def test_sim_variants_differ_on_pedestal():
    rng = np.random.default_rng(0)
    # a streak: poorly described by an axis-aligned Gaussian
    rr, cc = np.meshgrid(np.arange(32) - 16, np.arange(32) - 16, indexing="ij")
    streak = 1000 + 500 * np.exp(-0.5 * ((rr - cc) / 0.8) ** 2) * (np.abs(rr + cc) < 20)
    cut = rng.poisson(np.stack([streak, gauss(30000, 1000, 0.2, -0.3, 1.2, 1.0)])).astype(np.float32)
    bg = characterize(cut, sim_variant="background")
    raw = characterize(cut, sim_variant="raw")
    assert raw.attrs["sim_variant"] == "raw"
    assert (raw["sim0"] > 0.95).all()  # the pedestal dominates the raw cosine
    assert (raw["sim0"] > bg["sim0"]).all()
    assert bg["sim0"][0] < 0.85 < bg["sim0"][1]
    assert bg["sim"][0] == 0


def test_saturated_flag_and_reporting_clips():
    cut = np.full((2, 32, 32), 1000.0, np.float32)
    cut[0] = gauss(2e6, 1000, 0, 0, 1.0, 1.0)
    cut[0] = np.minimum(cut[0], 65535)
    cut[1] = gauss(5e5, 1000, 0.3, 0.1, 9.0, 9.0)  # wider than 25 pi / pi = 5 x 5 px^2
    df = characterize(cut)
    assert df["saturated"].tolist() == [True, False]
    assert df["area"][1] == pytest.approx(25 * np.pi, rel=1e-6)


def test_characterize_method_errors():
    cut, _ = random_gaussian_spots(2)
    with pytest.raises(ValueError, match="unknown method"):
        characterize(cut, method="magic")
    with pytest.raises(ValueError, match="sim_variant"):
        characterize(cut, sim_variant="cosine")
    with pytest.raises(TypeError, match="unexpected"):
        characterize(cut, bogus=1)
    empty = characterize(np.zeros((0, 32, 32), np.float32))
    assert isinstance(empty, pd.DataFrame) and len(empty) == 0
    assert list(empty.columns) == list(DESCRIPTOR_COLUMNS)


@pytest.mark.parametrize("variant", ["background", "raw"])
def test_separable_sim0_equals_model_image_formula(variant):
    from .synth import non_gaussian_spots

    cut = np.concatenate([random_gaussian_spots(20, seed=4)[0], non_gaussian_spots(3, seed=2)[0]])
    df = characterize(cut, sim_variant=variant)
    fit = fit_gaussians(cut)
    ref = sim0_from_fit(cut.astype(np.float64), gaussian_model(fit), fit.background, variant)
    # float32 rounding of the table: measured 2.9e-8 in Sim0, 5.7e-8 relative in intensity
    assert np.allclose(df["sim0"], ref, rtol=0, atol=4.5e-8)
    assert np.allclose(df["intensity"], (cut - fit.background[:, None, None]).sum(axis=(1, 2)), rtol=9e-8,
                       atol=0)


def test_descriptors_are_the_fit_and_find_the_truth():
    """Every descriptor column is the fit's parameter (to float32), and the positions find the truth.

    60 Poisson-noised Gaussians (heights 200-60000 ADU, sigmas 0.5-6 px, offsets up to 2 px): a bias
    or a swap anywhere between the fit and the table fails here, not only in a frame-level test.
    """
    cut, truth = random_gaussian_spots(60, seed=3)
    df = characterize(cut)
    fit = fit_gaussians(cut)
    f32 = np.float32
    for col, val in (("d_row", fit.mu_row), ("d_col", fit.mu_col), ("sigma_row", fit.sigma_row),
                     ("sigma_col", fit.sigma_col), ("amplitude", fit.amplitude),
                     ("background", fit.background)):
        np.testing.assert_array_equal(df[col].to_numpy(), val.astype(f32), err_msg=col)
    np.testing.assert_array_equal(df["converged"].to_numpy(), fit.converged)
    np.testing.assert_array_equal(df["asp"].to_numpy(), (np.fmin(fit.sigma_row, fit.sigma_col)
                                                         / np.fmax(fit.sigma_row, fit.sigma_col)).astype(f32))
    area = np.minimum(np.pi * fit.sigma_row * fit.sigma_col, 25 * np.pi)  # the reporting clip
    np.testing.assert_array_equal(df["area"].to_numpy(), area.astype(f32))
    sim0 = sim0_from_fit(cut.astype(np.float64), gaussian_model(fit), fit.background)
    # float32 rounding of the table: measured 3.0e-8 in Sim0 and in Sim
    np.testing.assert_allclose(df["sim0"].to_numpy(), sim0, rtol=0, atol=4.5e-8)
    np.testing.assert_allclose(df["sim"].to_numpy(), sim_from_sim0(sim0), rtol=0, atol=4.5e-8)
    assert 0 < (df["sim"] == 0).sum() < len(df) and (df["sim"] > 0.9).sum() > 10  # both sides of the cut
    e_row, e_col = df["d_row"].to_numpy() - truth[:, 2], df["d_col"].to_numpy() - truth[:, 3]
    msg = (f"d - truth: median |e| {np.median(np.abs(e_row)):.4f} (row) {np.median(np.abs(e_col)):.4f} "
           f"(col), mean {e_row.mean():+.4f} {e_col.mean():+.4f} px")
    # measured: median |e| 0.0065 (row), 0.0071 (col); mean -0.0039, -0.0056 px
    assert np.median(np.abs(e_row)) < 0.011 and np.median(np.abs(e_col)) < 0.011, msg
    assert abs(e_row.mean()) < 0.0085 and abs(e_col.mean()) < 0.0085, msg
    # the widths and the area: measured median |sigma_row/truth - 1| 0.0025, |Area/truth - 1| 0.0041
    s_rel = np.abs(df["sigma_row"].to_numpy() / truth[:, 4] - 1)
    assert np.median(s_rel) < 0.004, f"median |sigma_row/truth - 1| {np.median(s_rel):.4f}"
    a_rel = np.abs(df["area"].to_numpy() / np.minimum(np.pi * truth[:, 4] * truth[:, 5], 25 * np.pi) - 1)
    assert np.median(a_rel) < 0.0062, f"median |Area/truth - 1| {np.median(a_rel):.4f}"
