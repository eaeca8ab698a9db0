"""Cutouts and their pixel masks at the frame's edges, checked pixel by pixel against a plain loop.

A cutout that crosses the frame's edge is padded with the median of its usable pixels; a masked
detector pixel is filled the same way and flagged in the cutout's pixel mask, where padding is never
flagged. The reference below does it one pixel at a time; masked pixels sit on the first and last
rows and columns, where an off-by-one in a bound or a clip shows.
"""

from __future__ import annotations

import numpy as np
import pytest

from laue_live import FrameError
from laue_live.spots import check_peaks, cutout_edge_mask, cutout_pixel_mask, extract_cutouts

H, W = 40, 44
MASKED = [(0, 5), (39, 7), (10, 0), (12, 43), (20, 20)]
# top, bottom, left and right edges, one inside the frame, one at the frame's last column
PEAKS = [(3, 5), (37, 7), (10, 2), (12, 41), (20, 22), (26, 30)]


def _frame_and_mask():
    frame = np.random.default_rng(5).uniform(900, 1100, (H, W)).astype(np.float32)
    mask = np.zeros((H, W), dtype=bool)
    for r, c in MASKED:
        mask[r, c] = True
    return frame, mask


def _reference(frame, mask, peaks, size):
    """Cutouts, pixel masks and edge flags one pixel at a time."""
    half = size // 2
    cuts, masks, edges = [], [], []
    for r0, c0 in peaks:
        vals = np.full((size, size), np.nan)
        pm = np.zeros((size, size), dtype=bool)
        edge = False
        for i in range(size):
            for j in range(size):
                r, c = r0 - half + i, c0 - half + j
                if 0 <= r < frame.shape[0] and 0 <= c < frame.shape[1]:
                    pm[i, j] = mask is not None and mask[r, c]
                    if not pm[i, j]:
                        vals[i, j] = frame[r, c]
                else:
                    edge = True
        fill = np.float32(np.nanmedian(vals))
        cuts.append(np.where(np.isnan(vals), fill, vals).astype(np.float32))
        masks.append(pm)
        edges.append(edge)
    return np.array(cuts), np.array(masks), np.array(edges)


@pytest.mark.parametrize("size", [32, 8])
def test_cutouts_and_pixel_masks_equal_a_pixel_by_pixel_reference(size):
    frame, mask = _frame_and_mask()
    ref_cut, ref_mask, ref_edge = _reference(frame, mask, PEAKS, size)
    assert ref_mask.any(axis=(1, 2)).sum() >= 3  # the masked pixels do reach cutouts
    np.testing.assert_array_equal(cutout_edge_mask(frame.shape, PEAKS, size), ref_edge)
    np.testing.assert_array_equal(cutout_pixel_mask(mask, PEAKS, size), ref_mask)
    cut = extract_cutouts(frame, PEAKS, size, mask=mask)
    assert cut.dtype == np.float32 and cut.shape == (len(PEAKS), size, size)
    np.testing.assert_array_equal(cut, ref_cut)
    # without a mask: only the padding is filled
    no_mask = _reference(frame, None, PEAKS, size)[0]
    np.testing.assert_array_equal(extract_cutouts(frame, PEAKS, size), no_mask)
    assert cutout_pixel_mask(None, PEAKS, size) is None


def test_odd_cutout_sizes_are_centred_on_the_peak():
    # size 5 around (2, 2): rows 0..4, inside a 10 x 10 frame; size 6 (half 3): rows -1..4, outside
    assert cutout_edge_mask((10, 10), [[2, 2]], 5).tolist() == [False]
    assert cutout_edge_mask((10, 10), [[2, 2]], 6).tolist() == [True]
    assert cutout_edge_mask((10, 10), [[7, 7]], 5).tolist() == [False]
    assert cutout_edge_mask((10, 10), [[8, 7]], 5).tolist() == [True]


def test_peaks_at_and_beyond_the_last_row_and_column():
    frame, _ = _frame_and_mask()
    assert extract_cutouts(frame, [[H - 1, W - 1]]).shape == (1, 32, 32)
    for p in ([H, 3], [3, W], [-1, 3], [3, -1]):
        with pytest.raises(FrameError) as e:
            extract_cutouts(frame, [p])
        assert str(e.value) == f"peak position(s) outside the frame of shape ({H}, {W})"
    with pytest.raises(FrameError) as e:
        extract_cutouts(np.zeros((2, 3, 4)), [[1, 1]])
    assert str(e.value) == "frame must be 2D, got shape (2, 3, 4)"
    empty = extract_cutouts(frame, [])
    assert empty.shape == (0, 32, 32) and empty.dtype == np.float32


def test_check_peaks_types_rounding_and_refusals():
    for empty in ([], np.zeros((0, 2)), np.zeros((0,), dtype=np.float64)):
        p = check_peaks(empty)
        assert p.shape == (0, 2) and p.dtype == np.int64
    p = check_peaks([[1.4, 2.6], [3.5, -0.4]])
    assert p.dtype == np.int64 and p.tolist() == [[1, 3], [4, 0]]  # rint: halves to even
    assert check_peaks(np.array([[1, 2]], dtype=np.uint16)).dtype == np.int64
    for bad, line in (([[np.nan, 1.0]], "peaks hold NaN or infinite positions"),
                      ([[np.inf, 1.0]], "peaks hold NaN or infinite positions"),
                      ([1, 2, 3], "peaks must have shape (N, 2) of (row, col), got (3,)"),
                      ([["a", "b"]], "peaks must be integer (row, col), got dtype <U1"),
                      ([[True, False]], "peaks must be integer (row, col), got dtype bool")):
        with pytest.raises(FrameError) as e:
            check_peaks(bad)
        assert str(e.value) == line
