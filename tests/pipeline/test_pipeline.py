"""FramePipeline gives the tables of analyze_frames (fit) and of the CNN reference, on every device.

Tests that take the ``device`` fixture (conftest) run on the CPU device and, on a GPU machine, on
CUDA: same peaks (integer columns identical), descriptors within float tolerance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from laue_live import FrameError, ModelError, SettingsError
from laue_live._rules import GOOD_DISTANCE, GOOD_SIM
from laue_live._schema import spot_column_names, spot_dtypes
from laue_live.cnn import int8_available
from laue_live.describe import analyze_frames
from laue_live.pipeline import CNNRunner, FramePipeline, cpu_has_bf16
from laue_live.spots import find_peaks

from .conftest import needs_cuda

# Tolerances of the torch path against the numpy reference, held on EVERY row (rtol, atol).
# Measured on the CPU device (2026-12): the exact fit is bit-identical; the float32 CNN differs by
# float32 rounding, 1.3e-7 px in position and 1.2e-7 relative in the other columns.
FIT_TOL = (0.0, 0.0)
CNN_FP32_TOL = (2e-7, 2e-7)
# On CUDA, float64 reductions run in another order, so the fit may stop one iteration apart on an
# ill-conditioned spot. NOT measured yet (no GPU lent to issue 16): a stated bound, held on every row.
CUDA_TOL = (1e-4, 1e-3)


def assert_tables_equal(ref: pd.DataFrame, out: pd.DataFrame, tol=FIT_TOL, device="cpu"):
    """Same schema, same peaks, every float within ``tol`` and every flag equal, on every row.

    ``good`` may differ only on a row whose deciding value lies within the tolerance of its cut
    (Sim at 0.5, ``|Pos - s|`` at 0.9 px): never with the CPU's tolerances, which are float32
    rounding. Integer columns (peaks, frame and spot numbers), ``edge``, ``saturated`` and
    ``converged`` are identical on every device.
    """
    assert list(out.columns) == spot_column_names()
    assert dict(out.dtypes) == spot_dtypes()
    assert len(out) == len(ref)
    rtol, atol = CUDA_TOL if device != "cpu" else tol
    for c in ref.columns:
        a, b = ref[c].to_numpy(), out[c].to_numpy()
        if a.dtype.kind == "f":
            np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, equal_nan=True, err_msg=c)
        elif c == "good" and (rtol or atol):
            differ = a != b
            dist = np.hypot(ref["d_row"], ref["d_col"]).to_numpy()
            near = (np.abs(ref["sim"].to_numpy() - GOOD_SIM) <= atol + rtol) | (
                np.abs(dist - GOOD_DISTANCE) <= atol + rtol * GOOD_DISTANCE)
            assert not (differ & ~near).any(), f"good differs off the cuts: {np.flatnonzero(differ & ~near)}"
        else:
            np.testing.assert_array_equal(b, a, err_msg=c)


@pytest.fixture
def exact_fp32(device, monkeypatch):
    """On CUDA, float32 convolutions in true float32 (cuDNN uses TF32 by default: ~1e-3 off)."""
    if device == "cuda":
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    return device


def test_fit_matches_analyze_frames(real_crops, sim_frames, device):
    # real crops (the MarCCD one with its masked round window; a BM32 one with dead pixels beside its
    # spots, weighted out of their fits) and two dense simulated frames
    dead = real_crops["nw1_0001"].frame.copy()
    for r, c in find_peaks(dead)[:10]:
        dead[r - 2:r + 3, c + 3:c + 5] = 0
    frames = [real_crops["nw1_0000"].frame, real_crops["Ge_blanc_0000"].frame, dead, sim_frames[0],
              sim_frames[2]]
    ref = analyze_frames(frames, "fit", frame_numbers=[5, 6, 7, 8, 9])
    assert ref[2]["masked"].sum() >= 10
    pipe = FramePipeline("fit", device)
    assert pipe.device.type == device
    out = pipe.process(frames, frame_numbers=[5, 6, 7, 8, 9])
    assert len(out) == 5
    for r, o in zip(ref, out, strict=True):
        assert len(r) > 15  # measured 19-20 on the crops, > 1000 on the simulated frames
        assert_tables_equal(r, o, device=device)
        assert o.attrs["sim_variant"] == "background"


def test_fit_batched_and_raw_variant(sim_frames, device):
    frames = [sim_frames[0], sim_frames[0][::-1].copy(), sim_frames[0]]
    ref = analyze_frames(frames, "fit", sim_variant="raw")
    out = FramePipeline("fit", device, batch_frames=3, sim_variant="raw").process(frames)
    for r, o in zip(ref, out, strict=True):
        assert_tables_equal(r, o, device=device)
    assert out[0]["frame"].eq(0).all() and out[2]["frame"].eq(2).all()


def test_cnn_fp32_matches_predictor(bm32_frame, sim_frames, cnn_model_file, exact_fp32):
    device = exact_fp32
    frames = [bm32_frame, sim_frames[1]]
    ref = analyze_frames(frames, "cnn", model=str(cnn_model_file), device="cpu")
    pipe = FramePipeline("cnn", device, model=str(cnn_model_file), precision="fp32")
    assert pipe.cnn.precision == "fp32" and not pipe.cnn.compiled  # "auto" compiles fp16/bf16 only
    out = pipe.process(frames)
    for r, o in zip(ref, out, strict=True):
        # sigma_row/col too, on every row: which axis is wider compares two float sums, and no
        # near-tie flips it on these frames (measured: 0 of 202 rows)
        assert_tables_equal(r, o, CNN_FP32_TOL, device=device)


@pytest.mark.parametrize("polish", [0, 1])
def test_width_network_and_its_polish_match_the_predictor(
    bm32_frame, sim_frames, tmp_path, exact_fp32, polish
):
    """A SpotNet (width outputs): the widths' columns (polish 0) or the fit from its start (polish 1)."""
    from laue_live.cnn import SpotNet, save_model

    torch.manual_seed(1)
    net = SpotNet().eval()
    model = save_model(tmp_path / "spotnet.safetensors", net, info={"version": "test", "polish": polish})
    frames = [bm32_frame, sim_frames[1]]
    ref = analyze_frames(frames, "cnn", model=str(model), device="cpu")
    pipe = FramePipeline("cnn", exact_fp32, model=str(model), precision="fp32")
    assert pipe.cnn.n_out == 7 and pipe.cnn.polish == polish
    for r, o in zip(ref, pipe.process(frames), strict=True):
        assert len(r) > 15  # measured 20 on the real crop, > 1000 on the simulated frame
        assert_tables_equal(r, o, tol=CNN_FP32_TOL, device=exact_fp32)


