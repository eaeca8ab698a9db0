"""The torch peak search finds exactly the peaks of the numpy/scipy one, on every device here.

Each test runs on the CPU device and, on a GPU machine, on CUDA (``device`` fixture, conftest).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from laue_live.pipeline import find_peaks_torch, frames_to_float, gather_cutouts, uint16_to_float_
from laue_live.spots import cutout_edge_mask, extract_cutouts, find_peaks

from .conftest import needs_cuda, to_device


def torch_peaks(frame, device="cpu", **kw) -> np.ndarray:
    pb = find_peaks_torch(to_device(frame, device), **kw)
    assert pb.row.device.type == device
    return torch.stack([pb.row, pb.col], 1).cpu().numpy()


def test_real_frames_same_peaks(real_crops, device):
    """Every real crop (BM32 sCMOS, MarCCD with its masked round window): the same peaks, same order."""
    from laue_live.spots import auto_mask

    for crop in real_crops.values():
        frame = crop.frame
        mask = auto_mask(frame)
        ref = find_peaks(frame, mask=mask)
        assert len(ref) > 15  # measured 18-62 per crop
        m = None if mask is None else to_device(mask, device)
        pb = find_peaks_torch(to_device(frame, device), mask=m)
        np.testing.assert_array_equal(torch.stack([pb.row, pb.col], 1).cpu().numpy(), ref)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"threshold": 4.0},
        {"merge_radius": 0.0, "min_pixels": 1},
        {"merge_radius": 7.5, "block": 8},
        {"threshold": 30.0, "block": 32},
    ],
)
def test_simulated_frames_same_peaks(sim_frames, params, device):
    for frame in sim_frames:
        ref = find_peaks(frame, **params)
        assert len(ref) > 20
        np.testing.assert_array_equal(torch_peaks(frame, device, **params), ref)


def test_float_and_signed_frames(sim_frames, device):
    f = sim_frames[1]
    for arr in (f.astype(np.float32) + 0.25, f.astype(np.int32), f.astype(np.float64) * 0.5):
        np.testing.assert_array_equal(torch_peaks(arr, device), find_peaks(arr))


def test_batch_equals_frame_by_frame(sim_frames, device):
    f = sim_frames[0]
    frames = [f, np.ascontiguousarray(f[::-1]), np.ascontiguousarray(f[:, ::-1])]
    pb = find_peaks_torch(to_device(np.stack(frames), device))
    counts = pb.counts.tolist()
    assert sum(counts) == len(pb)
    start = 0
    for i, frame in enumerate(frames):
        rc = torch.stack([pb.row, pb.col], 1).cpu().numpy()[start : start + counts[i]]
        assert (pb.frame.cpu().numpy()[start : start + counts[i]] == i).all()
        np.testing.assert_array_equal(rc, find_peaks(frame))
        start += counts[i]


def test_uint16_widening_is_exact():
    """The device path's uint16 -> float32 (int16 words + remainder) gives every value exactly."""
    words = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    src = torch.from_numpy(words.view(np.int16)).view(torch.uint16)
    dst = torch.full((256, 256), -7.0)
    uint16_to_float_(dst, src)
    np.testing.assert_array_equal(dst.numpy(), words.astype(np.float32))
    # and inside frames_to_float's padded layout (a strided destination)
    out = torch.empty((1, 260, 270))
    uint16_to_float_(out[:, :256, :256], src[None])
    np.testing.assert_array_equal(out[0, :256, :256].numpy(), words.astype(np.float32))


