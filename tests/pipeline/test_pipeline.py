"""FramePipeline on the CPU device gives the tables of analyze_frames (fit) and of the CNN reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from laue_live._errors import FrameError, SettingsError
from laue_live._schema import spot_column_names, spot_dtypes
from laue_live.pipeline import CNNRunner, FramePipeline, cpu_has_bf16
from laue_live.spots import analyze_frames


def assert_tables_equal(ref: pd.DataFrame, out: pd.DataFrame, rtol=1e-5, atol=1e-4, skip=()):
    assert list(out.columns) == spot_column_names()
    assert dict(out.dtypes) == spot_dtypes()
    assert len(out) == len(ref)
    for c in ref.columns:
        if c in skip:
            continue
        a, b = ref[c].to_numpy(), out[c].to_numpy()
        if a.dtype.kind == "f":
            np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, equal_nan=True, err_msg=c)
        else:
            np.testing.assert_array_equal(b, a, err_msg=c)


def test_fit_matches_analyze_frames(bm32_frame, sim_frames):
    frames = [bm32_frame, sim_frames[0], sim_frames[2]]
    ref = analyze_frames(frames, "fit", frame_numbers=[5, 6, 7])
    out = FramePipeline("fit", "cpu").process(frames, frame_numbers=[5, 6, 7])
    assert len(out) == 3
    for r, o in zip(ref, out, strict=True):
        assert len(r) > 50
        assert_tables_equal(r, o)
        assert o.attrs["sim_variant"] == "background"


def test_fit_batched_and_raw_variant(sim_frames):
    frames = [sim_frames[0], sim_frames[0][::-1].copy(), sim_frames[0]]
    ref = analyze_frames(frames, "fit", sim_variant="raw")
    out = FramePipeline("fit", "cpu", batch_frames=3, sim_variant="raw").process(frames)
    for r, o in zip(ref, out, strict=True):
        assert_tables_equal(r, o)
    assert out[0]["frame"].eq(0).all() and out[2]["frame"].eq(2).all()


def test_cnn_fp32_matches_predictor(bm32_frame, sim_frames, cnn_model_file):
    frames = [bm32_frame, sim_frames[1]]
    ref = analyze_frames(frames, "cnn", model=str(cnn_model_file), device="cpu")
    pipe = FramePipeline("cnn", "cpu", model=str(cnn_model_file), precision="fp32")
    assert pipe.cnn.precision == "fp32"
    out = pipe.process(frames)
    for r, o in zip(ref, out, strict=True):
        # sigma_row/col: which axis is wider compares two float sums; a near-tie may flip
        assert_tables_equal(r, o, skip=("sigma_row", "sigma_col"))
        same = np.isclose(r.sigma_row, o.sigma_row, rtol=1e-4) & np.isclose(
            r.sigma_col, o.sigma_col, rtol=1e-4
        )
        assert same.mean() >= 0.99


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bfloat16")
def test_cnn_bf16_close_to_fp32(sim_frames, cnn_model_file):
    frames = [sim_frames[2]]
    exact = FramePipeline("cnn", "cpu", model=str(cnn_model_file), precision="fp32").process(frames)[0]
    fast = FramePipeline("cnn", "cpu", model=str(cnn_model_file), precision="bf16").process(frames)[0]
    assert fast.attrs == exact.attrs
    for c in ("sim", "asp"):
        assert np.abs(fast[c] - exact[c]).max() < 0.02, c
    assert np.abs(fast.d_row - exact.d_row).max() < 0.05  # px, Pos* * 2.2


def test_stream_yields_in_order_and_records_bad_frames(sim_frames):
    good = sim_frames[1]
    bad = np.full((10, 10), 1.0)  # too small
    pipe = FramePipeline("fit", "cpu", on_error="record", batch_frames=2)
    out = list(
        pipe.stream(iter([good, bad, good, np.array([[np.nan] * 40] * 40)]), frame_numbers=[10, 11, 12, 13])
    )
    assert len(out) == 4
    assert len(out[0]) > 20 and out[0]["frame"].eq(10).all()
    assert len(out[1]) == 0 and "too small" in out[1].attrs["error"]
    assert_tables_equal(out[0].assign(frame=12), out[2])
    assert "NaN" in out[3].attrs["error"]
    with pytest.raises(FrameError):
        FramePipeline("fit", "cpu").process([good, bad])


def test_empty_and_saturated_frames():
    frames = [np.full((64, 64), 1000, np.uint16), np.full((64, 64), 65535, np.uint16)]
    out = FramePipeline("fit", "cpu", batch_frames=2).process(frames)
    assert [len(t) for t in out] == [0, 0]
    assert list(out[0].columns) == spot_column_names()


def test_profile_records_every_stage(sim_frames):
    pipe = FramePipeline("fit", "cpu", profile=True)
    pipe.process(sim_frames[:2])
    s = pipe.summary()
    assert {"h2d", "peaks", "cutouts", "describe", "table"} <= set(s)
    assert s["peaks"]["batches"] == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        FramePipeline("magic", "cpu")
    with pytest.raises(ValueError, match="peak parameter"):
        FramePipeline("fit", "cpu", peak_params={"treshold": 3})
    if not torch.cuda.is_available():
        with pytest.raises(SettingsError, match="CUDA"):
            FramePipeline("fit", "cuda")
    with pytest.raises(ValueError, match="fp16"):
        CNNRunner(torch.device("cpu"), precision="fp16")


def test_mixed_shapes_and_dtypes_in_one_call(sim_frames):
    frames = [sim_frames[1], sim_frames[0], sim_frames[0].astype(np.float32), sim_frames[1]]
    batched = FramePipeline("fit", "cpu", batch_frames=4).process(frames)
    single = FramePipeline("fit", "cpu").process(frames)
    assert [len(t) for t in batched] == [len(t) for t in single]
    for a, b in zip(single, batched, strict=True):
        assert_tables_equal(a, b)
    assert [int(t["frame"].iloc[0]) for t in batched] == [0, 1, 2, 3]


def _shipped_model_quantizable() -> bool:
    try:
        from laue_live.cnn import get_predictor

        return bool(get_predictor(device="cpu").quantized)
    except Exception:  # no shipped model or no int8 engine
        return False


@pytest.mark.skipif(not _shipped_model_quantizable(), reason="no shipped int8-capable CNN model here")
def test_cnn_int8_default_matches_the_cnn_package(bm32_frame, sim_frames):
    frames = [bm32_frame, sim_frames[2]]
    pipe = FramePipeline("cnn", "cpu")
    assert pipe.cnn.precision == "int8"  # the CNN package's quantized network, chosen by "auto"
    ref = analyze_frames(frames, "cnn", device="cpu")
    for r, o in zip(ref, pipe.process(frames), strict=True):
        assert_tables_equal(r, o, skip=("sigma_row", "sigma_col"))
