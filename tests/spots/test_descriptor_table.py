"""The fit's descriptor columns and the spot-table assembly, case by case.

Written against the mutants that survived the first mutation run of ``spots/_fit_descriptors.py``
and ``spots/_table.py`` (docs/testing.md): a fit with a non-finite row, the defaults, the options
that must reach the fit, the good-spot rule with a fit that did not converge, the table's columns
taken from the right inputs.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from laue_live._errors import FrameError
from laue_live.spots import (
    DESCRIPTOR_COLUMNS,
    GaussFit,
    check_cutouts,
    fit_columns,
    fit_descriptors,
    fit_gaussians,
    spot_table_from_descriptors,
)

from .synth import gauss, random_gaussian_spots


@pytest.fixture(scope="module")
def spots():
    cut, truth = random_gaussian_spots(6, seed=21)
    return cut, truth, fit_gaussians(cut)


def test_fit_columns_default_is_the_background_variant(spots):
    cut, _, fit = spots
    default = fit_columns(cut, fit)
    bg = fit_columns(cut, fit, sim_variant="background")
    raw = fit_columns(cut, fit, sim_variant="raw")
    np.testing.assert_array_equal(default["sim0"], bg["sim0"])
    assert (raw["sim0"] > bg["sim0"]).all()  # the pedestal pushes the raw cosine up
    assert fit_descriptors(cut).attrs["sim_variant"] == "background"
    np.testing.assert_array_equal(fit_descriptors(cut)["sim0"], bg["sim0"].astype(np.float32))


def test_a_non_finite_fit_row_is_flagged_alone(spots):
    cut, _, fit = spots
    broken = GaussFit(**{k: np.array(v, copy=True) for k, v in fit.to_dict().items()})
    broken.mu_row[2] = np.nan
    broken.sigma_col[4] = np.inf
    cols = fit_columns(cut, broken)
    bad = np.zeros(len(cut), bool)
    bad[[2, 4]] = True
    assert fit.converged.all()
    np.testing.assert_array_equal(cols["converged"], ~bad)  # converged only where every parameter is finite
    assert np.isnan(cols["sim0"][bad]).all() and np.isfinite(cols["sim0"][~bad]).all()
    np.testing.assert_array_equal(cols["sim"][bad], 0.0)  # NaN Sim0 -> Sim 0
    good = fit_columns(cut, fit)
    np.testing.assert_array_equal(cols["sim0"][~bad], good["sim0"][~bad])
    # a fit that did not converge stays flagged, finite or not
    stopped = GaussFit(**{k: np.array(v, copy=True) for k, v in fit.to_dict().items()})
    stopped.converged[1] = False
    assert fit_columns(cut, stopped)["converged"].tolist() == [True, False, True, True, True, True]


def test_reporting_clip_of_positions():
    cut = np.stack([gauss(50000, 1000, 0.0, 0.0, 1.0, 1.0) for _ in range(3)]).astype(np.float32)
    fit = fit_gaussians(cut)
    fit.mu_row[:] = [-20.0, 3.0, 17.5]
    fit.mu_col[:] = [16.0, -16.5, 0.25]
    cols = fit_columns(cut, fit)
    np.testing.assert_array_equal(cols["d_row"], [-16.0, 3.0, 15.0])  # [-16, 15] px
    np.testing.assert_array_equal(cols["d_col"], [15.0, -16.0, 0.25])


def test_fit_options_and_saturation_reach_the_fit(spots, caplog):
    cut, _, _ = spots
    one_step = fit_descriptors(cut, max_iter=1)
    assert not one_step["converged"].any()  # max_iter reached the fit: nothing converges in one step
    assert fit_descriptors(cut)["converged"].all()
    low = fit_descriptors(cut, saturation=float(cut.max()))
    assert low["saturated"].tolist() == (cut.max(axis=(1, 2)) >= cut.max()).tolist()
    assert low["saturated"].any()
    assert not fit_descriptors(cut)["saturated"].any()
    with caplog.at_level(logging.DEBUG, logger="laue_live.spots._fit_descriptors"):
        fit_descriptors(cut, max_iter=1)
    assert f"{len(cut)} of {len(cut)} fits did not converge" in caplog.text
    # on torch (device="cpu") the same columns as numpy, to float64 rounding
    torch_cpu = fit_descriptors(cut, device="cpu")
    for c in DESCRIPTOR_COLUMNS:
        np.testing.assert_allclose(torch_cpu[c].astype(float), fit_descriptors(cut)[c].astype(float),
                                   rtol=1e-6, atol=0, err_msg=c)


def test_single_cutout_and_empty_input(spots):
    cut, _, _ = spots
    one = fit_descriptors(cut[:1])
    assert len(one) == 1 and one["converged"].all()
    np.testing.assert_array_equal(one.iloc[0].to_numpy(), fit_descriptors(cut).iloc[0].to_numpy())
    empty = fit_descriptors(np.zeros((0, 32, 32), np.float32))
    assert len(empty) == 0 and list(empty.columns) == list(DESCRIPTOR_COLUMNS)
    assert empty.attrs["sim_variant"] == "background"


@pytest.mark.parametrize(("bad", "match"), [
    (np.zeros((2, 32, 32), bool), "real numbers"),
    (np.zeros((2, 32, 32), complex), "real numbers"),
    (np.zeros((2, 32, 32), object), "real numbers"),
    (np.zeros((2, 3, 3)), "S >= 4"),
    (np.zeros((2, 32, 30)), "S >= 4"),
    (np.zeros((32, 32)), "S >= 4"),
    (np.full((1, 8, 8), np.nan), "NaN"),
    (np.full((1, 8, 8), np.inf), "NaN or infinite"),
])
def test_check_cutouts_refuses(bad, match):
    with pytest.raises(FrameError, match=match):
        check_cutouts(bad)


def test_check_cutouts_accepts_the_smallest_and_integers():
    for ok in (np.zeros((1, 4, 4)), np.zeros((2, 32, 32), np.uint16), np.zeros((2, 5, 5), np.int32)):
        assert check_cutouts(ok) is not None and check_cutouts(ok).shape == ok.shape


def _desc(n=4):
    cut, _ = random_gaussian_spots(n, seed=5)
    desc = fit_descriptors(cut)
    desc.attrs["marker"] = "from desc"
    return desc


def test_spot_table_columns_come_from_their_inputs():
    desc = _desc()
    peaks = np.array([[100, 7], [20, 300], [5, 6], [1999, 2000]])
    edge = np.array([False, True, False, True])
    t = spot_table_from_descriptors(desc, peaks, edge)
    assert (t["frame"] == 0).all() and t["frame"].dtype == np.int64  # default frame number 0
    np.testing.assert_array_equal(t["spot"], np.arange(4))
    np.testing.assert_array_equal(t["row0"], peaks[:, 0])
    np.testing.assert_array_equal(t["col0"], peaks[:, 1])
    np.testing.assert_allclose(t["row"], peaks[:, 0] + desc["d_row"].astype(np.float64), rtol=0, atol=0)
    np.testing.assert_allclose(t["col"], peaks[:, 1] + desc["d_col"].astype(np.float64), rtol=0, atol=0)
    np.testing.assert_array_equal(t["edge"], edge)
    assert (t["parent"] == -1).all() and (t["component"] == 0).all()
    assert t.attrs["marker"] == "from desc" and t.attrs["sim_variant"] == "background"
    t7 = spot_table_from_descriptors(desc, peaks, edge, frame_number=7, attrs={"other": 1})
    assert (t7["frame"] == 7).all() and t7.attrs == {"other": 1}
    # a mapping of arrays works like a DataFrame (no attrs)
    tm = spot_table_from_descriptors({k: desc[k].to_numpy() for k in desc.columns}, peaks, edge)
    pd.testing.assert_frame_equal(tm, t, check_exact=True)
    assert tm.attrs == {}


def test_good_needs_sim_distance_and_a_converged_fit():
    desc = _desc()
    desc["sim"] = np.float32([0.9, 0.4, 0.9, 0.9])
    desc["d_row"] = np.float32([0.1, 0.1, 0.85, 0.1])
    desc["d_col"] = np.float32([0.1, 0.1, 0.3, -0.2])
    desc["converged"] = [True, True, True, False]
    t = spot_table_from_descriptors(desc, np.zeros((4, 2), int), np.zeros(4, bool))
    # row 1: Sim too low; row 2: |d| = 0.90 px > 0.9 (0.85, 0.3); row 3: the fit did not converge
    assert t["good"].tolist() == [True, False, False, False]
    desc["d_col"] = np.float32([0.1, 0.1, 0.0, -0.2])  # |d| = 0.85 px: good again
    assert spot_table_from_descriptors(desc, np.zeros((4, 2), int), np.zeros(4, bool))["good"].tolist() == [
        True, False, True, False]
    desc["d_row"] = np.float32([0.1, 0.1, 0.0, 0.1])
    desc["d_col"] = np.float32([0.1, 0.1, -0.95, -0.2])  # along columns too
    assert spot_table_from_descriptors(desc, np.zeros((4, 2), int), np.zeros(4, bool))["good"].tolist() == [
        True, False, False, False]
