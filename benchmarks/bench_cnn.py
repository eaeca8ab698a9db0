"""Spot-CNN speed, side by side with the exact fit, LaueTools' fit and the paper's Table 5.

Usage::

    python benchmarks/bench_cnn.py [--n 2000] [--model models/spot_cnn.safetensors] [--json out.json]
                                   [--lauetools-python PATH] [--no-compile]

All CPU figures are on ONE thread (``torch.set_num_threads(1)``), as the paper's Table 5 and
LaueTools. Cutouts: the real BM32 frames' spots plus simulated ones (the same cutouts for every
method). GPU figures (network alone, fp16 autocast, channels_last) are measured when CUDA exists.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"cnn_gpu_ms": 0.027, "cnn_cpu_ms": 0.647, "lauetools_ms": 2.089}


def cutouts(n: int) -> np.ndarray:
    import tifffile

    from laue_live.sim import render_spot_cutouts
    from laue_live.spots import extract_cutouts, find_peaks

    parts = []
    bm32 = ROOT.parent / "shared" / "data" / "bm32"
    for f in ("nw1_0000.tif", "nw1_0001.tif"):
        if (bm32 / f).is_file():
            frame = tifffile.imread(bm32 / f)
            parts.append(extract_cutouts(frame, find_peaks(frame)))
    have = sum(len(p) for p in parts)
    if have < n:
        parts.append(render_spot_cutouts(n - have, "bm32", rng=0)[0])
    return np.concatenate(parts)[:n].astype(np.float32)


def timeit(fn, reps: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_cnn_cpu(model_path: Path | None, cut: np.ndarray, do_compile: bool) -> dict:
    from laue_live.cnn import (
        ARCHITECTURES,
        Predictor,
        SpotCNN,
        fuse_batchnorm,
        int8_available,
        normalise_torch,
        quantize_int8,
    )

    out: dict = {}
    n = len(cut)
    x = normalise_torch(torch.as_tensor(cut))[:, None].contiguous()
    with torch.inference_mode():
        for name, arch in ARCHITECTURES.items():
            m = SpotCNN(arch).eval()
            out[f"{name}_eager_ms"] = 1e3 * timeit(lambda: m(x)) / n  # noqa: B023
            f = fuse_batchnorm(m)
            out[f"{name}_fused_bn_ms"] = 1e3 * timeit(lambda: f(x)) / n  # noqa: B023
            xc = x.contiguous(memory_format=torch.channels_last)
            fc = fuse_batchnorm(m).to(memory_format=torch.channels_last)
            out[f"{name}_fused_channels_last_ms"] = 1e3 * timeit(lambda: fc(xc)) / n  # noqa: B023
            tr = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(f, x[:8])))
            out[f"{name}_fused_jit_frozen_ms"] = 1e3 * timeit(lambda: tr(x)) / n  # noqa: B023
            if int8_available():
                q = quantize_int8(m, x[:256])
                out[f"{name}_int8_ms"] = 1e3 * timeit(lambda: q(x)) / n  # noqa: B023
            if do_compile:
                try:
                    cm = torch.compile(fuse_batchnorm(m))
                    out[f"{name}_fused_compiled_ms"] = 1e3 * timeit(lambda: cm(x)) / n  # noqa: B023
                except Exception as exc:  # compile needs a C compiler; report rather than fail
                    out[f"{name}_fused_compiled_ms"] = f"failed: {type(exc).__name__}"
    if model_path is not None and model_path.is_file():
        p = Predictor(model_path, "cpu")
        out["predictor_end_to_end_ms"] = 1e3 * timeit(lambda: p.predict(cut)) / n
        out["predictor_network_only_ms"] = 1e3 * timeit(lambda: p.predict_desc(cut)) / n
        out["predictor_arch"] = p.arch.to_dict()
        out["predictor_int8"] = p.quantized
        pf = Predictor(model_path, "cpu", quantize=False)
        out["predictor_float32_network_only_ms"] = 1e3 * timeit(lambda: pf.predict_desc(cut)) / n
    return out


def bench_fit(cut: np.ndarray) -> dict:
    from laue_live.describe import characterize

    n = len(cut)
    return {"exact_fit_ms": 1e3 * timeit(lambda: characterize(cut, method="fit"), reps=2) / n}


def bench_lauetools(cut: np.ndarray, python: str | None) -> dict:
    script = ROOT.parent / "shared" / "tools" / "lauetools_baseline.py"
    if not python or not Path(python).is_file() or not script.is_file():
        return {"lauetools_ms": None, "lauetools_note": "LaueTools environment not found"}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cutouts.npy"
        np.save(path, cut)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        r = subprocess.run(
            [python, str(script), str(path)], capture_output=True, text=True, env=env, timeout=1800
        )
    for line in r.stdout.splitlines():
        if line.startswith("lauetools_fit"):
            fields = dict(kv.split("=") for kv in line.split()[1:])
            return {"lauetools_ms": float(fields["ms_per_spot"]), "lauetools_n": int(fields["n"])}
    return {"lauetools_ms": None, "lauetools_note": (r.stderr or r.stdout)[-500:]}


def bench_gpu(model_path: Path | None) -> dict:
    if not torch.cuda.is_available():
        return {"gpu": None, "gpu_note": "no CUDA device in this run"}
    from laue_live.cnn import ARCHITECTURES, SpotCNN, fuse_batchnorm

    out = {"gpu": torch.cuda.get_device_name(0)}
    n = 65536
    x = torch.rand(n, 1, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    for name, arch in ARCHITECTURES.items():
        f = fuse_batchnorm(SpotCNN(arch)).cuda().to(memory_format=torch.channels_last)
        for label, net in (("eager", f), ("compiled", torch.compile(f))):
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):

                def run():
                    net(x)  # noqa: B023
                    torch.cuda.synchronize()

                dt = timeit(run, reps=5)
            out[f"{name}_{label}_fp16_spots_per_s"] = n / dt
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="cutouts (default 2000)")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "spot_cnn.safetensors")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "report" / "bench_cnn.json")
    ap.add_argument("--lauetools-python", default=str(ROOT / ".lauetools-venv" / "bin" / "python"))
    ap.add_argument("--lauetools-n", type=int, default=500, help="cutouts for LaueTools (slow)")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    cut = cutouts(a.n)
    res = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "n_cutouts": len(cut),
            "load_average_before": os.getloadavg(),
            "cores": os.cpu_count(),
        }
    }
    res["cnn_cpu"] = bench_cnn_cpu(a.model, cut, not a.no_compile)
    res["fit"] = bench_fit(cut)
    res["lauetools"] = bench_lauetools(cut[: a.lauetools_n], a.lauetools_python)
    res["gpu"] = bench_gpu(a.model)
    res["paper_table5_ms"] = PAPER
    c = res["cnn_cpu"]
    lt = res["lauetools"].get("lauetools_ms")
    res["machine"]["load_average_after"] = os.getloadavg()
    print(
        f"load average {res['machine']['load_average_after'][0]:.1f} on {os.cpu_count()} cores: "
        "absolute times "
        "scale with contention, the ratios to LaueTools (same run) much less"
    )
    print(
        f"{'method (one CPU thread)':44s} {'ms/spot':>9s}  {'spots/s':>9s}  {'x LaueTools':>11s}   "
        "paper ms/spot"
    )
    rows = [(k, v) for k, v in c.items() if k.endswith("_ms") and isinstance(v, float)]
    rows += [("exact fit (laue_live.spots, batched LM)", res["fit"]["exact_fit_ms"])]
    if lt:
        rows.append(("LaueTools gaussfit (leastsq)", lt))
    for k, v in rows:
        ref = (
            PAPER["lauetools_ms"]
            if "LaueTools" in k
            else PAPER["cnn_cpu_ms"]
            if "ms" in k and "fit" not in k
            else ""
        )
        speed = f"{lt / v:11.1f}" if lt else f"{'n/a':>11s}"
        print(f"{k:44s} {v:9.4f}  {1e3 / v:9.0f}  {speed}   {ref}")
    print(
        f"{'paper Table 5: CNN one CPU core':44s} {PAPER['cnn_cpu_ms']:9.4f}  "
        f"{1e3 / PAPER['cnn_cpu_ms']:9.0f}  "
        f"{PAPER['lauetools_ms'] / PAPER['cnn_cpu_ms']:11.1f}"
    )
    print(
        f"{'paper Table 5: LaueTools one CPU core':44s} {PAPER['lauetools_ms']:9.4f}  "
        f"{1e3 / PAPER['lauetools_ms']:9.0f}  {1.0:11.1f}"
    )
    if res["gpu"].get("gpu"):
        for k, v in res["gpu"].items():
            if k.endswith("per_s"):
                print(f"GPU {k:40s} {v:12.0f} spots/s   (paper: {1 / PAPER['cnn_gpu_ms'] * 1e3:.0f})")
    else:
        print(f"GPU: {res['gpu']['gpu_note']} (paper: {PAPER['cnn_gpu_ms']} ms/spot on an RTX 2080 Super)")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=1))
    print(f"wrote {a.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
