"""The peak search at its edges: the threshold exactly, partial blocks, the noise floor, masks.

On a flat frame the local background and noise are known exactly (100 ADU, noise at its floor of
1 ADU, so the level is 107 ADU with the default threshold of 7): a pixel at the level is not above
it, one ADU more is, in the whole blocks and in the partial strips at the bottom and right edges.
Spots sit on odd rows, which the block statistics (every other row) do not read.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from laue_live.spots import estimate_background, find_peaks

# (40, 44) with 16 px blocks: whole blocks, a bottom strip (rows 32-39), a right strip (cols 32-43)
# and a corner; one two-pixel spot in each
PAIRS = [(11, 10), (37, 10), (11, 36), (37, 38)]


def _flat(value_of_spots: float, dtype=np.uint16, shape=(40, 44)) -> np.ndarray:
    frame = np.full(shape, 100, dtype=dtype)
    for r, c in PAIRS:
        frame[r, c] = frame[r, c + 1] = value_of_spots
    return frame


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32])
def test_a_pixel_at_the_level_is_not_above_it_in_blocks_and_strips(dtype):
    bg, noise = estimate_background(_flat(107, dtype))
    assert bg.shape == (3, 3) and (bg == 100).all() and (noise == 1).all()
    assert find_peaks(_flat(107, dtype)).shape == (0, 2)
    found = find_peaks(_flat(108, dtype))
    assert sorted(found.tolist()) == sorted([r, c] for r, c in PAIRS)  # ties: the lower flat index


def test_default_block_noise_floor_and_threshold():
    frame = np.full((48, 50), 100, dtype=np.uint16)
    bg, noise = estimate_background(frame)
    assert bg.shape == (3, 4) and (noise == 1.0).all()  # 16 px blocks, a floor of 1 ADU
    assert (estimate_background(frame, min_noise=2.5)[1] == 2.5).all()
    frame[21, 20] = frame[21, 21] = 110  # 10 ADU: above 7 floors of 1 ADU, below 7 floors of 2
    assert find_peaks(frame).tolist() == [[21, 20]]
    assert find_peaks(frame, min_noise=2.0).shape == (0, 2)
    assert find_peaks(frame, threshold=9.5).tolist() == [[21, 20]]
    assert find_peaks(frame, threshold=10).shape == (0, 2)


def test_one_candidate_pixel_is_one_peak():
    frame = np.full((48, 50), 100, dtype=np.uint16)
    frame[21, 30] = 5000
    assert find_peaks(frame, min_pixels=1).tolist() == [[21, 30]]
    assert find_peaks(frame).shape == (0, 2)  # a lone pixel is no spot by default


def test_masked_pixels_leave_the_background_and_integer_masks_count_as_bool():
    frame = np.full((64, 64), 100, dtype=np.uint16)
    frame[:48, :32] = 5000  # a bright region, masked
    mask = np.zeros(frame.shape, dtype=bool)
    mask[:48, :32] = True
    bg_unmasked, _ = estimate_background(frame)
    bg, noise = estimate_background(frame, mask=mask)
    assert bg_unmasked.max() == 5000
    assert np.isfinite(bg).any() and (bg[np.isfinite(bg)] == 100).all()
    for other in (mask.astype(np.uint8), mask.astype(np.int64)):
        b, n = estimate_background(frame, mask=other)
        np.testing.assert_array_equal(b, bg)
        np.testing.assert_array_equal(n, noise)
    frame[30, 40] = frame[31, 40] = 400  # a spot outside the mask
    for m in (mask, mask.astype(np.uint8)):
        assert find_peaks(frame, mask=m).tolist() == [[30, 40]]


def test_where_no_block_has_usable_pixels_nothing_is_a_peak():
    # every pixel masked but bright pairs on odd rows: no block has statistics, the level is
    # infinite there, and the pairs (which would be spots against any finite level) are not peaks
    frame = np.full((64, 64), 100, dtype=np.uint16)
    mask = np.ones(frame.shape, dtype=bool)
    for r in range(1, 64, 8):
        for c in range(0, 64, 8):
            frame[r, c] = frame[r, c + 1] = 5000
            mask[r, c] = mask[r, c + 1] = False
    bg, noise = estimate_background(frame, mask=mask)
    assert np.isnan(bg).all() and np.isnan(noise).all()
    assert find_peaks(frame, mask=mask).shape == (0, 2)


def test_an_all_saturated_frame_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="laue_live.spots._peaks"):
        assert find_peaks(np.full((32, 32), 65535, dtype=np.uint16)).shape == (0, 2)
        assert find_peaks(np.full((32, 32), 4095, dtype=np.uint16), saturation=4095).shape == (0, 2)
        assert find_peaks(np.full((32, 32), 4095, dtype=np.uint16), saturation=None).shape == (0, 2)
    assert [r.getMessage() for r in caplog.records] == [
        "all-saturated frame (every pixel >= 65535 ADU): no peaks",
        "all-saturated frame (every pixel >= 4095 ADU): no peaks",
    ]
