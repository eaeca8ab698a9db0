"""The two-component exact fit reaches scipy.optimize.least_squares' minimum on the same model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import least_squares

from laue_live.doubles import fit_one_gaussian, fit_two_gaussians, gaussian_model, make_doubles
from laue_live.doubles._fit import _to_internal, _to_physical


def _scipy_fit(img: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, float]:
    def fun(q):
        return gaussian_model(_to_physical(q[None]), img.shape)[0].ravel() - img.ravel()

    res = least_squares(fun, _to_internal(start[None])[0], method="lm", xtol=1e-12, ftol=1e-12)
    return _to_physical(res.x[None])[0], float(res.cost)


def _doubles(rng, n, sep):
    cut, truth = make_doubles(n, rng=rng, sep=np.full(n, sep), ratio=np.full(n, 2.0))
    return cut.astype(np.float64), truth


def _truth_params(truth):
    t = truth
    return np.stack([t.amp1, t.row1, t.col1, t.sigma_row1, t.sigma_col1,
                     t.amp2, t.row2, t.col2, t.sigma_row2, t.sigma_col2, np.full(len(t), 1050.0)], 1)


def test_two_gaussian_fit_reaches_scipy_minimum(rng):
    cut, truth = _doubles(rng, 6, sep=4.0)
    fit = fit_two_gaussians(cut)
    assert fit.converged.all()
    start = _truth_params(truth)
    for i in range(len(cut)):
        p_sp, cost_sp = _scipy_fit(cut[i], start[i])
        # same least-squares minimum: the cost is not above scipy's, the parameters agree
        assert fit.cost[i] <= cost_sp * (1 + 1e-6) + 1e-6
        order = list(range(11)) if p_sp[0] >= p_sp[5] else [5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 10]
        p_sp = p_sp[order]
        np.testing.assert_allclose(fit.params[i, [1, 2, 6, 7]], p_sp[[1, 2, 6, 7]], atol=2e-3)
        np.testing.assert_allclose(fit.params[i, [3, 4, 8, 9]], p_sp[[3, 4, 8, 9]], rtol=2e-3)
        np.testing.assert_allclose(fit.params[i, [0, 5]], p_sp[[0, 5]], rtol=2e-3)


def test_two_gaussian_fit_recovers_truth_and_orders_components(rng):
    cut, truth = _doubles(rng, 8, sep=5.0)
    p = fit_two_gaussians(cut).params
    assert (p[:, 0] >= p[:, 5]).all()  # component 1 is the brighter
    err1 = np.hypot(p[:, 1] - truth.row1, p[:, 2] - truth.col1)
    err2 = np.hypot(p[:, 6] - truth.row2, p[:, 7] - truth.col2)
    assert np.median(err1) < 0.05 and np.median(err2) < 0.1


def test_single_fit_reaches_scipy_minimum(rng):
    cut, truth = make_doubles(4, rng=rng, double_fraction=0.0)
    fit = fit_one_gaussian(cut.astype(np.float64))
    for i in range(len(cut)):
        start = np.array([truth.amp1[i], truth.row1[i], truth.col1[i], truth.sigma_row1[i],
                          truth.sigma_col1[i], 1050.0])
        p_sp, cost_sp = _scipy_fit(cut[i].astype(np.float64), start)
        assert fit.cost[i] <= cost_sp * (1 + 1e-6) + 1e-6
        np.testing.assert_allclose(fit.params[i, 1:3], p_sp[1:3], atol=1e-3)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def test_float32_and_device_agree_with_float64(rng, device):
    cut, truth = _doubles(rng, 4, sep=6.0)
    ref = fit_two_gaussians(cut)
    f32 = fit_two_gaussians(cut, device=device, dtype=torch.float32, start=ref.params, ftol=1e-7, xtol=1e-7)
    np.testing.assert_allclose(f32.params[:, [1, 2, 6, 7]], ref.params[:, [1, 2, 6, 7]], atol=0.02)


def test_fit_rejects_bad_shapes():
    with pytest.raises(ValueError, match="cutouts"):
        fit_two_gaussians(np.zeros((2, 2, 32, 32)))
