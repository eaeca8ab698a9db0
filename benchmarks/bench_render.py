"""Simulator speed: a full 2018 x 2016 frame with ~150 spots, side by side with a naive baseline.

Rows printed, all in one run on one core:

* ``simulate_spots``: Laue geometry of one grain (Si and Al2O3);
* ``render_frame (laue-live)``: windowed, vectorised spots + one normal draw for the background noise;
* ``naive baseline``: the same spots rendered one by one in Python, each evaluated over a window
  with its own loop, and ``numpy.random.poisson`` over the whole frame (what a first version does);
* ``render_spot_cutouts``: 32 x 32 training cutouts per second;
* ``SimLaueDetector in a RunEngine``: frames per second of an inline raster scan.

Target (issue 3): a frame with ~150 spots well under 0.5 s on one core. Run:
``.venv/bin/python benchmarks/bench_render.py [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target says

import numpy as np
import pandas as pd


def _time(fn, repeat):
    best = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t)
    return np.median(best), min(best)


def naive_render(spots: pd.DataFrame, rng: np.random.Generator, shape=(2018, 2016)) -> np.ndarray:
    """Baseline: per-spot Python loop, full-frame Poisson noise."""
    rows, cols = shape
    img = np.full(shape, 1000.0)
    img += 30.0 * np.exp(-0.5 * ((np.arange(rows)[:, None] - 900) / 600) ** 2) * np.exp(
        -0.5 * ((np.arange(cols)[None, :] - 1000) / 600) ** 2
    )
    for _, s in spots.iterrows():
        r0, c0 = int(round(s["row"])), int(round(s["col"]))
        sig = 1.1
        for r in range(max(r0 - 10, 0), min(r0 + 11, rows)):
            dr = np.exp(-0.5 * ((r - s["row"]) / sig) ** 2)
            c = np.arange(max(c0 - 10, 0), min(c0 + 11, cols))
            img[r, c] += 20000 * s["intensity"] ** 0.4 * dr * np.exp(-0.5 * ((c - s["col"]) / sig) ** 2)
    img = rng.poisson((img - 1000).clip(0) / 0.25) * 0.25 + 1000 + rng.normal(0, 1.5, shape)
    return np.clip(np.rint(img), 0, 65535).astype(np.uint16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    from laue_live.sim import (
        BM32_CALIBRATION,
        RenderConfig,
        random_rotation,
        render_frame,
        render_spot_cutouts,
        simulate_spots,
    )

    rng = np.random.default_rng(0)
    u = random_rotation(rng)
    si = simulate_spots("Si", u, BM32_CALIBRATION)
    ge = simulate_spots("Ge", random_rotation(rng), BM32_CALIBRATION)
    spots = pd.concat([si, ge.head(150 - len(si))], ignore_index=True) if len(si) < 150 else si
    cfg = RenderConfig(min_peak=0.0)  # render every spot of the list
    print(f"frame 2018 x 2016, {len(spots)} spots, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    print(f"{'what':38s} {'median s':>10s} {'best s':>10s}")
    for name, mat in (("Si", "Si"), ("Al2O3", "Al2O3")):
        med, best = _time(lambda m=mat: simulate_spots(m, u, BM32_CALIBRATION), args.repeat)
        print(f"{'simulate_spots ' + name:38s} {med:10.4f} {best:10.4f}")
    med, best = _time(lambda: render_frame(spots, cfg, rng), args.repeat)
    print(f"{'render_frame (laue-live)':38s} {med:10.4f} {best:10.4f}")
    med_n, best_n = _time(lambda: naive_render(spots, rng), max(2, args.repeat // 2))
    print(f"{'naive baseline (loop + full Poisson)':38s} {med_n:10.4f} {best_n:10.4f}")
    verdict = "met" if med < 0.5 else "NOT met"
    print(f"speed-up over the baseline: {med_n / med:.1f}x; target < 0.5 s: {verdict}")

    n = 5000
    t = time.perf_counter()
    render_spot_cutouts(n, "broad", rng=1)
    dt = time.perf_counter() - t
    print(f"{'render_spot_cutouts (broad mix)':38s} {n / dt:10.0f} cutouts/s")

    from bluesky import RunEngine

    from laue_live.plans import raster_scan
    from laue_live.sim import SimLaueDetector, SingleCrystal, make_sim_stage

    x, y = make_sim_stage()
    det = SimLaueDetector("laue", sample=SingleCrystal("Si", seed=0), x_motor=x, y_motor=y)
    RE = RunEngine({})
    t = time.perf_counter()
    RE(raster_scan([det], x, 0, 4, 5, y, 0, 4, 4))
    dt = time.perf_counter() - t
    print(f"{'RunEngine inline raster 5 x 4':38s} {20 / dt:10.2f} frames/s ({dt:.1f} s)")


if __name__ == "__main__":
    main()
