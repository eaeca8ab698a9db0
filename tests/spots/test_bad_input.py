"""Bad input: a clear FrameError or an empty schema table, never a crash deep inside numpy."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from laue_live import FrameError, ModelError
from laue_live._schema import spot_column_names
from laue_live.describe import analyze_frame, analyze_frames, characterize
from laue_live.spots import find_peaks, validate_frame


def _spot_frame(shape=(128, 128)):
    rng = np.random.default_rng(0)
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    spot = 8000 * np.exp(-0.5 * ((rr - 60.3) ** 2 + (cc - 70.6) ** 2) / 1.2**2)
    img = 1000 + rng.normal(0, 3, shape) + spot
    return np.rint(img).astype(np.uint16)


@pytest.mark.parametrize("frame, match", [
    (np.zeros((64, 64), dtype=bool), "bool"),
    (np.zeros((64, 64), dtype=np.complex64), "complex"),
    (np.array([["a"] * 64] * 64), "dtype"),
    (np.empty((64, 64), dtype=object), "dtype"),
    (np.zeros((64, 64, 3), np.uint16), "2D"),
    (np.zeros((1, 64, 64), np.uint16), "squeeze"),
    (np.zeros(4096, np.uint16), "2D"),
    (np.zeros((10, 64), np.uint16), "too small"),
    (np.zeros((0, 0), np.uint16), "too small"),
    (None, "None"),
])
def test_validate_frame_refuses(frame, match):
    with pytest.raises(FrameError, match=match):
        validate_frame(frame)
    with pytest.raises(FrameError, match=match):
        analyze_frame(frame)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_refused(bad):
    f = _spot_frame().astype(np.float32)
    f[3, 4] = bad
    with pytest.raises(FrameError, match="NaN"):
        analyze_frame(f)
    with pytest.raises(FrameError, match="NaN"):
        find_peaks(f)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.uint8, np.float32, np.float64, np.int64])
def test_integer_and_float_frames_accepted(dtype):
    f = _spot_frame()
    if dtype == np.uint8:
        f = (f // 64).astype(np.uint8)  # 1000 / 64 ~ 15, spot ~ 140: still above a scaled threshold
        t = analyze_frame(f, peak_params={"threshold": 20})
    else:
        t = analyze_frame(f.astype(dtype))
    assert len(t) == 1
    assert abs(t["row"][0] - 60.3) < 0.1 and abs(t["col"][0] - 70.6) < 0.1
    assert validate_frame([[1] * 40] * 40).shape == (40, 40)  # lists are arrays too


@pytest.mark.parametrize("value", [0, 1000, 65535])
def test_constant_and_saturated_frames_give_empty_table(value, caplog):
    f = np.full((256, 256), value, np.uint16)
    with caplog.at_level(logging.WARNING, logger="laue_live.spots"):
        t = analyze_frame(f, frame_number=7)
    assert len(t) == 0 and list(t.columns) == spot_column_names()
    assert any("saturated" in r.message or "constant" in r.message for r in caplog.records)


def test_all_saturated_float_frame_and_spotless_noise(caplog):
    t = analyze_frame(np.full((100, 100), 70000.0))
    assert len(t) == 0
    rng = np.random.default_rng(1)
    with caplog.at_level(logging.WARNING, logger="laue_live.spots"):
        t = analyze_frame(np.rint(1000 + rng.normal(0, 3, (200, 200))).astype(np.uint16))
    assert len(t) == 0 and list(t.columns) == spot_column_names()
    assert any("no peaks" in r.message for r in caplog.records)


def test_empty_peak_list_gives_empty_table():
    f = _spot_frame()
    for empty in ([], np.zeros((0, 2), np.int64)):
        t = analyze_frame(f, peaks=empty)
        assert len(t) == 0 and list(t.columns) == spot_column_names()
        assert str(t["row"].dtype) == "float64"
    with pytest.raises(FrameError, match="outside"):
        analyze_frame(f, peaks=[[500, 3]])
    with pytest.raises(FrameError, match=r"\(N, 2\)"):
        analyze_frame(f, peaks=[1, 2, 3])


def test_analyze_frames_mixed_and_errors():
    f = _spot_frame()
    tabs = analyze_frames([f, np.full((64, 64), 1000, np.uint16), f], frame_numbers=[10, 11, 12])
    assert [len(t) for t in tabs] == [1, 0, 1]
    assert tabs[2]["frame"].tolist() == [12]
    assert tabs[0].drop(columns="frame").equals(tabs[2].drop(columns="frame"))
    with pytest.raises(FrameError):
        analyze_frames([f, np.zeros((64, 64), bool)])
    with pytest.raises(ValueError, match="frame numbers"):
        analyze_frames([f], frame_numbers=[1, 2])
    with pytest.raises(ValueError, match="unknown method"):
        analyze_frame(f, method="magic")
    with pytest.raises(ValueError, match="unknown method"):
        analyze_frame(np.full((64, 64), 5, np.uint16), method="magic")


def test_cutout_input_errors():
    with pytest.raises(FrameError, match="shape"):
        characterize(np.zeros((2, 32, 16), np.float32))
    bad = np.zeros((1, 32, 32), np.float32)
    bad[0, 1, 1] = np.nan
    with pytest.raises(FrameError, match="NaN"):
        characterize(bad)
    with pytest.raises(FrameError, match="real numbers"):
        characterize(np.zeros((1, 32, 32), bool))


def test_cnn_method_without_cnn_package_is_a_model_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "laue_live.cnn", None)  # inject: package not importable
    with pytest.raises(ModelError, match="laue_live.cnn"):
        characterize(np.zeros((1, 32, 32), np.float32), method="cnn")
