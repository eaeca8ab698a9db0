from __future__ import annotations

import numpy as np
import pytest

from laue_live import FrameError
from laue_live.spots import cutout_edge_mask, estimate_background, extract_cutouts, find_peaks


def _frame(spots, shape=(300, 280), seed=0, gradient=True):
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    # like the sCMOS: a ~1000 ADU offset with ~3 ADU read noise, Poisson counts on top
    sig = 20 + (0.2 * rr + 0.1 * cc if gradient else 0)
    for r, c, h, s in spots:
        sig += h * np.exp(-0.5 * ((rr - r) ** 2 + (cc - c) ** 2) / s**2)
    img = 980 + rng.poisson(sig) + rng.normal(0, 3, sig.shape)
    return np.clip(np.rint(img), 0, 65535).astype(np.uint16)


SPOTS = [(40.3, 50.7, 5000, 1.0), (150.0, 200.2, 800, 1.5), (250.6, 30.1, 20000, 0.8),
         (100.2, 100.4, 300, 2.0), (5.2, 270.1, 3000, 1.0)]


def test_finds_each_spot_brightest_pixel():
    frame = _frame(SPOTS)
    p = find_peaks(frame)
    assert p.dtype == np.int64 and p.shape == (len(SPOTS), 2)
    truth = np.array([(r, c) for r, c, _, _ in SPOTS])
    for r, c in truth:
        d = np.hypot(*(p - (r, c)).T).min()
        assert d <= 1.0
    # brightest first, and each peak is the brightest pixel of its neighbourhood
    vals = frame[p[:, 0], p[:, 1]]
    assert (np.diff(vals.astype(int)) <= 0).all()
    for r, c in p:
        win = frame[max(r - 2, 0):r + 3, max(c - 2, 0):c + 3]
        assert frame[r, c] == win.max()


def test_threshold_min_pixels_and_merge():
    frame = _frame(SPOTS, seed=1)
    frame[200, 200] = 5000  # isolated hot pixel: one pixel above threshold
    p = find_peaks(frame)
    assert not ((p[:, 0] == 200) & (p[:, 1] == 200)).any()
    assert ((find_peaks(frame, min_pixels=1) == (200, 200)).all(axis=1)).any()
    # a high threshold (in noise sigmas: ~6-10 ADU here) keeps only the bright ones
    assert len(find_peaks(frame, threshold=200)) == 3
    # two spots 5 px apart with a gap between: two components, merged into the brighter
    pair = _frame([(60, 60, 3000, 0.6), (60, 65, 2000, 0.6)], gradient=False, seed=2)
    assert len(find_peaks(pair, merge_radius=0)) == 2
    assert len(find_peaks(pair)) == 2  # default radius 4 px keeps them apart
    merged = find_peaks(pair, merge_radius=6)
    assert merged.tolist() == [[60, 60]]


def test_background_and_noise_follow_gradient_not_spots():
    frame = _frame(SPOTS, seed=3)
    bg, noise = estimate_background(frame, 16)
    assert bg.shape == noise.shape == (19, 18)
    rr = (np.arange(19) * 16 + 7.5)[:, None]
    cc = (np.arange(18) * 16 + 7.5)[None, :]
    expected = 1000 + 0.2 * rr + 0.1 * cc
    err = np.abs(bg - expected)
    # the corner block (0, 17) has 4 neighbours, two of them touched by the spot at (5, 270)
    err[0, 17] = 0
    assert err[1:-1, 1:-1].max() < 3.5  # measured 2.4 ADU (noise ~8 ADU)
    assert err.max() < 7  # measured 4.8 ADU: edge blocks have no outer neighbours to balance the gradient
    ratio = noise / np.sqrt(20 + 0.2 * rr + 0.1 * cc + 9)  # Poisson + 3 ADU read noise
    assert 0.85 < np.median(ratio) < 1.15  # measured 1.00
    assert np.percentile(ratio, 2) > 0.8  # measured 0.93


def test_cutout_windows_and_edges():
    frame = np.arange(100 * 90, dtype=np.uint16).reshape(100, 90)
    peaks = np.array([[50, 40], [3, 40], [99, 89]])
    cut = extract_cutouts(frame, peaks)
    assert cut.shape == (3, 32, 32) and cut.dtype == np.float32
    assert np.array_equal(cut[0], frame[34:66, 24:56])
    assert cut[0, 16, 16] == frame[50, 40]
    edge = cutout_edge_mask(frame.shape, peaks)
    assert edge.tolist() == [False, True, True]
    # rows above the frame are padded with the median of the in-frame pixels of that cutout
    inside = frame[0:19, 24:56].astype(np.float32)
    assert np.array_equal(cut[1, 13:], inside)
    assert (cut[1, :13] == np.median(inside)).all()
    assert cut[2, 16, 16] == frame[99, 89]
    assert (cut[2, 17:, :] == cut[2, 17, 0]).all()
    # exact bounds: s - 16 >= 0 and s + 15 <= size - 1 is not an edge
    assert cutout_edge_mask((100, 90), [[16, 16], [84, 74], [15, 16], [85, 74]]).tolist() == [
        False, False, True, True]


def test_cutout_peak_errors():
    frame = np.zeros((64, 64), np.uint16)
    assert extract_cutouts(frame, np.zeros((0, 2), int)).shape == (0, 32, 32)
    assert extract_cutouts(frame, []).shape == (0, 32, 32)
    with pytest.raises(FrameError, match="outside"):
        extract_cutouts(frame, [[64, 3]])
    with pytest.raises(FrameError, match=r"\(N, 2\)"):
        extract_cutouts(frame, [[1, 2, 3]])
    with pytest.raises(FrameError, match="NaN"):
        extract_cutouts(frame, [[np.nan, 3.0]])


def test_sparse_components_equal_ndimage_label():
    from scipy import ndimage as ndi

    from laue_live.spots._peaks import _components

    rng = np.random.default_rng(0)
    for density in (0.05, 0.2, 0.45, 0.7):
        m = rng.random((61, 73)) < density
        m[:, -1] |= rng.random(61) < 0.5  # exercise the column wrap-around guards
        m[:, 0] |= rng.random(61) < 0.5
        lab, n = ndi.label(m, structure=np.ones((3, 3), bool))
        idx = np.flatnonzero(m)
        ours = _components(idx, *m.shape)
        # the same partition of the masked pixels: a one-to-one map between the two labelings
        assert len(set(zip(lab.ravel()[idx], ours, strict=True))) == n == len(set(ours))
