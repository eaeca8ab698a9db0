"""The polish: the exact fit started at the network's prediction."""

import numpy as np
import pytest

from laue_live._errors import ModelError
from laue_live.cnn import Predictor, polish, start_from_desc, width_star
from laue_live.cnn._accuracy import clean_gaussians
from laue_live.spots import fit_descriptors


def _perfect_desc(fit) -> np.ndarray:
    """Network outputs that hold the fit's own centre and widths."""
    d = np.zeros((len(fit), 7), np.float32)
    d[:, 1] = (fit["d_row"] + 1.1) / 2.2
    d[:, 2] = (fit["d_col"] + 1.1) / 2.2
    d[:, 5] = width_star(fit["sigma_row"].to_numpy(np.float64))
    d[:, 6] = width_star(fit["sigma_col"].to_numpy(np.float64))
    return d


def test_a_start_at_the_minimum_gives_the_fits_answer_in_one_iteration():
    cut, _ = clean_gaussians(20, seed=2)
    fit = fit_descriptors(cut)
    out = polish(cut, _perfect_desc(fit), 1)
    assert list(out.columns) == list(fit.columns)
    np.testing.assert_allclose(out["d_row"], fit["d_row"], atol=2e-3)
    np.testing.assert_allclose(out["d_col"], fit["d_col"], atol=2e-3)
    np.testing.assert_allclose(out["sim"], fit["sim"], atol=1e-3)
    np.testing.assert_allclose(out["area"], fit["area"], rtol=1e-2)


def test_start_values_solve_height_and_background_and_survive_flat_cutouts():
    cut, truth = clean_gaussians(10, seed=4)
    fit = fit_descriptors(cut)
    st = start_from_desc(_perfect_desc(fit), cut).numpy()
    np.testing.assert_allclose(st[:, 1], fit["background"], rtol=2e-3)  # beta, ADU
    np.testing.assert_allclose(st[:, 0], fit["amplitude"], rtol=2e-2)  # alpha, ADU px^2
    flat = np.full((3, 32, 32), 1000.0, np.float32)
    assert np.isfinite(start_from_desc(np.full((3, 7), 0.5, np.float32), flat).numpy()).all()


def test_the_polish_needs_width_outputs_and_at_least_one_iteration(tmp_path):
    from laue_live.cnn import SpotCNN, save_model

    path = save_model(tmp_path / "paper.safetensors", SpotCNN().eval())
    with pytest.raises(ModelError, match="width outputs"):
        Predictor(path, "cpu", quantize=False, polish=1)
    with pytest.raises(ValueError, match="width outputs"):
        start_from_desc(np.zeros((2, 5)), np.zeros((2, 32, 32)))
    with pytest.raises(ValueError, match="steps"):
        polish(np.zeros((2, 32, 32)), np.zeros((2, 7)), 0)
