"""characterize on cutouts of any size: the exact fit takes them; the CNN says what it needs."""

from __future__ import annotations

import numpy as np
import pytest

from laue_live import FrameError
from laue_live.describe import characterize


@pytest.mark.parametrize("size", [8, 15, 16, 24, 32, 48])
def test_the_fit_recovers_a_gaussian_in_cutouts_of_any_size(size):
    c = size // 2
    r, k = np.mgrid[:size, :size]
    truth = {"d_row": 0.3, "d_col": -0.2, "sigma_row": 1.2, "sigma_col": 1.6}
    cut = 100 + 1000 * np.exp(-0.5 * (((r - c - truth["d_row"]) / truth["sigma_row"]) ** 2
                                      + ((k - c - truth["d_col"]) / truth["sigma_col"]) ** 2))
    noisy = cut + np.random.default_rng(size).normal(0, 2.0, cut.shape)  # ~2 ADU read noise
    table = characterize(np.stack([cut, noisy]), "fit")
    assert table["converged"].all()
    for name, value in truth.items():
        assert table[name].iloc[0] == pytest.approx(value, abs=1e-4), name  # noiseless: exact
        assert table[name].iloc[1] == pytest.approx(value, abs=0.05), name  # measured ~0.01 at 2 ADU
    assert table["sim"].iloc[0] == pytest.approx(1.0)


def test_the_cnn_names_the_cutout_size_it_needs():
    with pytest.raises(FrameError, match=r"32 x 32 cutouts.*got 16 x 16.*method='fit'"):
        characterize(np.full((2, 16, 16), 5.0), "cnn")
