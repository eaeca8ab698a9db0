"""Rendered frames: detector model, ground truth, shape mixes, determinism, bad parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from laue_live import SettingsError
from laue_live.sim import SATURATION, SHAPES, RenderConfig, render_frame, simulate_spots


@pytest.fixture(scope="module")
def si_spots(bm32_calibration):
    cal, u = bm32_calibration
    return simulate_spots("Si", u, cal)


def test_frame_detector_model(si_spots):
    r = render_frame(si_spots, RenderConfig(), rng=1, keep_background=True)
    f = r.frame
    assert f.dtype == np.uint16 and f.shape == (2018, 2016)
    # pedestal ~1000 ADU with a smooth hump; noise of a few ADU like the real frames
    assert 995 <= np.median(f) <= 1040
    flat = f[1900:1960, 100:160].astype(float)
    assert 0.5 < np.diff(flat, axis=1).std() / np.sqrt(2) < 5
    assert r.background is not None and r.background.min() >= 1000
    assert f.max() == SATURATION and r.truth["saturated"].any()
    t = r.truth
    assert 40 <= len(t) <= len(si_spots)
    assert set(t["shape"]) <= set(SHAPES)
    for col in ("row", "col", "shape", "sigma_row", "sigma_col", "amplitude", "h", "k", "l", "energy_keV"):
        assert col in t.columns


def test_truth_positions_match_the_pixels(si_spots):
    """For bright, round Gaussian spots the noisy frame's local centroid is the true position."""
    cfg = RenderConfig(shape_mix="clean", sigma_spread=0.0)
    r = render_frame(si_spots, cfg, rng=2, keep_background=True)
    t = r.truth[(r.truth["shape"] == "gaussian") & (r.truth["peak_height"] > 2000) & ~r.truth["saturated"]]
    assert len(t) >= 10
    errs = []
    for _, s in t.iterrows():
        r0, c0 = int(round(s["row"])), int(round(s["col"]))
        if not (8 <= r0 < 2010 and 8 <= c0 < 2008):
            continue
        win = (
            r.frame[r0 - 6 : r0 + 7, c0 - 6 : c0 + 7].astype(float)
            - r.background[r0 - 6 : r0 + 7, c0 - 6 : c0 + 7]
        )
        rr, cc = np.mgrid[r0 - 6 : r0 + 7, c0 - 6 : c0 + 7]
        errs.append(
            np.hypot((win * rr).sum() / win.sum() - s["row"], (win * cc).sum() / win.sum() - s["col"])
        )
    assert len(errs) == 60  # measured: all 60 bright Gaussian spots are inside the frame
    # measured: median 0.0033 px, max 0.0135 px (the centroid's own noise)
    msg = f"median {np.median(errs):.4f}, max {max(errs):.4f} px"
    assert np.median(errs) < 0.005 and max(errs) < 0.02, msg


def test_deterministic_and_seed_dependent(si_spots):
    a = render_frame(si_spots, rng=5)
    b = render_frame(si_spots, rng=5)
    c = render_frame(si_spots, rng=6)
    assert np.array_equal(a.frame, b.frame)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert not np.array_equal(a.frame, c.frame)


@pytest.mark.parametrize("shape", ["split", "streaked", "lorentzian", "asymmetric", "elongated"])
def test_shape_mix_controls_classes(si_spots, shape):
    r = render_frame(si_spots, RenderConfig(shape_mix={shape: 1.0}, obliquity=False), rng=3)
    assert (r.truth["shape"] == shape).all()
    t = r.truth
    if shape == "split":
        assert (np.hypot(t["split_d_row"], t["split_d_col"]) >= 1.2).all()
    if shape == "streaked":
        assert (t["streak_length"] >= 3).all()
        # the streak runs along the depth direction computed from the geometry
        assert np.allclose(np.hypot(t["streak_dir_row"], t["streak_dir_col"]), 1)
    if shape == "elongated":
        assert (t["w_major"] / t["w_minor"] >= 1.9).all()


