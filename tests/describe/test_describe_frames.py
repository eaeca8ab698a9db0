"""Frame analysis takes its steps as plain callables; the root package lists every public name once."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

import laue_live
from laue_live.describe import analyze_frames, describe_frames
from laue_live.spots import fit_descriptors


def test_describe_frames_takes_plain_callables(bm32_frame):
    frames = [bm32_frame[:320], np.full((64, 64), 1000, np.uint16), bm32_frame[320:]]
    calls, seen = [], []

    def describe(cutouts):  # the exact fit, as any user's describer would be
        calls.append(len(cutouts))
        return fit_descriptors(cutouts)

    def doubles(cutouts, table):
        seen.append((len(cutouts), len(table)))
        return table

    tables = describe_frames(frames, describe, frame_numbers=[5, 6, 7], doubles=doubles)
    ref = analyze_frames(frames, "fit", frame_numbers=[5, 6, 7])
    assert [len(t) for t in ref][1] == 0 and min(len(ref[0]), len(ref[2])) > 5  # measured 9 and 12
    # one call for the cutouts of all frames (rows of one spot are merged after it)
    assert len(calls) == 1 and calls[0] >= sum(len(t) for t in ref)
    assert seen == [(len(t), len(t)) for t in ref if len(t)]  # once per frame that has spots
    for t, r in zip(tables, ref, strict=True):
        pd.testing.assert_frame_equal(t, r, check_exact=True)
        assert t.attrs == r.attrs


def test_root_exports_each_name_once_and_imports_cheaply():
    names = laue_live.__all__
    assert len(names) == len(set(names))
    for name in ("analyze_frame", "analyze_frames", "characterize", "is_good_spot", "SPOT_COLUMNS",
                 "LaueLiveError", "FrameError", "ModelError", "SettingsError"):
        assert name in names and getattr(laue_live, name) is not None, name
    assert issubclass(laue_live.FrameError, laue_live.LaueLiveError)
    code = "import sys, laue_live; print(sorted({'numpy', 'pandas', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # every science name is imported on first use
