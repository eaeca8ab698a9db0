"""The peak-search settings at their edges, and prepare_frame's branches (issue 16's mutation run).

``check_peak_params`` is what a beamline scientist's ``--peak-params`` or detector profile meets:
every bound is checked on both sides and every refusal's line read in full, so a bound moved, a
``>=`` turned into ``>`` or a message garbled fails here. ``prepare_frame`` is checked on each of its
branches (given peaks, all saturated, constant, no peak, masked pixels) for what it returns and logs.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from laue_live import SettingsError
from laue_live.spots import (
    DEFAULT_PEAK_PARAMS,
    FrameCorrections,
    PreparedFrame,
    check_peak_params,
    find_peaks,
    prepare_frame,
)


def test_defaults_are_complete_and_typed():
    for given in (None, {}):
        p = check_peak_params(given)
        assert p == {"threshold": 7.0, "block": 16, "min_pixels": 2, "merge_radius": 4.0,
                     "min_noise": 1.0, "saturation": 65535.0}
        assert p == DEFAULT_PEAK_PARAMS
        assert {k: type(v) for k, v in p.items()} == {
            "threshold": float, "block": int, "min_pixels": int, "merge_radius": float,
            "min_noise": float, "saturation": float}


def test_given_values_are_typed_and_the_callers_dict_kept():
    given = {"threshold": 5, "block": 8.0, "min_pixels": "3", "merge_radius": 0, "min_noise": "0.5",
             "saturation": None}
    before = dict(given)
    p = check_peak_params(given)
    assert given == before
    assert p == {"threshold": 5.0, "block": 8, "min_pixels": 3, "merge_radius": 0.0, "min_noise": 0.5,
                 "saturation": None}
    assert type(p["threshold"]) is float and type(p["block"]) is int and type(p["min_pixels"]) is int
    assert type(p["merge_radius"]) is float and type(p["min_noise"]) is float
    assert check_peak_params({"saturation": 4095})["saturation"] == 4095.0


# the lowest accepted value of each parameter, and the highest refused one with its line
EDGES = [
    ("threshold", 1e-9, 0, "peak parameter threshold must be > 0.0, got 0.0"),
    ("block", 4, 2, "peak parameter block must be >= 4, got 2"),
    ("min_pixels", 1, 0, "peak parameter min_pixels must be >= 1, got 0"),
    ("merge_radius", 0, -1e-9, "peak parameter merge_radius must be >= 0.0, got -1e-09"),
    ("min_noise", 1e-9, 0, "peak parameter min_noise must be > 0.0, got 0.0"),
    ("saturation", 1e-9, 0, "peak parameter saturation must be > 0.0, got 0.0"),
]


@pytest.mark.parametrize(("name", "lowest", "refused", "line"), EDGES, ids=[e[0] for e in EDGES])
def test_each_bound_on_both_sides(name, lowest, refused, line):
    assert check_peak_params({name: lowest})[name] == lowest
    with pytest.raises(SettingsError) as e:
        check_peak_params({name: refused})
    assert str(e.value) == line


@pytest.mark.parametrize("name", ["threshold", "merge_radius", "min_noise", "saturation"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_are_refused(name, value):
    with pytest.raises(SettingsError) as e:
        check_peak_params({name: value})
    assert str(e.value).startswith(f"peak parameter {name} must be ")
    assert str(e.value).endswith(f", got {value!r}")


@pytest.mark.parametrize(("name", "value", "line"), [
    ("block", 8.5, "peak parameter block must be an integer, got 8.5"),
    ("min_pixels", "two", "peak parameter min_pixels must be an integer, got 'two'"),
    ("min_pixels", True, "peak parameter min_pixels must be an integer, got True"),
    ("threshold", "high", "peak parameter threshold must be a number, got 'high'"),
    ("threshold", False, "peak parameter threshold must be a number, got False"),
    ("merge_radius", [4], "peak parameter merge_radius must be a number, got [4]"),
    ("min_noise", None, "peak parameter min_noise must be a number, got None"),
    ("block", 9, "peak parameter block must be even, got 9"),
])
def test_wrong_types_are_one_line_naming_the_parameter(name, value, line):
    with pytest.raises(SettingsError) as e:
        check_peak_params({name: value})
    assert str(e.value) == line
    assert check_peak_params({"block": 10})["block"] == 10


def test_unknown_names_are_listed_with_the_known_ones():
    with pytest.raises(SettingsError) as e:
        check_peak_params({"treshold": 3, "blocks": 8})
    assert str(e.value) == (
        "unknown peak parameter(s) ['blocks', 'treshold']; known: "
        "['block', 'merge_radius', 'min_noise', 'min_pixels', 'saturation', 'threshold']")


def _frame(shape=(96, 80), seed=0):
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    sig = np.full(shape, 30.0)
    for r, c, h in ((30.2, 40.6, 4000), (70.4, 12.3, 2500)):
        sig += h * np.exp(-0.5 * ((rr - r) ** 2 + (cc - c) ** 2) / 1.2**2)
    return np.clip(np.rint(1000 + rng.poisson(sig)), 0, 65535).astype(np.uint16)


def test_prepare_frame_searches_peaks_and_cuts_them_out():
    frame = _frame()
    pf = prepare_frame(frame)
    assert isinstance(pf, PreparedFrame)
    assert pf.peaks.tolist() == find_peaks(frame).tolist() == [[30, 41], [70, 12]]
    assert pf.cutouts.shape == (2, 32, 32) and pf.cutouts.dtype == np.float32
    # the cutout holds the frame's pixels, the peak at (16, 16)
    assert pf.cutouts[0, 16, 16] == frame[30, 41]
    assert np.array_equal(pf.cutouts[0], frame[14:46, 25:57].astype(np.float32))
    assert pf.edge.tolist() == [False, True]  # col 12 is 4 px from the cutout's 16
    assert pf.pixel_mask is None and pf.mask is None and pf.masked.tolist() == [False, False]
    assert pf.shape == (96, 80)
    # the parameters reach the search
    assert len(prepare_frame(frame, peak_params={"threshold": 500}).peaks) == 1
    with pytest.raises(SettingsError, match="unknown peak parameter"):
        prepare_frame(frame, peak_params={"thresold": 5})


def test_prepare_frame_with_given_peaks_applies_the_corrections():
    frame = _frame()
    dark = np.full(frame.shape, 1000.0)
    pf = prepare_frame(frame, peaks=[[30, 41], [2, 3]], corrections=FrameCorrections(dark=dark))
    assert pf.peaks.tolist() == [[30, 41], [2, 3]] and pf.peaks.dtype == np.int64
    assert pf.cutouts[0, 16, 16] == pytest.approx(float(frame[30, 41]) - 1000.0)
    assert pf.edge.tolist() == [False, True]
    # given peaks on a constant or saturated frame are still cut out
    flat = np.full((40, 40), 65535, dtype=np.uint16)
    assert prepare_frame(flat, peaks=[[20, 20]]).peaks.tolist() == [[20, 20]]


def test_prepare_frame_masked_pixels_reach_the_cutouts():
    frame = _frame()
    mask = np.zeros(frame.shape, dtype=bool)
    mask[33, 44] = True  # inside the first cutout only
    pf = prepare_frame(frame, corrections=FrameCorrections(mask=mask))
    assert pf.mask is not None and pf.mask[33, 44]
    assert pf.pixel_mask is not None and pf.pixel_mask.shape == (2, 32, 32)
    assert pf.pixel_mask[0, 19, 19] and pf.pixel_mask.sum() == 1
    assert pf.masked.tolist() == [True, False]
    # the masked pixel is filled with the median of the cutout's other pixels, not its own value
    others = np.delete(frame[14:46, 25:57].astype(np.float32).ravel(), 19 * 32 + 19)
    assert pf.cutouts[0, 19, 19] == np.float32(np.median(others)) != frame[33, 44]
    # a mask that touches no cutout leaves no pixel mask
    far = np.zeros(frame.shape, dtype=bool)
    far[0, 79] = True
    assert prepare_frame(frame, corrections=FrameCorrections(mask=far)).pixel_mask is None


def test_prepare_frame_masked_spot_is_no_peak_and_hot_pixels_follow_the_saturation():
    frame = _frame()
    mask = np.zeros(frame.shape, dtype=bool)
    mask[66:75, 8:17] = True  # the whole second spot
    assert prepare_frame(frame, corrections=FrameCorrections(mask=mask)).peaks.tolist() == [[30, 41]]
    # an isolated pixel at the detector's saturation is masked as hot: the automatic mask uses the
    # saturation of the peak parameters
    frame[50, 60] = 20000
    pf = prepare_frame(frame, peak_params={"saturation": 20000})
    assert pf.mask is not None and pf.mask[50, 60] and pf.mask.sum() == 1
    assert prepare_frame(frame).mask is None  # 20000 ADU is no saturation for a 16-bit detector


def test_prepare_frame_logs_frame_0_by_default(caplog):
    with caplog.at_level(logging.WARNING, logger="laue_live.spots._prepare"):
        prepare_frame(np.full((40, 40), 7, dtype=np.uint16))
    line = "frame 0 is constant (7 ADU everywhere): empty spot table"
    assert [r.getMessage() for r in caplog.records] == [line]


@pytest.mark.parametrize(("frame", "params", "line"), [
    (np.full((40, 40), 65535, dtype=np.uint16), None,
     "frame 7 is all saturated (every pixel >= 65535 ADU): empty spot table"),
    (np.full((40, 40), 4095, dtype=np.uint16), {"saturation": 4095},
     "frame 7 is all saturated (every pixel >= 4095 ADU): empty spot table"),
    (np.full((40, 40), 1000, dtype=np.uint16), None,
     "frame 7 is constant (1000 ADU everywhere): empty spot table"),
    (np.full((40, 40), 65535, dtype=np.uint16), {"saturation": None},
     "frame 7 is constant (65535 ADU everywhere): empty spot table"),
    (np.random.default_rng(0).poisson(1000, (64, 64)).astype(np.uint16), None,
     "frame 7: no peaks above threshold: empty spot table"),
])
def test_prepare_frame_empty_frames_say_why(caplog, frame, params, line):
    with caplog.at_level(logging.WARNING, logger="laue_live.spots._prepare"):
        pf = prepare_frame(frame, peak_params=params, frame_number=7)
    assert pf.peaks.shape == (0, 2) and pf.peaks.dtype == np.int64
    assert pf.cutouts.shape == (0, 32, 32) and pf.edge.shape == (0,) and pf.masked.shape == (0,)
    assert [r.getMessage() for r in caplog.records if r.name == "laue_live.spots._prepare"] == [line]
