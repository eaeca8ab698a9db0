"""Synthetic doubles: the truth table describes what is in the cutout."""

from __future__ import annotations

import numpy as np

from laue_live.doubles import TRUTH_COLUMNS, fit_two_gaussians, gaussian_model, make_doubles


def test_simulated_truth_reproduces_the_cutout(rng):
    cut, truth = make_doubles(50, rng=rng, double_fraction=0.6)
    assert list(truth.columns) == list(TRUTH_COLUMNS)
    assert cut.shape == (50, 32, 32) and cut.dtype == np.float32
    # the peak search's convention: the brightest pixel at the cutout centre
    flat = cut.reshape(50, -1).argmax(1)
    assert ((flat // 32 == 16) & (flat % 32 == 16)).all()
    dbl = truth.n_spots == 2
    assert 10 < dbl.sum() < 45
    assert (truth.amp1[dbl] >= truth.amp2[dbl]).all()
    dist = np.hypot(truth.row1 - truth.row2, truth.col1 - truth.col2)
    np.testing.assert_allclose(truth.separation[dbl], dist[dbl])
    np.testing.assert_allclose(truth.ratio[dbl], (truth.amp1 / truth.amp2)[dbl])
    assert truth.loc[~dbl, ["row2", "amp2", "separation"]].isna().all().all()
    # the noiseless model of the truth (plus the pedestal) explains the cutout down to the noise
    t = truth.fillna({"amp2": 0.0, "row2": 0.0, "col2": 0.0, "sigma_row2": 1.0, "sigma_col2": 1.0})
    p = np.stack([t.amp1, t.row1, t.col1, t.sigma_row1, t.sigma_col1,
                  t.amp2, t.row2, t.col2, t.sigma_row2, t.sigma_col2, np.zeros(50)], 1)
    model = gaussian_model(p)
    resid = cut - model
    pedestal = np.median(resid.reshape(50, -1), axis=1)
    assert ((pedestal > 990) & (pedestal < 1110)).all()
    peak = model.reshape(50, -1).max(1)
    rms = np.sqrt(((resid - pedestal[:, None, None]) ** 2).mean(axis=(1, 2)))
    assert (rms < 0.05 * peak + 10).all()


def test_fixed_separation_and_ratio(rng):
    n = 20
    cut, truth = make_doubles(n, rng=rng, sep=np.full(n, 3.5), ratio=np.full(n, 4.0))
    np.testing.assert_allclose(truth.separation, 3.5, atol=1e-9)
    np.testing.assert_allclose(truth.ratio, 4.0, rtol=1e-9)


def test_real_doubles_truth_matches_exact_fit(rng, real_bank):
    n = 12
    cut, truth = make_doubles(n, rng=rng, bank=real_bank, real_fraction=1.0, sep=np.full(n, 6.0),
                              ratio=np.full(n, 2.0))
    assert truth.real.all()
    # the real second spot lands at an integer offset: separation within rounding of the request
    assert (np.abs(truth.separation - 6.0) <= 0.75).all()
    assert (truth.ratio.between(1.0, 2.0 + 1e-9)).all()
    fit = fit_two_gaussians(cut.astype(np.float64))
    e1 = np.hypot(fit.params[:, 1] - truth.row1, fit.params[:, 2] - truth.col1)
    e2 = np.hypot(fit.params[:, 6] - truth.row2, fit.params[:, 7] - truth.col2)
    assert np.median(e1) < 0.1 and np.median(e2) < 0.1


def test_real_bank_spots_are_good_and_isolated(real_bank):
    s = real_bank.spots
    assert (s.sim0 > 0.925).all()
    assert (np.hypot(s.row - s.row0, s.col - s.col0) <= 0.9).all()
    assert set(s.frame) == {0, 1}