_FAST = {"cpu": "bf16", "cuda": "fp16"}


def test_cnn_reduced_precision_close_to_fp32(sim_frames, cnn_model_file, exact_fp32):
    """bf16 on the CPU, fp16 on CUDA (compiled there by default): within a few 1e-3 of fp32."""
    device = exact_fp32
    if device == "cpu" and not cpu_has_bf16():
        pytest.skip("this CPU has no native bfloat16")
    frames = [sim_frames[2]]
    exact = FramePipeline("cnn", device, model=str(cnn_model_file), precision="fp32").process(frames)[0]
    pipe = FramePipeline("cnn", device, model=str(cnn_model_file), precision=_FAST[device])
    fast = pipe.process(frames)[0]
    print(f"{device} {pipe.cnn.precision}: compiled={pipe.cnn.compiled}, {len(fast)} spots")
    assert len(fast) == len(exact) > 100
    assert fast.attrs == exact.attrs
    # bf16 on the CPU, measured: Sim 7.8e-4, Asp 2.3e-4, d_row 2.0e-3 px, d_col 7.8e-4 px.
    # fp16 on CUDA not measured yet (no GPU lent to issue 16): the former bounds stay there.
    bounds = {"sim": 1.2e-3, "asp": 3.5e-4, "d_row": 3e-3, "d_col": 3e-3} if device == "cpu" else {
        "sim": 0.02, "asp": 0.02, "d_row": 0.05, "d_col": 0.05}
    for c, bound in bounds.items():
        assert np.abs(fast[c] - exact[c]).max() < bound, (c, float(np.abs(fast[c] - exact[c]).max()))


def test_stream_yields_in_order_and_records_bad_frames(sim_frames, device):
    good = sim_frames[1]
    bad = np.full((10, 10), 1.0)  # too small
    pipe = FramePipeline("fit", device, on_error="record", batch_frames=2)
    out = list(
        pipe.stream(iter([good, bad, good, np.array([[np.nan] * 40] * 40)]), frame_numbers=[10, 11, 12, 13])
    )
    assert len(out) == 4
    assert len(out[0]) > 20 and out[0]["frame"].eq(10).all()
    assert len(out[1]) == 0 and "too small" in out[1].attrs["error"]
    assert_tables_equal(out[0].assign(frame=12), out[2], device=device)
    assert "NaN" in out[3].attrs["error"]
    with pytest.raises(FrameError):
        FramePipeline("fit", "cpu").process([good, bad])


