"""Indexing: laue-live's Indexer beside LaueTools' own indexing of the same spots, in the same run.

Rows:

* the two real indexed frames of ``shared/data/lauetools`` (Si sCMOS, Ge MarCCD): time per frame,
  matched spots, mean pixel deviation, orientation beside LaueTools' ``.fit`` U (an orientation-only
  refinement: compared with ours in orientation-only mode too) and beside LaueTools' own run
  (``spotsset.IndexSpotsSet``, strain refined, by ``benchmarks/lauetools_index.py`` in LaueTools'
  environment made by ``shared/tools/lauetools_env.sh``);
* simulated single-grain Si spot tables (BM32 geometry, random orientation, deviatoric strain up to
  2e-3, 0.05 px position noise, 20 spurious spots): frames per second on one thread and with two
  threads sharing one Indexer, misorientation and strain error against the truth; LaueTools on the
  first few of the same tables;
* simulated polycrystal tables with 3 grains per frame: grains found;
* wrong setups: each real frame's spots with the other frame's material and calibration.

Usage::

    .venv/bin/python benchmarks/bench_indexing.py [--frames 40] [--lauetools-frames 5] [--json out.json]

``LAUE_LIVE_SHARED`` overrides the location of ``shared/`` (default: ``../shared`` beside the repo).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from laue_live.geometry import BM32_CALIBRATION, decompose_ub, deviatoric, random_rotation, read_det  # noqa: E402
from laue_live.indexing import Indexer, IndexerSettings, misorientation_deg, read_fit  # noqa: E402
from laue_live.sim import simulated_spot_table  # noqa: E402
from laue_live.spots import read_lauetools_dat  # noqa: E402

REAL = {
    "Si": ("AH12_CMT_r14_0200_LT_0.dat", "testcalib.det", "AH12_CMT_r14_0200_LT_0.fit"),
    "Ge": ("Ge_blanc_0000_LT_5.dat", "calibGe111.det", "Ge_blanc_0000_LT_5.fit"),
}
DAT_HEADER = (
    "peak_X peak_Y peak_Itot peak_Isub peak_fwaxmaj peak_fwaxmin peak_inclination Xdev Ydev peak_bkg Ipixmax"
)


def shared_dir() -> Path:
    return Path(os.environ.get("LAUE_LIVE_SHARED", REPO.parent / "shared"))


def lauetools_python() -> str | None:
    env_sh = shared_dir() / "tools" / "lauetools_env.sh"
    try:
        out = subprocess.run(
            ["bash", str(env_sh), str(REPO / ".lauetools-venv")],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"LaueTools environment unavailable: {exc}", file=sys.stderr)
        return None
    return out.stdout.strip().splitlines()[-1]


def run_lauetools(jobs: list[dict]) -> list[dict]:
    py = lauetools_python()
    if py is None:
        return [{"error": "no LaueTools environment"} for _ in jobs]
    with tempfile.TemporaryDirectory() as tmp:
        jf, of = Path(tmp) / "jobs.json", Path(tmp) / "out.json"
        jf.write_text(json.dumps(jobs))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        subprocess.run(
            [py, str(REPO / "benchmarks" / "lauetools_index.py"), str(jf), str(of)],
            env=env,
            capture_output=True,
            check=True,
            timeout=3600,
        )
        return json.loads(of.read_text())


def job(dat: Path, cal, material: str) -> dict:
    return {
        "dat": str(dat),
        "calibration": cal.params,
        "pixel_size": cal.pixel_size,
        "frame_shape": list(cal.frame_shape),
        "material": material,
        "emin": 5.0,
        "emax": 23.0,
        "grains": 1,
    }


def timed(indexer, tables, repeats=3):
    """Best-of-repeats wall and CPU seconds per table, and the last results."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        results = [indexer.index(t) for t in tables]
        wall.append((time.perf_counter() - t0) / len(tables))
        cpu.append((time.process_time() - c0) / len(tables))
    return min(wall), min(cpu), results


def bench_real(lt_results) -> list[dict]:
    rows = []
    d = shared_dir() / "data" / "lauetools"
    for k, (mat, (dat, det, fit)) in enumerate(REAL.items()):
        cal = read_det(d / det)[0]
        spots = read_lauetools_dat(d / dat)
        fitg = read_fit(d / fit)[0]
        ix = Indexer(mat, cal)
        wall, cpu, (res,) = timed(ix, [spots], repeats=5)
        g = res.grains[0]
        ix_o = Indexer(mat, cal, settings=IndexerSettings(refine_strain=False))
        go = ix_o.index(spots).grains[0]
        row = {
            "frame": f"{mat} ({dat})",
            "spots": len(spots),
            "ours_wall_ms": 1e3 * wall,
            "ours_cpu_ms": 1e3 * cpu,
            "ours_matched": g.n_matched,
            "ours_deviation_px": g.deviation_px,
            "fit_file_matched": len(fitg.spots),
            "fit_file_deviation_px": fitg.mean_deviation_px,
            "mis_vs_fit_U_deg_strain": misorientation_deg(g.U, fitg.U, ix.rotations),
            "mis_vs_fit_U_deg_orientation_only": misorientation_deg(go.U, fitg.U, ix.rotations),
            "orientation_only_deviation_px": go.deviation_px,
        }
        lt = lt_results[k]
        if "error" not in lt and lt["grains"]:
            lg = lt["grains"][0]
            u_lt, e_lt = decompose_ub(np.array(lg["UB"]) @ np.array(lg["B0"]), ix.B)
            row.update(
                {
                    "lauetools_wall_ms": 1e3 * lt["seconds"],
                    "lauetools_cpu_ms": 1e3 * lt["cpu_seconds"],
                    "lauetools_matched": lg["n_indexed"],
                    "lauetools_deviation_px": lg["pixdev"],
                    "mis_vs_lauetools_run_deg": misorientation_deg(g.U, u_lt, ix.rotations),
                }
            )
        rows.append(row)
    return rows


