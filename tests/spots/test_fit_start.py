"""The fit's start values follow their documented recipe; odd cutout sizes; torch dtypes.

Written against mutants of ``spots/_fit.py`` that the fit-vs-scipy tests cannot see (a worse start
still converges to the same minimum): the start itself is checked against a plain re-statement of
``moment_start``'s docstring, and against the truth of noiseless spots.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from laue_live.spots import fit_gaussians, gaussian_model, moment_start

from .synth import gauss, random_gaussian_spots


def _documented_start(img: np.ndarray, c: int) -> np.ndarray:
    """moment_start's docstring, one cutout at a time, in plain numpy."""
    img = img.astype(np.float64)
    borders = sorted([img[0].mean(), img[-1].mean(), img[:, 0].mean(), img[:, -1].mean()])
    beta = 0.5 * (borders[1] + borders[2])  # the middle two border means
    h5, h8 = min(5, c), min(8, c)
    a0 = max(img[c - h5:c + h5 + 1, c - h5:c + h5 + 1].max() - beta, 1e-6)  # within 5 px
    d = img[c - h8:c + h8 + 1, c - h8:c + h8 + 1] - beta  # moments within 8 px
    x = np.arange(-h8, h8 + 1)
    w = np.where(d > 0.2 * a0, d, 0.0)  # pixels above 0.2 A
    tot = max(w.sum(), 1e-12)
    wr, wc = w.sum(axis=1), w.sum(axis=0)
    mr, mc = (wr * x).sum() / tot, (wc * x).sum() / tot
    vr, vc = (wr * (x - mr) ** 2).sum() / tot, (wc * (x - mc) ** 2).sum() / tot
    # truncation at 0.2 of the height keeps 0.598 of a Gaussian's variance; pixels add 1/12 px^2
    sr = np.clip(np.sqrt(max(vr - 1 / 12, 0.01) / 0.598), 0.3, 10.0)
    sc = np.clip(np.sqrt(max(vc - 1 / 12, 0.01) / 0.598), 0.3, 10.0)
    return np.array([a0, beta, mr, mc, np.log(sr), np.log(sc)])


def _ring() -> np.ndarray:
    img = np.full((32, 32), 1000.0)
    img[16, 16] = 1100.0
    img[8, 16] = img[24, 16] = 6000.0
    return img


def _cases() -> np.ndarray:
    cut, _ = random_gaussian_spots(12, seed=8)
    extra = [
        _ring(),  # weight only 8 px from the centre along rows: sigma_row clipped at 10, sigma_col at 0.3
        np.full((32, 32), 1000.0),  # flat: no pixel above the background
        gauss(3e4, 1000, 0.0, 0.0, 0.15, 0.2),  # pixel-sharp: sigma clipped at 0.3 px
        gauss(4e5, 1000, 5.6, -6.2, 1.0, 1.3),  # off-centre: the 5 px and 8 px windows matter
        gauss(4e5, 1000, -7.5, 7.4, 1.2, 1.0),
    ]
    neighbour = gauss(1e5, 1000, 0.2, 0.1, 1.2, 1.2)
    neighbour[:, -3:] += 3000.0  # a bright neighbour along one border only
    return np.concatenate([cut, np.stack(extra + [neighbour])]).astype(np.float64)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_moment_start_is_its_documented_recipe(kind):
    cut = _cases()
    data = torch.as_tensor(cut) if kind == "torch" else cut
    got = np.asarray(moment_start(data, 16))
    ref = np.stack([_documented_start(img, 16) for img in cut])
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    assert np.allclose(np.exp(got[[12, 12, 14], [4, 5, 4]]), [10.0, 0.3, 0.3], rtol=1e-12)  # the clips
    assert got[13, 0] == 1e-6  # flat: the height is clipped, never 0 or negative


def test_moment_start_is_near_the_truth_of_noiseless_spots():
    truth = [(3e4, 1000, 0.3, -0.4, 1.2, 0.9), (2e5, 980, -1.1, 0.7, 2.5, 3.0),
             (8e3, 1020, 0.0, 0.2, 0.8, 1.6)]
    cut = np.stack([gauss(*t) for t in truth])
    st = moment_start(cut, 16)
    for (alpha, beta, mr, mc, sr, sc), s in zip(truth, st, strict=True):
        height = alpha / (2 * np.pi * sr * sc)
        # measured, worst of the three: beta 8.7e-5 ADU, height -12%, centre 0.069 (row) 0.123 (col) px,
        # widths -7.8% (row) -6.3% (col)
        assert abs(s[1] - beta) < 1.3e-4 and abs(s[0] / height - 1) < 0.18
        assert abs(s[2] - mr) < 0.1 and abs(s[3] - mc) < 0.18
        assert abs(np.exp(s[4]) / sr - 1) < 0.12 and abs(np.exp(s[5]) / sc - 1) < 0.095