def test_stream_does_not_wait_for_frames_it_does_not_need(sim_frames):
    """A live source: the first table comes out before a third frame is asked for.

    With batch_frames=1 the stream stages one batch ahead (the copy of the next batch overlaps the
    compute of this one), so frame 0's table may wait for frame 1, never for frame 2.
    """
    pulled = []

    def source():
        for i in range(4):
            pulled.append(i)
            yield sim_frames[1]

    tables = FramePipeline("fit", "cpu", batch_frames=1).stream(source())
    first = next(tables)
    assert len(first) > 20 and pulled == [0, 1]
    assert len(list(tables)) == 3 and pulled == [0, 1, 2, 3]


def test_empty_and_saturated_frames(device):
    frames = [np.full((64, 64), 1000, np.uint16), np.full((64, 64), 65535, np.uint16)]
    out = FramePipeline("fit", device, batch_frames=2).process(frames)
    assert [len(t) for t in out] == [0, 0]
    assert list(out[0].columns) == spot_column_names()


def test_profile_records_every_stage(sim_frames, device):
    pipe = FramePipeline("fit", device, profile=True)
    pipe.process(sim_frames[:2])
    s = pipe.summary()
    assert {"h2d", "peaks", "cutouts", "describe", "table"} <= set(s)
    assert s["peaks"]["batches"] == 2


def test_doubles_match_analyze_frames(real_crops, sim_frames, device, tmp_path):
    """doubles=True on the torch path gives the tables of analyze_frames(..., doubles=True)."""
    frames = [real_crops["AH12_CMT_r14_0200"].frame, sim_frames[1]]
    single = FramePipeline("fit", device).process(frames, frame_numbers=[3, 4])
    out = FramePipeline("fit", device, doubles=True).process(frames, frame_numbers=[3, 4])
    for s, o in zip(single, out, strict=True):
        assert list(o.columns) == spot_column_names()
        comps, kept = o[o.component > 0], o[o.component == 0]
        # components come in pairs whose parent was a bad single spot; every other spot is kept
        assert (comps.groupby("parent").size() == 2).all()
        assert set(comps.parent) <= set(s.loc[~s.good, "spot"])
        assert len(kept) + comps.parent.nunique() == len(s)
    assert out[0].attrs["doubles"]["n_split"] >= 6  # measured: 9 double spots split on the AH12 crop
    if device == "cpu":
        ref = analyze_frames(frames, "fit", frame_numbers=[3, 4], doubles=True)
        for r, o in zip(ref, out, strict=True):
            assert_tables_equal(r, o)
            assert o.attrs["doubles"] == r.attrs["doubles"]
    with pytest.raises(ModelError):  # the double-spot model is loaded when the pipeline is built
        FramePipeline("fit", device, doubles=True, doubles_model=tmp_path / "missing.safetensors")


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


def test_mixed_shapes_and_dtypes_in_one_call(sim_frames, device):
    u32 = sim_frames[1].astype(np.uint32)  # CUDA: travels as int64 (no unsigned 32-bit kernels)
    frames = [sim_frames[1], sim_frames[0], sim_frames[0].astype(np.float32), u32, sim_frames[1]]
    batched = FramePipeline("fit", device, batch_frames=5).process(frames)
    single = FramePipeline("fit", device).process(frames)
    assert [len(t) for t in batched] == [len(t) for t in single]
    for a, b in zip(single, batched, strict=True):
        assert_tables_equal(a, b, device=device)
    assert [int(t["frame"].iloc[0]) for t in batched] == [0, 1, 2, 3, 4]
    assert_tables_equal(single[0].assign(frame=3), single[3], device=device)  # uint32 == uint16


@pytest.mark.skipif(not int8_available(), reason="this torch build has no x86 int8 quantization engine")
def test_cnn_int8_default_matches_the_cnn_package(bm32_frame, sim_frames):
    """The shipped model, quantized by "auto": loading it must work (a broken model fails, not skips)."""
    from laue_live.cnn import get_predictor

    assert get_predictor(device="cpu").quantized
    frames = [bm32_frame, sim_frames[2]]
    pipe = FramePipeline("cnn", "cpu")
    assert pipe.cnn.precision == "int8"  # the CNN package's quantized network, chosen by "auto"
    ref = analyze_frames(frames, "cnn", device="cpu")
    for r, o in zip(ref, pipe.process(frames), strict=True):
        assert_tables_equal(r, o, CNN_FP32_TOL)  # measured: identical but 3e-8 in asp


