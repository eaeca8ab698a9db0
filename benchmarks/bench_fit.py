"""Gaussian fit speed: laue-live's batched fit vs LaueTools' gaussfit vs scipy least_squares, same cutouts.

Cutouts: every spot that ``find_peaks`` finds on the two real BM32 frames of ``shared/data/bm32`` plus
synthetic Poisson-noised Gaussians (peak heights 200-60000 ADU, sigmas 0.5-6 px, offsets <= 2 px).
All three fitters see the same float64 stack and the same model (axis-aligned Gaussian + constant):

* laue-live ``fit_gaussians`` on ONE CPU thread, tight tolerances (xtol 1e-7 px, ftol 1e-10), best
  of ``--repeats`` runs, on its default CPU backend (numpy) and on the torch backend (the code path
  a GPU runs; ``torch.set_num_threads(1)``);
* LaueTools 3.2.19 ``fit2Dintensity.gaussfit`` (scipy ``leastsq``, numerical Jacobian, xtol 1e-3,
  its usual start values), run by ``shared/tools/lauetools_baseline.py`` in its own virtual
  environment (made by ``shared/tools/lauetools_env.sh``), one thread;
* scipy ``least_squares`` (trf, 2-point Jacobian, default tolerances) per spot on a subset, from our
  moment start values.

Prints a side-by-side table (ms per spot, ratio to laue-live) and the agreement of the minima, and
writes JSON. Usage::

    .venv/bin/python benchmarks/bench_fit.py [--n-synth 2000] [--json out/bench_fit.json]

``LAUE_LIVE_SHARED`` overrides the location of ``shared/`` (default: ``../shared`` beside the repo).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def shared_dir() -> Path:
    return Path(os.environ.get("LAUE_LIVE_SHARED", REPO.parent / "shared")).resolve()


def make_cutouts(n_synth: int, seed: int = 0):
    import tifffile

    from laue_live.spots import extract_cutouts, find_peaks

    real = []
    for name in ("nw1_0000.tif", "nw1_0001.tif"):
        f = tifffile.imread(shared_dir() / "data" / "bm32" / name)
        real.append(extract_cutouts(f, find_peaks(f)))
    real = np.concatenate(real).astype(np.float64)
    rng = np.random.default_rng(seed)
    x = np.arange(32) - 16.0
    sr, sc = rng.uniform(0.5, 6, n_synth), rng.uniform(0.5, 6, n_synth)
    h = np.exp(rng.uniform(np.log(200), np.log(60000), n_synth))
    mr, mc = rng.uniform(-2, 2, n_synth), rng.uniform(-2, 2, n_synth)
    bg = rng.uniform(950, 1100, n_synth)
    lam = bg[:, None, None] + h[:, None, None] * np.exp(
        -0.5 * ((x[None, :, None] - mr[:, None, None]) / sr[:, None, None]) ** 2
        - 0.5 * ((x[None, None, :] - mc[:, None, None]) / sc[:, None, None]) ** 2)
    synth = rng.poisson(lam).astype(np.float64)
    return real, synth


def cost_under_model(cut, bkg, height, mr, mc, sr, sc):
    """0.5 * sum of squared residuals of ``bkg + height * exp(...)``, mu relative to index 16."""
    x = np.arange(cut.shape[1]) - 16.0
    m = bkg[:, None, None] + height[:, None, None] * np.exp(
        -0.5 * ((x[None, :, None] - mr[:, None, None]) / sr[:, None, None]) ** 2
        - 0.5 * ((x[None, None, :] - mc[:, None, None]) / sc[:, None, None]) ** 2)
    return 0.5 * ((m - cut) ** 2).sum(axis=(1, 2))


def bench_ours(stack, repeats, backend="auto"):
    import torch

    from laue_live.spots import fit_gaussians

    torch.set_num_threads(1)
    fit_gaussians(stack[:64], backend=backend)  # warm-up (lazy init of torch kernels)
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fit = fit_gaussians(stack, backend=backend)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return fit, min(times), times, min(cpu)


def bench_per_frame(repeats):
    """The live case: each real frame's cutouts fitted in their own call, and analyze_frame end to end."""
    import tifffile
    import torch

    from laue_live.describe import analyze_frame
    from laue_live.spots import extract_cutouts, find_peaks, fit_gaussians

    torch.set_num_threads(1)
    frames = [tifffile.imread(shared_dir() / "data" / "bm32" / n) for n in ("nw1_0000.tif", "nw1_0001.tif")]
    cuts = [extract_cutouts(f, find_peaks(f)) for f in frames]
    n = sum(len(c) for c in cuts)
    fit_cpu, frame_wall, frame_cpu = [], [], []
    for _ in range(repeats):
        c0 = time.process_time()
        for c in cuts:
            fit_gaussians(c)
        fit_cpu.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        for f in frames:
            analyze_frame(f)
        frame_wall.append((time.perf_counter() - t0) / len(frames))
        frame_cpu.append((time.process_time() - c0) / len(frames))
    return {"n_spots": n, "fit_cpu_ms_per_spot": 1e3 * min(fit_cpu) / n,
            "analyze_frame_wall_ms": 1e3 * min(frame_wall), "analyze_frame_cpu_ms": 1e3 * min(frame_cpu)}


