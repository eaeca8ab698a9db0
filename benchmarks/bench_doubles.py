"""Speed of the double-spot model side by side with the single-spot CNN, on the same cutouts.

    nice .venv/bin/python benchmarks/bench_doubles.py --n 4096 --device cpu

Prints ms per cutout for: the single-spot CNN (laue_live.cnn Predictor, shipped weights; random
weights of the paper architecture if none are shipped: same arithmetic), the double-spot network
alone, the double-spot predictor as used by describe_doubles (network + exact amplitudes, and with
the fit polish of the cutouts called double), the single Gaussian fit and the exact two-Gaussian
fit. The goal of issue 6: double-spot model within 2x of the single-spot CNN.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=4096, help="cutouts per timed call")
    p.add_argument("--n-fit", type=int, default=64, help="cutouts for the (slow) exact fits")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions (best is kept)")
    p.add_argument("--model", default=None, help="double-spot weights (default: shipped)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    from laue_live.cnn import ARCHITECTURES, Predictor, SpotCNN, default_model_path, save_model
    from laue_live.doubles import DoublePredictor, fit_two_gaussians, make_doubles
    from laue_live.spots import fit_gaussians

    rng = np.random.default_rng(0)
    cut, truth = make_doubles(a.n, rng=rng, double_fraction=0.5)
    try:
        single = Predictor(default_model_path(), device=a.device)
        single_note = f"shipped weights {single.path.name}, int8={single.quantized}"
    except Exception:  # no shipped spot CNN yet: same architecture, random weights, same arithmetic
        tmp = Path(tempfile.mkdtemp()) / "random_spot_cnn.safetensors"
        save_model(tmp, SpotCNN(ARCHITECTURES["paper"]))
        single = Predictor(tmp, device=a.device)
        single_note = "paper architecture, random weights (no shipped model)"
    double = DoublePredictor(a.model, device=a.device)
    try:
        double8 = DoublePredictor(a.model, device=a.device, quantize=True)
        double8.raw(cut[:64])
    except Exception:  # no int8 engine or not on the CPU
        double8 = None
    single.predict_desc(cut[:64])
    double.predict(cut[:64], refine=True)
    try:  # the same spot CNN in float32, for a like-for-like comparison
        single32 = Predictor(single.path, device=a.device, quantize=False)
    except TypeError:
        single32 = single
    rows = [
        ("single-spot CNN (predict_desc)", _best(lambda: single.predict_desc(cut), a.repeat) / a.n),
        ("single-spot CNN, float32", _best(lambda: single32.predict_desc(cut), a.repeat) / a.n),
        ("double-spot network alone (raw)", _best(lambda: double.raw(cut), a.repeat) / a.n),
        ("double-spot network alone, int8", _best(lambda: double8.raw(cut), a.repeat) / a.n)
        if double8 is not None else ("double-spot network alone, int8 (unavailable)", float("nan")),
        ("double-spot predictor, no polish", _best(lambda: double.predict(cut), a.repeat) / a.n),
        ("double-spot predictor + fit polish",
         _best(lambda: double.predict(cut, refine=True), a.repeat) / a.n),
    ]
    k = min(a.n_fit, a.n)
    sub = cut[:k].astype(np.float64)
    rows.append(("single Gaussian fit (spots.fit_gaussians)", _best(lambda: fit_gaussians(sub), 1) / k))
    rows.append(("exact two-Gaussian fit (multi-start)", _best(lambda: fit_two_gaussians(sub), 1) / k))
    base = rows[0][1]
    print(f"device {a.device}, {a.threads} thread(s), {a.n} cutouts (half doubles); "
          f"single CNN: {single_note}")
    print(f"{'what':45s} {'ms/cutout':>10s} {'x single CNN':>13s}")
    for name, sec in rows:
        print(f"{name:45s} {1e3 * sec:10.4f} {sec / base:13.2f}")
    r32 = rows[2][1] / rows[1][1]
    r8 = rows[3][1] / base
    print(f"double-spot network vs single-spot CNN: float32 vs float32 {r32:.2f}x, int8 vs shipped (int8="
          f"{getattr(single, 'quantized', False)}) {r8:.2f}x, float32 vs shipped {rows[2][1] / base:.2f}x; "
          f"predictor + polish vs shipped {rows[5][1] / base:.2f}x (goal: within 2x)")
    del truth


if __name__ == "__main__":
    main()