def test_labelling_shapes(device):
    """Long snakes (many union-find rounds), diagonal contacts (8-connectivity), frame borders."""
    f = np.full((96, 100), 1000, np.uint16)
    # a serpentine component that crosses the frame ~10 times: its brightest pixel is at its far end
    r = 5
    for k in range(8):
        f[r, 2:98] = 1200
        f[r : r + 10, 97 if k % 2 == 0 else 2] = 1200
        r += 10
    f[r - 10, 2] = 1500
    # two blobs touching only diagonally are one component (the fainter one is not a peak)
    f[90, 10], f[91, 11], f[91, 12] = 1400, 1300, 1300
    # single hot pixel (dropped by min_pixels) and a blob on the border
    f[0, 50] = 3000
    f[95, 99], f[95, 98] = 2000, 1900
    # noise-free frame whose blocks are mostly crossed by the snake: a low threshold in noise units
    ref = find_peaks(f, merge_radius=0, threshold=1.0)
    np.testing.assert_array_equal(torch_peaks(f, device, merge_radius=0, threshold=1.0), ref)
    assert [tuple(p) for p in ref] == [(95, 99), (75, 2), (90, 10)]


def test_random_sparse_frames(device):
    rng = np.random.default_rng(1)
    for _ in range(25):
        h, w = rng.integers(32, 90, 2)
        f = rng.normal(1000, 3, (h, w))
        k = rng.integers(1, 60)
        f[rng.integers(0, h, k), rng.integers(0, w, k)] += rng.uniform(30, 500, k)
        f = np.rint(f).astype(np.uint16)
        # ties of equal brightness: the lowest flat index wins on both paths
        f[rng.integers(0, h, 5), rng.integers(0, w, 5)] = 1400
        for kw in ({}, {"merge_radius": 0.0, "min_pixels": 1}, {"threshold": 10.0}):
            np.testing.assert_array_equal(torch_peaks(f, device, **kw), find_peaks(f, **kw))


def test_saturated_constant_and_empty_frames(device):
    sat = np.full((64, 64), 65535, np.uint16)
    const = np.full((64, 64), 1000, np.uint16)
    pb = find_peaks_torch(to_device(np.stack([sat, const]), device))
    assert len(pb) == 0 and pb.counts.tolist() == [0, 0]
    assert len(find_peaks(sat)) == 0 and len(find_peaks(const)) == 0


def test_cutouts_match_extract_cutouts(sim_frames, device):
    f = sim_frames[2]
    peaks = find_peaks(f)
    # add peaks in all four corners and along the edges: padded with the in-frame median
    extra = np.array(
        [
            [0, 0],
            [0, f.shape[1] - 1],
            [f.shape[0] - 1, 0],
            [f.shape[0] - 1, f.shape[1] - 1],
            [3, 200],
            [200, 5],
            [f.shape[0] - 2, 100],
            [100, f.shape[1] - 15],
            [150, f.shape[1] - 16],
        ]
    )
    peaks = np.concatenate([peaks, extra])
    xp = frames_to_float(to_device(f[None], device), 16)
    zeros = torch.zeros(len(peaks), dtype=torch.int64, device=device)
    rc = torch.from_numpy(peaks).to(device)
    cut, edge, pm = gather_cutouts(xp, *f.shape, zeros, rc[:, 0], rc[:, 1])
    assert pm is None
    ref = extract_cutouts(f, peaks)
    np.testing.assert_array_equal(cut.cpu().numpy(), ref)
    edge = edge.cpu()
    np.testing.assert_array_equal(edge.numpy(), cutout_edge_mask(f.shape, peaks))
    assert edge[-len(extra) : -1].all() and not edge[-1]  # s + 15 is the last column: not an edge


@needs_cuda
def test_cuda_peak_search_syncs_the_host_a_few_times_per_batch(bm32_frame):
    """No per-peak or per-frame host round trip: torch's sync debug mode counts every one."""
    import warnings

    frames = to_device(np.stack([bm32_frame, bm32_frame[::-1], bm32_frame[:, ::-1], bm32_frame]), "cuda")
    find_peaks_torch(frames)  # warm-up: the disk of offsets is uploaded once per device
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            pb = find_peaks_torch(frames)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    print(f"CUDA peak search: {len(syncs)} host syncs for a batch of 4 BM32 frames")
    assert len(pb) > 200
    # 5 expected: nonzero of the mask, of the edges, of the roots, of the kept peaks, one labelling test
    assert len(syncs) <= 7, [str(w.message) for w in syncs]
