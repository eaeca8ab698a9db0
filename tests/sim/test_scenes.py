"""Spot scenes (the CNN's training stream): what each cutout holds, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from laue_live._errors import SettingsError
from laue_live.sim import SHAPES, SceneConfig, render_spot_scenes


@pytest.fixture(scope="module")
def scenes():
    return render_spot_scenes(1500, rng=11)


def test_scenes_cover_what_real_cutouts_hold(scenes):
    cut, truth = scenes
    assert cut.shape == (1500, 32, 32) and cut.dtype == np.float32 and len(truth) == 1500
    edge = truth["mask"].to_numpy() == 2  # padded with the median of the rest, as extract_cutouts pads
    assert np.array_equal(cut[~edge], np.rint(cut[~edge])) and cut.min() >= 0 and cut.max() <= 65535
    assert set(truth["shape"]) == set(SHAPES)
    width = np.sqrt(truth["sigma_row"] * truth["sigma_col"])
    assert width.min() < 0.35 and width.max() > 4  # pixel-sharp to wide
    d = np.abs(truth[["d_row", "d_col"]].to_numpy())
    assert 1.0 < d.max() <= 3.5  # s one pixel off the brightest pixel now and then
    assert truth["jitter"].mean() == pytest.approx(0.2, abs=0.05)
    assert truth["n_neighbours"].between(0, 3).all() and (truth["n_neighbours"] > 0).mean() == pytest.approx(
        0.35, abs=0.06
    )
    assert set(truth["mask"]) == {0, 1, 2, 3}
    dead = truth["mask"].to_numpy() == 1
    assert (cut[dead] == 0).any(axis=(1, 2)).all()  # a dead region is zeros
    assert truth["saturated"].any() and truth["pedestal"].between(10, 1500).all()


def test_scenes_are_reproducible_and_the_main_spot_is_near_s(scenes):
    cut, truth = scenes
    again, t2 = render_spot_scenes(1500, rng=11)
    assert np.array_equal(cut, again) and truth.equals(t2)
    clean = (truth["shape"] == "gaussian") & ~truth["jitter"] & (truth["peak_height"] > 2000)
    assert np.abs(truth.loc[clean, ["d_row", "d_col"]].to_numpy()).max() <= 0.75


def test_bad_scene_settings_are_refused():
    with pytest.raises(SettingsError):
        render_spot_scenes(10, size=31)
    with pytest.raises(SettingsError):
        SceneConfig(p_neighbours=1.5)
    with pytest.raises(SettingsError):
        SceneConfig(width_range=(3.0, 1.0))