def test_oblique_incidence_widens_spots_away_from_the_centre(si_spots, bm32_calibration):
    cal, _ = bm32_calibration
    r = render_frame(si_spots, RenderConfig(shape_mix="clean", sigma_spread=0.0), rng=4)
    t = r.truth
    radius = np.hypot(t["row"] - (cal.ycen - 1), t["col"] - (cal.xcen - 1))
    inner, outer = t.loc[radius < 400, "w_major"], t.loc[radius > 800, "w_major"]
    assert len(inner) > 5 and len(outer) > 5
    assert outer.median() > 1.15 * inner.median()
    # minor widths are not stretched
    assert t["w_minor"].max() < 1.3 * t["w_minor"].min() + 0.2
    flat = render_frame(si_spots, RenderConfig(shape_mix="clean", sigma_spread=0.0, obliquity=False), rng=4)
    assert np.ptp(flat.truth.loc[flat.truth["shape"] == "gaussian", "w_minor"]) < 0.5


def test_empty_spot_list_gives_background_only():
    empty = pd.DataFrame({"row": [], "col": [], "intensity": []})
    r = render_frame(empty, rng=0, frame_shape=(64, 80))
    assert r.frame.shape == (64, 80) and len(r.truth) == 0
    assert r.frame.max() < 1100


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape_mix": "glitter"}, "unknown shape mix"),
        ({"shape_mix": {"blob": 1.0}}, "unknown spot shape"),
        ({"shape_mix": {"gaussian": -1.0}}, "weights"),
        ({"gain": 0.0}, "gain"),
        ({"pedestal": 70000.0}, "saturation"),
        ({"sigma_median": float("nan")}, "sigma_median"),
    ],
)
def test_bad_render_config(kwargs, match):
    with pytest.raises(SettingsError, match=match):
        RenderConfig(**kwargs)


def test_bad_spot_list():
    with pytest.raises(SettingsError, match="lacks"):
        render_frame(pd.DataFrame({"row": [1.0]}))
    with pytest.raises(SettingsError, match="finite"):
        render_frame(pd.DataFrame({"row": [np.nan], "col": [1.0], "intensity": [1.0]}))


@pytest.mark.slow
def test_spot_analysis_recovers_the_truth(si_spots):
    """laue_live.analyze_frame finds the simulated spots where the truth puts them."""
    from laue_live.describe import analyze_frame

    r = render_frame(si_spots, RenderConfig(shape_mix="clean"), rng=0)
    table = analyze_frame(r.frame)
    t = r.truth
    d = np.hypot(
        table["row"].to_numpy()[:, None] - t["row"].to_numpy()[None],
        table["col"].to_numpy()[:, None] - t["col"].to_numpy()[None],
    )
    nearest, which = d.min(axis=1), d.argmin(axis=1)
    matched = nearest < 2
    # measured: 110 simulated spots, 110 table rows, each within 2 px of a spot and every spot found
    assert len(table) == len(t) == 110 and matched.all() and (d.min(axis=0) < 2).all()
    gauss = matched & (t["shape"].to_numpy()[which] == "gaussian") & table["good"].to_numpy()
    err = nearest[gauss]
    d_row = (table["row"].to_numpy() - t["row"].to_numpy()[which])[gauss]
    d_col = (table["col"].to_numpy() - t["col"].to_numpy()[which])[gauss]
    msg = (f"{gauss.sum()} good Gaussian spots: median error {np.median(err):.4f} px, "
           f"mean (row, col) {d_row.mean():+.4f} {d_col.mean():+.4f} px")
    # measured: 85 spots, median 0.0047 px, signed mean -0.0002 (row) +0.0015 (col) px
    assert gauss.sum() >= 57 and np.median(err) < 0.007, msg
    assert abs(d_row.mean()) < 0.0022 and abs(d_col.mean()) < 0.0022, msg