# ----------------------------------------------------------------- compiled CNN: buckets, fallback
@pytest.mark.parametrize("chunk", [16384, 256, 8, 1])
def test_bucket_pieces_cover_every_row_once(chunk):
    from laue_live.pipeline import bucket_pieces

    sizes = set()
    for n in (0, 1, 3, chunk - 1, chunk, chunk + 1, 24000, 3 * chunk + 7):
        pieces = bucket_pieces(max(n, 0), chunk)
        starts = [p[0] for p in pieces]
        assert starts == sorted(starts)
        covered = np.concatenate([np.arange(i, i + rows) for i, rows, _ in pieces] or [np.zeros(0, int)])
        np.testing.assert_array_equal(covered, np.arange(max(n, 0)))
        assert all(0 < rows <= size <= chunk for _, rows, size in pieces)
        assert all(rows == size for _, rows, size in pieces[:-1])  # only the last piece is padded
        if pieces:
            assert pieces[-1][2] - pieces[-1][1] < min(size for *_, size in pieces)
        sizes |= {size for *_, size in pieces}
    assert len(sizes) <= 4  # one compiled graph per size: under torch._dynamo's recompile limit


@pytest.fixture
def fresh_compile_cache(monkeypatch):
    """An empty cache of compiled networks (runners share one per model file, device, precision)."""
    from laue_live.pipeline import _cnn

    monkeypatch.setattr(_cnn, "_SHARED_COMPILED", {})


def _cutouts(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.uniform(900, 5000, (n, 32, 32)).astype(np.float32))


def test_compiled_cnn_runs_bucketed_padded_batches(cnn_model_file, monkeypatch, fresh_compile_cache):
    """Every compiled call sees a bucket size; padding rows never reach the outputs."""
    shapes: list[int] = []
    wrapped = []

    def fake_compile(net, **kw):
        assert kw.get("dynamic") is False
        wrapped.append(net)
        return lambda x: (shapes.append(x.shape[0]), net(x))[1]

    monkeypatch.setattr(torch, "compile", fake_compile)
    cut = _cutouts(75)
    eager = CNNRunner(torch.device("cpu"), str(cnn_model_file), precision="fp32", compile=False)
    runner = CNNRunner(torch.device("cpu"), str(cnn_model_file), precision="fp32", chunk=256, compile=True)
    assert runner.compiled and not eager.compiled
    out = runner(cut)
    assert shapes == [64, 4, 4, 4]  # buckets 256, 64, 16, 4: 75 = 64 + 4 + 4 + 3 (padded to 4)
    np.testing.assert_allclose(out.numpy(), eager(cut).numpy(), rtol=1e-5, atol=1e-6)
    shapes.clear()
    np.testing.assert_allclose(runner(cut[:5]).numpy(), eager(cut[:5]).numpy(), rtol=1e-5, atol=1e-6)
    assert shapes == [4, 4]
    # a second runner of the same network shares the compiled one: no second compilation
    other = CNNRunner(torch.device("cpu"), str(cnn_model_file), precision="fp32", chunk=256, compile=True)
    assert other.compiled and other.network is runner.network and len(wrapped) == 1


def test_compile_failure_falls_back_to_eager_once(cnn_model_file, monkeypatch, caplog, fresh_compile_cache):
    """A compiler that raises at wrap time or at the first call: a warning, then the eager network."""
    cut = _cutouts(20, seed=1)
    eager = CNNRunner(torch.device("cpu"), str(cnn_model_file), precision="fp32", compile=False)
    expect = eager(cut).numpy()

    def broken_at_wrap(net, **kw):
        raise RuntimeError("no backend here")

    monkeypatch.setattr(torch, "compile", broken_at_wrap)
    with caplog.at_level("WARNING", logger="laue_live.pipeline._cnn"):
        r1 = CNNRunner(torch.device("cpu"), str(cnn_model_file), precision="fp32", compile=True)
    assert not r1.compiled
    assert "no backend here" in caplog.text
    np.testing.assert_array_equal(r1(cut).numpy(), expect)

    calls = []

    def broken_at_call(net, **kw):
        def run(x):
            calls.append(len(x))
            raise RuntimeError("inductor: C compiler failed")

        return run

    monkeypatch.setattr(torch, "compile", broken_at_call)
    monkeypatch.setattr("laue_live.pipeline._cnn._SHARED_COMPILED", {})
    caplog.clear()
    with caplog.at_level("WARNING", logger="laue_live.pipeline._cnn"):
        r2 = CNNRunner(torch.device("cpu"), str(cnn_model_file), precision="fp32", compile=True)
        assert r2.compiled  # nothing failed yet: compiling happens at the first call
        np.testing.assert_array_equal(r2(cut).numpy(), expect)
        np.testing.assert_array_equal(r2(cut).numpy(), expect)
        r3 = CNNRunner(torch.device("cpu"), str(cnn_model_file), precision="fp32", compile=True)
        np.testing.assert_array_equal(r3(cut).numpy(), expect)
    # the second call and the runner sharing the network went straight to eager, without a warning
    assert not r2.compiled and not r3.compiled and len(calls) == 1
    warned = [r for r in caplog.records if "torch.compile" in r.getMessage()]
    assert len(warned) == 1 and "C compiler failed" in warned[0].getMessage()


