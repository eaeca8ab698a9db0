"""Spot-CNN speed beside the exact fit in one run, with LaueTools' fit and the paper's Table 5.

Usage::

    python benchmarks/bench_cnn.py [--n 2000] [--rounds 5] [--model models/spot_cnn.safetensors]
                                   [--json out.json] [--lauetools-python PATH]

All CPU figures on ONE thread (torch and BLAS), as the paper's Table 5 and LaueTools; every method
on the same cutouts (the four real frames' spots, then simulated ones), in interleaved rounds, best
round; CPU time of the timing thread beside wall time (a shared machine inflates wall time). GPU
figures (network alone, fp16 autocast, channels_last) are measured when CUDA exists. Accuracy
beside speed (the Pareto table): ``laue-live train --report`` (docs/report/REPORT.md).
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

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread for the fit, before numpy loads
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"cnn_gpu_ms": 0.027, "cnn_cpu_ms": 0.647, "lauetools_ms": 2.089}


def cutouts(n: int) -> np.ndarray:
    from laue_live.io import read_frame
    from laue_live.sim import render_spot_cutouts
    from laue_live.spots import prepare_frame

    parts = []
    data = ROOT.parent / "shared" / "data"
    for f in ("bm32/nw1_0000.tif", "bm32/nw1_0001.tif", "lauetools/AH12_CMT_r14_0200.tif",
              "lauetools/Ge_blanc_0000.mccd"):
        if (data / f).is_file():  # the cutouts the live path hands over (issue 14's peak search)
            parts.append(prepare_frame(read_frame(data / f)).cutouts)
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


def bench_cnn_cpu(model_path: Path | None, cut: np.ndarray, rounds: int) -> dict:
    """CNN and exact fit, end to end (spot table), in interleaved rounds on the same cutouts.

    Rows: the exact fit; the shipped model alone (int8, float32) and with its polish (network + 1
    and 2 iterations of the fit); each network design with random weights (int8 and float32, the
    network's outputs only: speed does not depend on the weights).
    """
    from laue_live.cnn import (
        ARCHITECTURES,
        DESIGNS,
        Method,
        Predictor,
        count_flops,
        make_network,
        save_model,
        time_methods,
    )
    from laue_live.describe import characterize

    methods = [Method("exact fit", lambda c: characterize(c, method="fit"), kind="fit")]
    if model_path is not None and model_path.is_file():
        for q in (True, False):
            p = Predictor(model_path, "cpu", quantize=q)
            tag = "int8" if q else "fp32"
            methods.append(Method(f"shipped {tag}, network alone", lambda c, p=p: p.predict(c, polish=0)))
            if p.n_out >= 7 and q:
                for k in (1, 2):
                    methods.append(Method(f"shipped {tag} + {k} fit iteration(s)",
                                          lambda c, p=p, k=k: p.predict(c, polish=k), kind="hybrid"))
    with tempfile.TemporaryDirectory() as d:
        for name in [*ARCHITECTURES, *DESIGNS]:
            net = make_network(name).eval()
            path = save_model(Path(d) / f"{name}.safetensors", net, calibration=cut[:256])
            for q in (True, False):
                p = Predictor(path, "cpu", quantize=q, polish=0)
                methods.append(Method(f"{name} {'int8' if q else 'fp32'} (network)", p.predict_desc,
                                      count_flops(net) / 1e6))
        times = time_methods(methods, cut, rounds=rounds)
    fit_ms = float(times.loc["exact fit", "ms_cpu"])
    flops = {m.name: m.mflop for m in methods}
    return {
        name: {"ms_cpu": float(r["ms_cpu"]), "ms_wall": float(r["ms_wall"]),
               "ms_cpu_median": float(r["ms_cpu_median"]), "x_fit": fit_ms / float(r["ms_cpu"]),
               "mflop": flops[name]}
        for name, r in times.iterrows()
    }


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
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "spot_cnn.safetensors")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "report" / "bench_cnn.json")
    ap.add_argument("--lauetools-python", default=str(ROOT / ".lauetools-venv" / "bin" / "python"))
    ap.add_argument("--lauetools-n", type=int, default=500, help="cutouts for LaueTools (slow)")
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
    res["cpu"] = bench_cnn_cpu(a.model, cut, a.rounds)
    res["lauetools"] = bench_lauetools(cut[: a.lauetools_n], a.lauetools_python)
    res["gpu"] = bench_gpu(a.model)
    res["paper_table5_ms"] = PAPER
    res["machine"]["load_average_after"] = os.getloadavg()
    print(f"{len(cut)} cutouts (the real frames' spots, then simulated ones); one torch and one BLAS thread; "
          f"load average {res['machine']['load_average_after'][0]:.1f} on {os.cpu_count()} cores")
    print(f"{'method (spot table; designs: network outputs only)':52s} {'MFLOP':>6s} {'ms CPU':>8s} "
          f"{'ms wall':>8s} {'fit/this':>8s}")
    for name, r in res["cpu"].items():
        mf = f"{r['mflop']:6.2f}" if np.isfinite(r["mflop"]) else ""
        print(f"{name:52s} {mf:>6s} {r['ms_cpu']:8.4f} {r['ms_wall']:8.4f} {r['x_fit']:8.2f}")
    lt = res["lauetools"].get("lauetools_ms")
    if lt:
        print(f"{'LaueTools gaussfit (leastsq), same cutouts':52s} {'':6s} {'':8s} {lt:8.4f} "
              f"{res['cpu']['exact fit']['ms_cpu'] / lt:8.2f}")
    print(f"paper Table 5 (ms/spot): CNN on one CPU core {PAPER['cnn_cpu_ms']}, "
          f"LaueTools {PAPER['lauetools_ms']}, "
          f"CNN on an RTX 2080 Super {PAPER['cnn_gpu_ms']}")
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