def bench_lauetools(stack, repeats):
    env_sh = shared_dir() / "tools" / "lauetools_env.sh"
    script = shared_dir() / "tools" / "lauetools_baseline.py"
    venv = REPO / ".lauetools-venv"
    py = subprocess.run(["bash", str(env_sh), str(venv)], capture_output=True, text=True, check=True)
    lt_python = py.stdout.strip().splitlines()[-1]
    env = {**os.environ, **ONE_THREAD_ENV}

    def child_cpu():
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime

    with tempfile.TemporaryDirectory() as tmp:
        npy, one = Path(tmp) / "cutouts.npy", Path(tmp) / "one.npy"
        np.save(npy, stack)
        np.save(one, stack[:1])
        out = Path(tmp) / "fits.csv"
        per_spot, cpu_per_spot = [], []
        for _ in range(repeats):
            # CPU seconds of a 1-cutout run (interpreter + LaueTools imports) are subtracted, so that
            # the CPU figure, like ours, counts the fitting only; wall time is the script's own.
            c0 = child_cpu()
            subprocess.run([lt_python, str(script), str(one)], capture_output=True, env=env, check=True)
            c1 = child_cpu()
            r = subprocess.run([lt_python, str(script), str(npy), "--xtol", "1e-3", "--out", str(out)],
                               capture_output=True, text=True, env=env, check=True)
            c2 = child_cpu()
            m = re.search(r"ms_per_spot=([0-9.]+)", r.stdout)
            per_spot.append(float(m.group(1)))
            cpu_per_spot.append(1e3 * max((c2 - c1) - (c1 - c0), 0.0) / max(len(stack) - 1, 1))
        fits = np.loadtxt(out, delimiter=",", skiprows=1)
    return fits, min(per_spot), per_spot, lt_python, min(cpu_per_spot)