def test_compile_auto_is_off_on_the_cpu_and_checked(cnn_model_file):
    r = CNNRunner(torch.device("cpu"), str(cnn_model_file), precision="fp32")
    assert not r.compiled
    with pytest.raises(ValueError, match="compile"):
        CNNRunner(torch.device("cpu"), str(cnn_model_file), precision="fp32", compile="yes")


@pytest.mark.slow
def test_real_torch_compile_on_the_cpu_matches_eager(cnn_model_file, fresh_compile_cache):
    """torch.compile for real (~30 s: one graph of 8 cutouts); the CUDA tests compile fp16 on a GPU."""
    cut = _cutouts(8, seed=2)
    eager = CNNRunner(torch.device("cpu"), str(cnn_model_file), precision="fp32", compile=False)
    runner = CNNRunner(torch.device("cpu"), str(cnn_model_file), precision="fp32", chunk=8, compile=True)
    out = runner(cut)
    assert runner.compiled  # no fallback: it really ran compiled
    np.testing.assert_allclose(out.numpy(), eager(cut).numpy(), rtol=1e-4, atol=1e-5)


@needs_cuda
def test_cuda_pipeline_syncs_the_host_a_few_times_per_batch(bm32_frame, cnn_model_file):
    """CNN path end to end on CUDA: host round trips per batch, counted by torch's sync debug mode."""
    from laue_live.pipeline import count_host_syncs

    frames = [bm32_frame, np.ascontiguousarray(bm32_frame[::-1])] * 4
    pipe = FramePipeline("cnn", "cuda", model=str(cnn_model_file), batch_frames=4, cnn_compile=False)
    pipe.process(frames)  # warm-up: pinned buffers, cuDNN plans, the disk of offsets
    torch.cuda.synchronize()
    out, syncs = count_host_syncs(lambda: pipe.process(frames), "cuda")
    print(f"CUDA FramePipeline(cnn): {syncs} host syncs for 2 batches of 4 BM32 frames")
    assert len(out) == 8 and min(len(t) for t in out) > 50
    # expected 6 per batch (5 in the peak search, 1 for the edge cutouts); events are not counted
    assert syncs <= 2 * 8


@pytest.mark.parametrize("threads", [1, 3])
def test_staging_copy_of_a_batch(threads):
    """The CUDA path's copy into the pinned buffer (here a plain array): every frame, bit for bit."""
    from laue_live.pipeline._pipeline import _fill_staging

    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 65536, (700, 800), dtype=np.uint16) for _ in range(5)]
    host = np.zeros((8, 700, 800), np.int16)  # a batch buffer longer than this (short) batch
    _fill_staging(host[:5], frames, np.dtype(np.int16), threads)
    for j, f in enumerate(frames):
        np.testing.assert_array_equal(host[j].view(np.uint16), f)
    assert not host[5:].any()
    wide = [f.astype(np.uint32) + 70000 for f in frames[:3]]  # uint32 travels as int64
    host64 = np.zeros((3, 700, 800), np.int64)
    _fill_staging(host64, wide, np.dtype(np.int64), threads)
    np.testing.assert_array_equal(host64, np.stack(wide).astype(np.int64))


def test_count_host_syncs_runs_the_call_and_counts_only_on_cuda():
    from laue_live.pipeline import count_host_syncs

    out, n = count_host_syncs(lambda: 41 + 1, "cpu")
    assert (out, n) == (42, None)