def strained_tables(n, noise, seed=0):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        u = random_rotation(rng)
        e = rng.uniform(-2e-3, 2e-3, (3, 3))
        e = (e + e.T) / 2
        cases.append(
            (
                u,
                e,
                simulated_spot_table(
                    [("Si", u, e)], BM32_CALIBRATION, rng, position_noise_px=noise, n_spurious=20
                ),
            )
        )
    return cases


def accuracy(ix, cases, results):
    mis, err, missed = [], [], 0
    for (u, e, _), res in zip(cases, results, strict=True):
        if len(res.grains) != 1:
            missed += 1
            continue
        g = res.grains[0]
        traces = np.einsum("ij,nji->n", g.U.T @ u, ix.rotations)
        r = ix.rotations[int(np.argmax(traces))]
        mis.append(misorientation_deg(g.U, u, ix.rotations))
        err.append(float(np.abs(r @ g.strain @ r.T - deviatoric(e)).max()))
    return {
        "frames": len(cases),
        "not_one_grain": missed,
        "misorientation_max_deg": max(mis),
        "strain_error_max": max(err),
        "strain_error_median": float(np.median(err)),
    }


def bench_simulated(n, n_lt, lt_py_ok) -> dict:
    ix = Indexer("Si", BM32_CALIBRATION)
    out = {}
    cases = strained_tables(n, 0.05)
    tables = [c[2] for c in cases]
    wall, cpu, results = timed(ix, tables)
    out["single_grain"] = {
        "spots_per_frame": float(np.mean([len(t) for t in tables])),
        "ours_wall_ms": 1e3 * wall,
        "ours_cpu_ms": 1e3 * cpu,
        "ours_frames_per_s": 1 / wall,
        **accuracy(ix, cases, results),
    }
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(ix.index, tables))
    out["single_grain"]["two_threads_frames_per_s"] = len(tables) / (time.perf_counter() - t0)
    for noise in (0.1, 0.15):
        c = strained_tables(n // 2, noise, seed=1)
        out[f"accuracy_noise_{noise}px"] = accuracy(ix, c, [ix.index(t[2]) for t in c])
    if n_lt and lt_py_ok:
        with tempfile.TemporaryDirectory() as tmp:
            jobs = []
            for i, t in enumerate(tables[:n_lt]):
                p = Path(tmp) / f"sim_{i}.dat"
                data = np.zeros((len(t), 11))
                data[:, 0], data[:, 1] = t["col"] + 1, t["row"] + 1
                data[:, 2] = data[:, 3] = t["intensity"] * 1e4
                order = np.argsort(-data[:, 2])
                np.savetxt(p, data[order], fmt="%.4f", header=DAT_HEADER, comments="")
                jobs.append(job(p, BM32_CALIBRATION, "Si"))
            lt = run_lauetools(jobs)
        ok = [r for r in lt if "error" not in r and r["grains"]]
        mis = []
        for (u, _, _), r in zip(cases[:n_lt], lt, strict=True):
            if "error" in r or not r["grains"]:
                continue
            lg = r["grains"][0]
            u_lt, _ = decompose_ub(np.array(lg["UB"]) @ np.array(lg["B0"]), ix.B)
            mis.append(misorientation_deg(u_lt, u, ix.rotations))
        out["single_grain"].update(
            {
                "lauetools_frames": len(jobs),
                "lauetools_indexed": len(ok),
                "lauetools_wall_ms": 1e3 * float(np.mean([r["seconds"] for r in ok])) if ok else None,
                "lauetools_cpu_ms": 1e3 * float(np.mean([r["cpu_seconds"] for r in ok])) if ok else None,
                "lauetools_misorientation_max_deg": max(mis) if mis else None,
            }
        )
    return out


def bench_polycrystal(n) -> dict:
    ix = Indexer("Si", BM32_CALIBRATION)
    rng = np.random.default_rng(3)
    found = extra = 0
    tables, truths = [], []
    for _ in range(n):
        us = [random_rotation(rng) for _ in range(3)]
        truths.append(us)
        tables.append(
            simulated_spot_table(
                [("Si", u, None) for u in us], BM32_CALIBRATION, rng, position_noise_px=0.05, n_spurious=20
            )
        )
    wall, cpu, results = timed(ix, tables, repeats=1)
    for us, res in zip(truths, results, strict=True):
        hits = sum(any(misorientation_deg(g.U, u, ix.rotations) < 0.02 for g in res.grains) for u in us)
        found += hits
        extra += len(res.grains) - hits
    return {
        "frames": n,
        "grains": 3 * n,
        "found": found,
        "extra": extra,
        "found_fraction": found / (3 * n),
        "ours_wall_ms": 1e3 * wall,
        "ours_cpu_ms": 1e3 * cpu,
    }


def bench_wrong() -> list[dict]:
    d = shared_dir() / "data" / "lauetools"
    rows = []
    for spots_of, setup_of in (("Si", "Ge"), ("Ge", "Si")):
        spots = read_lauetools_dat(d / REAL[spots_of][0])
        cal = read_det(d / REAL[setup_of][1])[0]
        res = Indexer(setup_of, cal).index(spots)
        rows.append(
            {
                "spots": spots_of,
                "indexed_as": f"{setup_of} with {REAL[setup_of][1]}",
                "grains": len(res.grains),
                "best_rejected": str(res.best_rejected),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=40, help="simulated single-grain frames")
    ap.add_argument("--lauetools-frames", type=int, default=5, help="of them, indexed by LaueTools too")
    ap.add_argument("--polycrystal-frames", type=int, default=10)
    ap.add_argument("--json", type=Path, help="write the figures as JSON")
    a = ap.parse_args()
    load = os.getloadavg()[0]
    d = shared_dir() / "data" / "lauetools"
    lt_jobs = [job(d / dat, read_det(d / det)[0], m) for m, (dat, det, _) in REAL.items()]
    lt_real = run_lauetools(lt_jobs)
    report = {
        "load_average_1min": load,
        "cpu_count": os.cpu_count(),
        "real": bench_real(lt_real),
        "simulated": bench_simulated(a.frames, a.lauetools_frames, "error" not in lt_real[0]),
        "polycrystal": bench_polycrystal(a.polycrystal_frames),
        "wrong_setup": bench_wrong(),
    }
    print(f"# Indexing benchmark (load average {load:.1f} at start, {os.cpu_count()} CPUs)\n")
    print(
        "| frame | spots | ours ms (CPU) | LaueTools ms (CPU) | matched ours / LT run / .fit | "
        "deviation px ours / LT run / .fit | U vs LT run | U vs .fit (strain / orient.-only) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in report["real"]:
        print(
            f"| {r['frame']} | {r['spots']} | {r['ours_wall_ms']:.1f} ({r['ours_cpu_ms']:.1f}) | "
            f"{r.get('lauetools_wall_ms', float('nan')):.0f} "
            f"({r.get('lauetools_cpu_ms', float('nan')):.0f}) | "
            f"{r['ours_matched']} / {r.get('lauetools_matched', '-')} / {r['fit_file_matched']} | "
            f"{r['ours_deviation_px']:.3f} / {r.get('lauetools_deviation_px', float('nan')):.3f} / "
            f"{r['fit_file_deviation_px']:.3f} | {r.get('mis_vs_lauetools_run_deg', float('nan')):.1e} deg | "
            f"{r['mis_vs_fit_U_deg_strain']:.4f} / {r['mis_vs_fit_U_deg_orientation_only']:.4f} deg |"
        )
    s = report["simulated"]["single_grain"]
    print(
        f"\nSimulated single-grain Si ({s['frames']} frames, {s['spots_per_frame']:.0f} spots each, "
        "0.05 px noise, "
        f"strain <= 2e-3): ours {s['ours_wall_ms']:.1f} ms/frame wall ({s['ours_cpu_ms']:.1f} CPU) = "
        f"{s['ours_frames_per_s']:.1f} frames/s on one thread, "
        f"{s['two_threads_frames_per_s']:.1f} frames/s with "
        f"two threads; LaueTools {s.get('lauetools_wall_ms') or float('nan'):.0f} ms/frame "
        f"({s.get('lauetools_indexed', 0)}/{s.get('lauetools_frames', 0)} indexed)."
    )
    for key in ("single_grain", "accuracy_noise_0.1px", "accuracy_noise_0.15px"):
        acc = report["simulated"][key]
        print(
            f"  {key}: misorientation max {acc['misorientation_max_deg']:.4f} deg, strain error max "
            f"{acc['strain_error_max']:.1e} (median {acc['strain_error_median']:.1e}), "
            f"{acc['not_one_grain']} frames without exactly one grain"
        )
    p = report["polycrystal"]
    print(
        f"\nPolycrystal, 3 grains per frame: {p['found']}/{p['grains']} found "
        f"({100 * p['found_fraction']:.0f}%), "
        f"{p['extra']} extra; {p['ours_wall_ms']:.0f} ms/frame"
    )
    print("\nWrong setups:")
    for w in report["wrong_setup"]:
        print(f"  {w['spots']} spots as {w['indexed_as']}: {w['grains']} grains; {w['best_rejected']}")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