def test_odd_cutouts_fit_about_their_centre_pixel():
    """An odd size S: the initial peak is at index S // 2 (15 for 31), mu and the model agree."""
    full = np.stack([gauss(5e4, 1000, 0.3, -0.2, 1.1, 1.4), gauss(9e4, 990, -0.6, 0.5, 1.8, 1.2)])
    cut = full[:, :31, :31]  # the centre 15 of the 31 is 1 px before the centre 16 of the 32
    fit = fit_gaussians(cut)
    assert fit.converged.all()
    np.testing.assert_allclose(fit.mu_row, [0.3 + 1, -0.6 + 1], atol=1e-6)  # noiseless: exact
    np.testing.assert_allclose(fit.mu_col, [-0.2 + 1, 0.5 + 1], atol=1e-6)
    model = gaussian_model(fit, size=31)
    np.testing.assert_allclose(model, cut, rtol=0, atol=1.1e-4)  # ADU; measured 6.9e-5 (the fit's tolerance)


def test_torch_dtypes_are_accepted_like_their_names():
    cut, _ = random_gaussian_spots(5, seed=4)
    by_name = fit_gaussians(cut, backend="torch", dtype="float64")
    by_dtype = fit_gaussians(cut, backend="torch", dtype=torch.float64)
    np.testing.assert_array_equal(by_dtype.mu_row, by_name.mu_row)
    f32 = fit_gaussians(cut, backend="torch", dtype=torch.float32)
    assert f32.converged.all() and np.abs(f32.mu_row - by_name.mu_row).max() < 1.5e-4  # as test_fit


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_the_callers_cutouts_are_never_changed(backend):
    """The fit centres its data in place: on its own copy, whatever the input's kind and dtype."""
    cut, _ = random_gaussian_spots(4, seed=6)
    for data in (cut.astype(np.float64), torch.as_tensor(cut.astype(np.float64)), cut.astype(np.float32)):
        before = np.array(data, copy=True)
        fit = fit_gaussians(data, backend=backend)
        assert fit.converged.all()
        np.testing.assert_array_equal(np.asarray(data), before)


def test_tensor_input_on_the_numpy_backend_and_explicit_starts_on_torch():
    cut, truth = random_gaussian_spots(5, seed=12)
    ref = fit_gaussians(cut, backend="numpy")
    from_tensor = fit_gaussians(torch.as_tensor(cut), backend="numpy")
    np.testing.assert_array_equal(from_tensor.mu_row, ref.mu_row)
    # one iteration from the truth is not one iteration from the moments: the start is used, the same
    # on both backends
    one_step = {}
    for backend in ("numpy", "torch"):
        from_truth = fit_gaussians(cut, backend=backend, start=truth, max_iter=1)
        from_moments = fit_gaussians(cut, backend=backend, max_iter=1)
        assert np.abs(from_truth.mu_row - from_moments.mu_row).max() > 1e-3
        assert (from_truth.n_iter == 1).all() and not from_truth.converged.any()
        one_step[backend] = from_truth.mu_row
    np.testing.assert_allclose(one_step["torch"], one_step["numpy"], rtol=0, atol=1e-9)


def test_empty_input_gives_empty_typed_fields():
    for backend in ("numpy", "torch"):
        f = fit_gaussians(np.zeros((0, 32, 32), np.float32), backend=backend)
        for name, value in f.to_dict().items():
            assert isinstance(value, np.ndarray) and value.shape == (0,), name
        assert f.converged.dtype == bool and f.n_iter.dtype == np.int64 and f.mu_row.dtype == np.float64


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_levenberg_marquardt_converges_in_few_iterations(backend):
    """The optimiser's speed in iterations (deterministic, unlike time): a damping update, a stopping
    test or a step that is subtly wrong still reaches the minimum, in many more iterations."""
    from .synth import non_gaussian_spots

    for cut, total, longest in ((random_gaussian_spots(60, seed=3)[0], 410, 22),  # measured 273, 15
                                (non_gaussian_spots(6, seed=5)[0], 378, 33)):  # measured 252, 22
        f = fit_gaussians(cut, backend=backend)
        assert f.converged.all()
        assert f.n_iter.sum() <= total and f.n_iter.max() <= longest, (f.n_iter.sum(), f.n_iter.max())


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_widths_stay_within_their_bounds(backend):
    """A spot flat along one axis drives its width to the 150 px bound: held there, never converged;
    a ramp drives the centre out of the cutout: not converged; a hot pixel is a narrow Gaussian."""
    hot = np.full((32, 32), 1000.0)
    hot[16, 16] = 9000.0
    ramp = 1000 + np.outer(np.ones(32), np.linspace(0, 500, 32))
    cut = np.stack([gauss(2e7, 1000, 0.0, 0.3, 400.0, 1.1), gauss(2e7, 1000, 0.2, 0.0, 1.3, 900.0), ramp, hot,
                    gauss(5e4, 1000, 0.2, 0.1, 1.2, 1.0)])
    f = fit_gaussians(cut, backend=backend)
    assert f.converged.tolist() == [False, False, False, True, True]
    np.testing.assert_allclose([f.sigma_row[0], f.sigma_col[1], f.sigma_row[2]], 150.0, rtol=1e-12)
    assert np.abs(f.mu_col[2]) > 32  # the ramp's centre left the cutout (measured 32.3 px)
    assert 0.05 < f.sigma_row[3] < 0.25 and np.isclose(f.sigma_row[3], f.sigma_col[3])  # measured 0.161 px
    assert ((f.sigma_row >= 0.05) & (f.sigma_row <= 150) & (f.sigma_col >= 0.05) & (f.sigma_col <= 150)).all()
