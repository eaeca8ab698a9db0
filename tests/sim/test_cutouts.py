"""Training cutouts: brightest-pixel convention and truth."""

from __future__ import annotations

import numpy as np
import pytest

from laue_live import SettingsError
from laue_live.sim import SHAPES, render_spot_cutouts


def test_cutouts_follow_the_brightest_pixel_convention():
    cut, truth = render_spot_cutouts(300, "broad", rng=0)
    assert cut.shape == (300, 32, 32) and cut.dtype == np.float32 and len(truth) == 300
    # s = brightest pixel sits at [16, 16] (for spots above the noise; ties only for saturated plateaus)
    unsat = ~truth["saturated"].to_numpy() & (truth["peak_height"].to_numpy() > 50)
    flat = cut[unsat].reshape(unsat.sum(), -1)
    assert (flat.argmax(axis=1) == 16 * 32 + 16).all()
    assert (truth["row0"] == 16).all() and (truth["col0"] == 16).all()
    assert set(truth["shape"]) == set(SHAPES)  # every shape class is drawn
    g = truth["shape"] == "gaussian"
    assert truth.loc[g, ["d_row", "d_col"]].abs().max().max() < 1.6
    # even in the noise, s stays on the spot (the footprint), never on a far noise pixel
    assert truth[["d_row", "d_col"]].abs().max().max() < 13
    split = truth["shape"] == "split"
    assert truth.loc[split, "d_row2"].notna().all() and truth.loc[~split, "d_row2"].isna().all()


def test_cutout_truth_matches_the_pixels():
    cut, truth = render_spot_cutouts(200, {"gaussian": 1.0}, rng=1, peak_range=(5000, 20000))
    bg = truth["background"].to_numpy()[:, None, None]
    img = np.clip(cut - bg, 0, None)
    rr, cc = np.mgrid[0:32, 0:32]
    tot = img.sum(axis=(1, 2))
    d_row = (img * rr).sum(axis=(1, 2)) / tot - 16
    d_col = (img * cc).sum(axis=(1, 2)) / tot - 16
    err = np.hypot(d_row - truth["d_row"], d_col - truth["d_col"])
    assert np.median(err) < 0.05


def test_cutouts_are_reproducible_and_checked():
    a, ta = render_spot_cutouts(20, "bm32", rng=4)
    b, tb = render_spot_cutouts(20, "bm32", rng=4)
    assert np.array_equal(a, b) and ta.equals(tb)
    with pytest.raises(SettingsError):
        render_spot_cutouts(10, size=31)
    with pytest.raises(SettingsError):
        render_spot_cutouts(10, peak_range=(0, 10))
    with pytest.raises(SettingsError):
        render_spot_cutouts(10, shape_mix="nope")
