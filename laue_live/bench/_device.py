"""The two ceilings of the bench device, measured: bytes over bandwidth, FLOPs over the matrix-unit rate.

:func:`measure_device` times, on the device the benchmark runs on, the host-to-device copy from
pinned memory (CUDA) or a host memcpy (CPU), the device memory bandwidth (a large tensor copy), and
the matrix-multiply rate in the precisions the pipeline uses (fp16/bf16 for the CNN on CUDA,
bf16/fp32 on the CPU, fp64 for the exact fit). :func:`work_ceilings` turns a set of rates (these, or
a vendor's peak numbers) and the work per frame of the pipeline into the time bounds of one frame.
A measurement that fails is recorded (``errors``), never raised: the rest of the benchmark counts.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "CNN_ACT_BYTES_PER_SPOT",
    "CNN_FLOP_PER_SPOT",
    "DESCRIBE_BYTES_PER_SPOT",
    "FIT_BYTES_PER_SPOT_ITER",
    "FIT_FLOP_PER_SPOT_ITER",
    "H100",
    "PEAK_BYTES_PER_PX",
    "measure_device",
    "work_ceilings",
]

log = logging.getLogger(__name__)

#: H100 SXM figures for the analytic ceilings (vendor peak numbers; the PCIe figure is the effective
#: host-to-device rate behind the issue's measured 0.16 ms per 8.1 MB frame).
H100 = {
    "pcie_bytes_per_s": 51e9,
    "hbm_bytes_per_s": 3.35e12,
    "fp16_tensor_flops": 989e12,
    "fp64_flops": 34e12,
}

#: Work per unit, used for the ceilings (see docs/performance.md for how they were counted).
CNN_FLOP_PER_SPOT = 24.4e6
CNN_ACT_BYTES_PER_SPOT = 61440 * 2 * 2  # fp16 activations of the six convolutions, written and read once
PEAK_BYTES_PER_PX = 20  # uint16 read, float32 write, 3 float32 reads, mask write + read
FIT_FLOP_PER_SPOT_ITER = 10e3
#: The least one Levenberg-Marquardt iteration moves: one float64 read of the 32 x 32 cutout (the
#: model, residual and Jacobian sums of an eager implementation move several times more).
FIT_BYTES_PER_SPOT_ITER = 32 * 32 * 8
DESCRIBE_BYTES_PER_SPOT = 32 * 32 * 4 * 6  # cutout gather + descriptor passes over float32 cutouts


def _timer(device) -> Callable[[Callable[[], Any], int], float]:
    """Return ``time(fn, reps) -> seconds per call`` for the device (CUDA events, or perf_counter)."""
    # torch only for the measurement that runs on it
    import torch

    if device.type == "cuda":

        def cuda_time(fn, reps):
            fn()  # warm-up: allocation, kernel selection
            torch.cuda.synchronize(device)
            best = float("inf")
            for _ in range(3):
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(reps):
                    fn()
                end.record()
                end.synchronize()  # the timer is read only once the device has finished
                best = min(best, start.elapsed_time(end) / 1e3 / reps)
            return best

        return cuda_time

    def cpu_time(fn, reps):
        fn()
        best = float("inf")
        for _ in range(3):  # best of three: other jobs on a shared machine only ever slow it down
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            best = min(best, (time.perf_counter() - t0) / reps)
        return best

    return cpu_time


def _matmul_rate(device, dtype, n: int, reps: int, timer) -> float:
    """FLOP/s of an n x n x n matrix product in ``dtype`` (2 n^3 FLOP per product)."""
    # torch only for the measurement that runs on it
    import torch

    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    return 2.0 * n**3 / timer(lambda: torch.matmul(a, b, out=out), reps)


def measure_device(device, *, quick: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Measure the bandwidths and matrix-multiply rates of ``device``.

    Parameters
    ----------
    device
        torch device (or name) the benchmark runs on.
    quick
        Small sizes (well under 2 s on a CPU): coarse figures, for smoke tests.
    threads
        torch threads on the CPU during the measurement (the pipelines' own setting, so that the
        ceilings describe what a pipeline can reach); None leaves torch's setting.

    Returns
    -------
    dict
        ``measured`` (True), ``device``, ``name``, ``threads``; ``h2d_bytes_per_s`` (pinned host ->
        device, B/s; None on the CPU, where frames are already in device memory),
        ``h2d_frame_ms`` (one 2018 x 2016 uint16 frame, ms), ``host_copy_bytes_per_s`` (memcpy of host
        memory, B/s, bytes copied), ``mem_bytes_per_s`` (device memory, bytes read + written per s),
        ``matmul_flops`` (``{"fp16"|"bf16"|"fp32"|"fp64": FLOP/s}``), ``cnn_flops`` and
        ``cnn_precision`` (the rate the CNN ceiling uses), ``fp64_flops``, ``seconds`` (spent
        measuring) and ``errors`` (``{what: why}`` for each measurement that failed).
    """
    # only the measurement that needs it pays the import
    import numpy as np
    import torch

    device = torch.device(device)
    cuda = device.type == "cuda"
    t_start = time.perf_counter()
    out: dict[str, Any] = {
        "measured": True,
        "device": str(device),
        "name": torch.cuda.get_device_name(device) if cuda else "cpu",
        "threads": None if cuda else (threads or torch.get_num_threads()),
        "quick": quick,
        "h2d_bytes_per_s": None,
        "h2d_frame_ms": None,
        "host_copy_bytes_per_s": None,
        "mem_bytes_per_s": None,
        "matmul_flops": {},
        "errors": {},
    }
    old_threads = torch.get_num_threads()
    if not cuda and threads:
        torch.set_num_threads(threads)
    timer = _timer(device)

    def attempt(what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one failed ceiling must not stop the benchmark
            log.error("device ceiling %s not measured: %r", what, exc)
            out["errors"][what] = f"{type(exc).__name__}: {exc}"

    mib = 1 << 20
    try:
        def host_copy():
            n = (16 if quick else 128) * mib
            src = np.ones(n, dtype=np.uint8)
            dst = np.empty_like(src)
            t = min(_best_of(lambda: np.copyto(dst, src), 3 if quick else 5))
            out["host_copy_bytes_per_s"] = n / t

        def h2d():
            n = 256 * mib
            pinned = torch.empty(n, dtype=torch.uint8).pin_memory()
            dst = torch.empty(n, dtype=torch.uint8, device=device)
            out["h2d_bytes_per_s"] = n / timer(lambda: dst.copy_(pinned, non_blocking=True), 5)
            frame = pinned[: 2018 * 2016 * 2]
            fdst = dst[: frame.numel()]
            out["h2d_frame_ms"] = 1e3 * timer(lambda: fdst.copy_(frame, non_blocking=True), 50)

        def mem():
            n = (16 if quick else 128) * mib if not cuda else 1024 * mib
            src = torch.ones(n // 4, dtype=torch.float32, device=device)
            dst = torch.empty_like(src)
            out["mem_bytes_per_s"] = 2 * n / timer(lambda: dst.copy_(src), 10 if cuda else 3)

        def matmuls():
            if cuda:
                plan = [("fp16", torch.float16, 8192, 10), ("bf16", torch.bfloat16, 8192, 10),
                        ("fp64", torch.float64, 4096, 3)]
            else:
                n = 256 if quick else 1024
                plan = [("fp32", torch.float32, n, 2), ("bf16", torch.bfloat16, n, 2),
                        ("fp64", torch.float64, n, 2)]
            for name, dtype, n, reps in plan:
                attempt(f"matmul_{name}", functools.partial(one_matmul, name, dtype, n, reps))

        def one_matmul(name, dtype, n, reps):
            out["matmul_flops"][name] = _matmul_rate(device, dtype, n, reps, timer)

        attempt("host_copy", host_copy)
        if cuda:
            attempt("h2d", h2d)
        attempt("mem", mem)
        matmuls()
    finally:
        if not cuda and threads:
            torch.set_num_threads(old_threads)
    mm = out["matmul_flops"]
    if cuda:
        out["cnn_precision"] = "fp16" if "fp16" in mm else None
    else:
        # The CPU CNN runs int8 (or bf16 / fp32): the best measured floating-point rate stands for it.
        best = max((k for k in ("bf16", "fp32") if k in mm), key=lambda k: mm[k], default=None)
        out["cnn_precision"] = best
    out["cnn_flops"] = mm.get(out["cnn_precision"]) if out["cnn_precision"] else None
    out["fp64_flops"] = mm.get("fp64")
    out["seconds"] = time.perf_counter() - t_start
    return out


def _best_of(fn: Callable[[], Any], reps: int) -> list[float]:
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return ts


def work_ceilings(
    frame_shape: tuple[int, int], spots: float, fit_iters: float, rates: dict[str, float | None]
) -> dict[str, Any]:
    """Time bounds of one frame's work at given rates: bytes / bandwidth and FLOPs / matrix rate.

    Parameters
    ----------
    frame_shape
        Frame size (px).
    spots
        Spots per frame.
    fit_iters
        Mean Levenberg-Marquardt iterations per spot (measured in the run).
    rates
        ``pcie_bytes_per_s`` (host -> device copy; None where frames need no copy: the CPU),
        ``hbm_bytes_per_s`` (device memory, read + write), ``fp16_tensor_flops`` (the CNN's matrix
        rate), ``fp64_flops`` (the fit's); a None rate leaves its bound out.

    Returns
    -------
    dict
        Per-bound times in ms (``pcie_ms``, ``hbm_peak_search_ms``, ``hbm_cnn_ms``,
        ``flops_cnn_ms``, ``flops_fit_ms``, ``hbm_fit_ms``; None when the rate is unknown), the
        frames/s ceilings of the CNN path and the fit path, the fit's spots/s ceiling and which
        bound limits each path.
    """
    px = frame_shape[0] * frame_shape[1]

    def bound(work: float, rate: float | None) -> float | None:
        return work / rate if rate else None

    t = {
        "pcie": bound(2 * px, rates.get("pcie_bytes_per_s")),
        "hbm_peak_search": bound(PEAK_BYTES_PER_PX * px, rates.get("hbm_bytes_per_s")),
        "hbm_cnn": bound(spots * (CNN_ACT_BYTES_PER_SPOT + DESCRIBE_BYTES_PER_SPOT),
                         rates.get("hbm_bytes_per_s")),
        "flops_cnn": bound(spots * CNN_FLOP_PER_SPOT, rates.get("fp16_tensor_flops")),
        "flops_fit": bound(spots * FIT_FLOP_PER_SPOT_ITER * fit_iters, rates.get("fp64_flops")),
        "hbm_fit": bound(spots * FIT_BYTES_PER_SPOT_ITER * fit_iters, rates.get("hbm_bytes_per_s")),
    }

    def worst(parts: dict[str, float | None]) -> tuple[float | None, str | None]:
        known = {k: v for k, v in parts.items() if v is not None}
        if not known:
            return None, None
        k = max(known, key=known.get)
        return known[k], k

    hbm_cnn_total = None if t["hbm_peak_search"] is None else t["hbm_peak_search"] + (t["hbm_cnn"] or 0.0)
    hbm_fit_total = None if t["hbm_peak_search"] is None else t["hbm_peak_search"] + (t["hbm_fit"] or 0.0)
    cnn_t, cnn_k = worst({"pcie": t["pcie"], "hbm": hbm_cnn_total, "flops": t["flops_cnn"]})
    fit_t, fit_k = worst({"pcie": t["pcie"], "hbm": hbm_fit_total, "flops": t["flops_fit"]})
    per_spot_fit = [x for x in (bound(FIT_FLOP_PER_SPOT_ITER * fit_iters, rates.get("fp64_flops")),
                                bound(FIT_BYTES_PER_SPOT_ITER * fit_iters, rates.get("hbm_bytes_per_s")))
                    if x is not None]
    return {
        "frame_shape": list(frame_shape),
        "spots": spots,
        **{f"{k}_ms": None if v is None else 1e3 * v for k, v in t.items()},
        "cnn_frames_per_s_ceiling": 1 / cnn_t if cnn_t else None,
        "fit_frames_per_s_ceiling": 1 / fit_t if fit_t else None,
        "fit_spots_per_s_ceiling": 1 / max(per_spot_fit) if per_spot_fit else None,
        "fit_spots_per_s_ceiling_flops": (rates["fp64_flops"] / (FIT_FLOP_PER_SPOT_ITER * fit_iters)
                                          if rates.get("fp64_flops") else None),
        "bound_cnn": cnn_k,
        "bound_fit": fit_k,
    }


def h100_rates() -> dict[str, float]:
    """Return the vendor peak numbers of :data:`H100` in :func:`work_ceilings`' terms."""
    return dict(H100)


def measured_rates(dev: dict[str, Any]) -> dict[str, float | None]:
    """Return the rates of a :func:`measure_device` result in :func:`work_ceilings`' terms."""
    return {
        "pcie_bytes_per_s": dev.get("h2d_bytes_per_s"),
        "hbm_bytes_per_s": dev.get("mem_bytes_per_s"),
        "fp16_tensor_flops": dev.get("cnn_flops"),
        "fp64_flops": dev.get("fp64_flops"),
    }