def bench_scipy(stack, n):
    import torch
    from scipy.optimize import least_squares

    from laue_live.spots import moment_start

    sub = stack[:n]
    st = moment_start(torch.as_tensor(sub), 16).numpy()
    x = np.arange(32) - 16.0
    res = []
    t0, c0 = time.perf_counter(), time.process_time()
    for d, s in zip(sub, st, strict=False):
        p0 = np.array([s[0], s[1], s[2], s[3], np.exp(s[4]), np.exp(s[5])])

        def resid(p, d=d):
            return (p[1] + p[0] * np.exp(-0.5 * ((x[:, None] - p[2]) / p[4]) ** 2
                                         - 0.5 * ((x[None, :] - p[3]) / p[5]) ** 2) - d).ravel()

        r = least_squares(resid, p0, method="trf")
        res.append([r.x[1], r.x[0], r.x[2], r.x[3], abs(r.x[4]), abs(r.x[5]), r.cost])
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    return np.array(res), 1e3 * dt / len(sub), 1e3 * dc / len(sub)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-synth", type=int, default=2000,
                    help="synthetic cutouts added to the real ones (all fitted in one call, as "
                         "analyze_frames batches several frames)")
    ap.add_argument("--n-scipy", type=int, default=300, help="cutouts fitted by the scipy baseline")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of laue-live (best kept)")
    ap.add_argument("--lt-repeats", type=int, default=1, help="timed runs of LaueTools (best kept)")
    ap.add_argument("--no-lauetools", action="store_true", help="skip LaueTools (no venv available)")
    ap.add_argument("--json", type=Path, default=REPO / "out" / "bench_fit.json")
    a = ap.parse_args(argv)

    real, synth = make_cutouts(a.n_synth)
    stack = np.concatenate([real, synth])
    # interleave so that the scipy subset holds both kinds
    stack = stack[np.random.default_rng(1).permutation(len(stack))]
    n = len(stack)
    print(f"{n} cutouts: {len(real)} real (BM32 nw1_0000/0001) + {len(synth)} synthetic; 1 CPU thread each",
          flush=True)

    fit, t_ours, t_all, c_ours = bench_ours(stack, a.repeats)
    ours_ms, ours_cpu = 1e3 * t_ours / n, 1e3 * c_ours / n
    rows = [("laue-live fit_gaussians (batched LM, numpy backend, 1 thread)", n, ours_ms, ours_cpu)]
    _, t_torch, _, c_torch = bench_ours(stack, a.repeats, backend="torch")
    rows.append(("laue-live, same code on the torch backend (GPU path), 1 thread", n,
                 1e3 * t_torch / n, 1e3 * c_torch / n))
    result = {"n_cutouts": n, "n_real": len(real), "n_synth": len(synth),
              "laue_live_torch_backend": {"ms_per_spot": 1e3 * t_torch / n,
                                          "cpu_ms_per_spot": 1e3 * c_torch / n},
              "laue_live": {"ms_per_spot": ours_ms, "cpu_ms_per_spot": ours_cpu, "runs_s": t_all,
                            "converged": float(fit.converged.mean()),
                            "median_iterations": float(np.median(fit.n_iter))}}
    agreement = {}
    if not a.no_lauetools:
        lt, lt_ms, lt_all, lt_py, lt_cpu = bench_lauetools(stack, a.lt_repeats)
        rows.append(("LaueTools 3.2.19 gaussfit (leastsq, xtol 1e-3)", n, lt_ms, lt_cpu))
        lt_cost = cost_under_model(stack, lt[:, 0], lt[:, 1], lt[:, 2] - 16, lt[:, 3] - 16,
                                   np.abs(lt[:, 4]), np.abs(lt[:, 5]))
        both = fit.converged & np.isfinite(lt_cost)
        dpos = np.hypot(fit.mu_row - (lt[:, 2] - 16), fit.mu_col - (lt[:, 3] - 16))
        agreement["lauetools"] = {
            "median_cost_ratio_ours_over_lt": float(np.median(fit.cost[both] / lt_cost[both])),
            "frac_ours_lower_or_equal_cost": float(np.mean(fit.cost[both] <= lt_cost[both] * (1 + 1e-9))),
            "median_position_difference_px": float(np.median(dpos[both])),
        }
        result["lauetools"] = {"ms_per_spot": lt_ms, "cpu_ms_per_spot": lt_cpu, "runs_ms_per_spot": lt_all,
                               "python": lt_py}
    sp, sp_ms, sp_cpu = bench_scipy(stack, min(a.n_scipy, n))
    rows.append((f"scipy least_squares per spot (trf, 2-point) [{len(sp)} spots]", len(sp), sp_ms, sp_cpu))
    k = len(sp)
    ok = fit.converged[:k]
    agreement["scipy"] = {
        "median_cost_ratio_ours_over_scipy": float(np.median(fit.cost[:k][ok] / sp[ok, 6])),
        "frac_ours_lower_or_equal_cost": float(np.mean(fit.cost[:k][ok] <= sp[ok, 6] * (1 + 1e-9))),
        "median_position_difference_px": float(np.median(np.hypot(fit.mu_row[:k] - sp[:, 2],
                                                                  fit.mu_col[:k] - sp[:, 3])[ok])),
    }
    result["scipy"] = {"ms_per_spot": sp_ms, "cpu_ms_per_spot": sp_cpu, "n": len(sp)}
    result["agreement"] = agreement
    per_frame = bench_per_frame(a.repeats)
    result["per_frame"] = per_frame
    result["machine"] = {"platform": platform.platform(), "python": sys.version.split()[0],
                         "cpu_count": os.cpu_count(), "loadavg": os.getloadavg()}

    print()
    print("wall: elapsed ms per spot; cpu: CPU ms per spot of the fitting process (fairer on a busy machine)")
    print(f"{'fitter':<62} {'spots':>6} {'wall ms':>9} {'ratio':>7} {'cpu ms':>9} {'ratio':>7}")
    for name, cnt, ms, cpu in rows:
        print(f"{name:<62} {cnt:>6} {ms:>9.4f} {ms / ours_ms:>7.1f} {cpu:>9.4f} {cpu / ours_cpu:>7.1f}")
    print()
    print(f"one call per real frame ({per_frame['n_spots']} spots in 2 calls): fit "
          f"{per_frame['fit_cpu_ms_per_spot']:.4f} cpu ms/spot; analyze_frame (peaks + cutouts + fit + "
          f"descriptors) {per_frame['analyze_frame_wall_ms']:.0f} ms wall, "
          f"{per_frame['analyze_frame_cpu_ms']:.0f} ms cpu per 2018 x 2016 frame")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"laue-live: {100 * fit.converged.mean():.1f}% converged, "
          f"median {np.median(fit.n_iter):.0f} iterations")
    for who, ag in agreement.items():
        print(f"vs {who}: " + ", ".join(f"{key} = {val:.4g}" for key, val in ag.items()))
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=2))
    print(f"\nJSON -> {a.json}")


if __name__ == "__main__":
    main()
