"""Real frames: laue-live's peak search + fit beside LaueTools' PeakSearch + Gaussian fits, same run.

For every real frame of ``shared/data`` (two BM32 sCMOS GaN/Si frames, a BM32 sCMOS Si frame, a
MarCCD165 Ge frame), one CPU thread each:

* **LaueTools 3.2.19** ``readmccd.PeakSearch`` with its Gaussian fits (auto background, threshold 70,
  box 16: the settings of the BM32 peak lists in ``shared``), in its own venv
  (``shared/tools/lauetools_env.sh``; ``LAUETOOLS_PY`` overrides); CPU seconds of the call;
* **laue-live** ``analyze_frame`` (automatic mask, peak search, cutouts, exact fit, descriptors,
  2theta/chi), median CPU seconds of ``--repeats`` runs;

both against LaueTools' *own lists* of the frame (the ``.dat``/``.csv`` in ``shared``): how many
spots, the share of the listed peaks found within 1.5 px (a row's fitted position or brightest
pixel), of the indexed peaks (``.fit``; for the nw1 frames the list), the median distance of the
matched fitted positions, rows closer than 1.5 px; then the issue-14 targets. Also: the dense
simulated frame (~1,500 spots, fit included, < 0.15 s CPU) and the simulated conditions that the
shared frames lack (a +700 ADU fluorescence hump, a MarCCD's round window, a ~17 ADU background,
saturated streaks). Prints Markdown tables and writes JSON::

    .venv/bin/python benchmarks/bench_real_frames.py [--repeats 5] [--json out/bench_real_frames.json]
"""

from __future__ import annotations

import os

ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
os.environ.update(ONE_THREAD_ENV)  # before numpy: the fit's batched products stay on one thread

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
# name -> (frame, LaueTools' list, LaueTools' indexation or None, calibration, CCDLabel)
FRAMES = {
    "nw1_0000": ("bm32/nw1_0000.tif", "bm32/peaks_GaN_Si_nw1_0000_box16.csv", None, "bm32/calib.det",
                 "sCMOS"),
    "nw1_0001": ("bm32/nw1_0001.tif", "bm32/peaks_GaN_Si_nw1_0001_box16.csv", None, "bm32/calib.det",
                 "sCMOS"),
    "AH12_CMT_r14_0200": ("lauetools/AH12_CMT_r14_0200.tif", "lauetools/AH12_CMT_r14_0200_LT_0.dat",
                          "lauetools/AH12_CMT_r14_0200_LT_0.fit", "lauetools/testcalib.det", "sCMOS"),
    "Ge_blanc_0000": ("lauetools/Ge_blanc_0000.mccd", "lauetools/Ge_blanc_0000_LT_5.dat",
                      "lauetools/Ge_blanc_0000_LT_5.fit", "lauetools/calibGe111.det", "MARCCD165"),
}


def shared_dir() -> Path:
    return Path(os.environ.get("LAUE_LIVE_SHARED", REPO.parent / "shared")).resolve()


def lauetools_python() -> str | None:
    env = os.environ.get("LAUETOOLS_PY")
    if env:
        return env
    venv = REPO / ".lauetools-venv" / "bin" / "python"
    if venv.exists():
        return str(venv)
    script = shared_dir() / "tools" / "lauetools_env.sh"
    if script.exists():
        out = subprocess.run(["bash", str(script), str(REPO / ".lauetools-venv")], capture_output=True,
                             text=True)
        if out.returncode == 0:
            return out.stdout.strip()
    return None


def read_list(path: Path) -> np.ndarray:
    """0-based (row, col) of a LaueTools peak list (.csv or .dat)."""
    from laue_live.spots import read_lauetools_dat

    df = pd.read_csv(path) if path.suffix == ".csv" else read_lauetools_dat(path)
    return np.c_[df["peak_Y"] - 1, df["peak_X"] - 1]


def cpu_median(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn()
        times.append(time.process_time() - t0)
    return float(np.median(times)), out


def found(pos: np.ndarray, s: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dp, _ = cKDTree(pos).query(pts)
    ds, _ = cKDTree(s).query(pts) if len(s) else (np.full(len(pts), np.inf), None)
    return (dp <= 1.5) | (ds <= 1.5), dp


def real_rows(repeats: int, lt_py: str | None) -> list[dict]:
    import fabio
    import torch
    from conftest import read_fit_spots

    from laue_live.describe import analyze_frame
    from laue_live.geometry import read_det

    torch.set_num_threads(1)
    d = shared_dir() / "data"
    rows = []
    for name, (frame_f, list_f, fit_f, det_f, ccd) in FRAMES.items():
        if not (d / frame_f).exists():
            print(f"skip {name}: {d / frame_f} not found", file=sys.stderr)
            continue
        frame = fabio.open(str(d / frame_f)).data
        cal = read_det(d / det_f)[0]
        listed = read_list(d / list_f)
        indexed = read_fit_spots(d / fit_f)[["row", "col"]].to_numpy() if fit_f else listed
        analyze_frame(frame, calibration=cal)  # warm-up: imports, first-call costs
        cpu, t = cpu_median(lambda f=frame, c=cal: analyze_frame(f, calibration=c), repeats)
        pos, s = t[["row", "col"]].to_numpy(), t[["row0", "col0"]].to_numpy(float)
        ok_l, dist = found(pos, s, listed)
        ok_i, _ = found(pos, s, indexed)
        row = {"frame": name, "detector": ccd, "listed": len(listed), "indexed": len(indexed),
               "ours_n": len(t), "ours_good": int(t["good"].sum()), "ours_found_listed": float(ok_l.mean()),
               "ours_found_indexed": float(ok_i.mean()),
               "ours_median_px": float(np.median(dist[dist <= 1.5])),
               "ours_pairs_1p5": len(cKDTree(pos).query_pairs(1.5)), "ours_cpu_s": cpu}
        if lt_py:
            env = {**os.environ, **ONE_THREAD_ENV}
            script = str(REPO / "benchmarks" / "_lauetools_peaksearch.py")
            out = subprocess.run([lt_py, script, str(d / frame_f), ccd], capture_output=True, text=True,
                                 env=env)
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
            if out.returncode == 0 and line:
                lt = json.loads(line[-1])
                xy = np.array(lt["xy"]).reshape(-1, 2)
                lt_pos = np.c_[xy[:, 1] - 1, xy[:, 0] - 1]
                lf, _ = found(lt_pos, np.zeros((0, 2)), listed) if len(lt_pos) else (np.zeros(1, bool), None)
                li, _ = found(lt_pos, np.zeros((0, 2)), indexed) if len(lt_pos) else (np.zeros(1, bool), None)
                row.update(lt_n=lt["n"], lt_found_listed=float(lf.mean()), lt_found_indexed=float(li.mean()),
                           lt_cpu_s=lt["cpu"], speedup=lt["cpu"] / cpu)
            else:
                print(f"LaueTools failed on {name}: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        rows.append(row)
    return rows


def spots_table(n: int, shape: tuple[int, int], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"row": rng.uniform(0, shape[0] - 1, n), "col": rng.uniform(0, shape[1] - 1, n),
                         "intensity": np.exp(rng.uniform(np.log(2e-3), 0, n))})


def simulated_rows(repeats: int) -> list[dict]:
    from laue_live.describe import analyze_frame
    from laue_live.sim import RenderConfig, render_frame

    out = []
    # the dense frame of the pipeline bench (1600 rendered, ~1,500 found), fit included
    dense = render_frame(spots_table(1600, (2018, 2016), 0), RenderConfig(), rng=0).frame
    analyze_frame(dense)
    cpu, t = cpu_median(lambda: analyze_frame(dense), repeats)
    out.append({"case": "dense BM32-like frame, 1600 spots rendered", "spots": len(t), "cpu_s": cpu,
                "target": "< 0.15 s CPU", "met": cpu < 0.15})
    # a +700 ADU fluorescence hump with its Poisson noise vs the same spots without it
    sp = spots_table(300, (2018, 2016), 1)
    n = {}
    for bg in (35, 735):
        fr = render_frame(sp, RenderConfig(background=bg, hump_width=0.25), rng=7).frame
        n[bg] = len(analyze_frame(fr))
    out.append({"case": "+700 ADU hump vs none (300 spots)", "spots": f"{n[735]} vs {n[35]}",
                "target": "within 10%", "met": abs(n[735] / n[35] - 1) <= 0.1})
    # MarCCD-like: round window (zeros outside), ~40 ADU background
    cfg = RenderConfig.for_detector("marccd165", background=30, peak_max=20000)
    fr = render_frame(spots_table(600, (2048, 2048), 2), cfg, rng=3, frame_shape=(2048, 2048)).frame
    t = analyze_frame(fr)
    outside = int((np.hypot(t["row"] - 1023.5, t["col"] - 1023.5) > 1024).sum())
    out.append({"case": "MarCCD round window (600 spots)", "spots": len(t), "outside": outside,
                "target": "no spot outside", "met": outside == 0})
    # steel-like: ~17 ADU background, weak spots
    cfg = RenderConfig.for_detector("marccd165", pedestal=10, background=7, peak_max=3000, gain=1.0,
                                    read_noise=2.0, min_peak=5)
    r = render_frame(spots_table(800, (2048, 2048), 4), cfg, rng=5, frame_shape=(2048, 2048))
    t = analyze_frame(r.frame)
    tr = r.truth[np.hypot(r.truth["row"] - 1023.5, r.truth["col"] - 1023.5) < 1010]
    strong = tr[tr["peak_height"] > 30]  # > 10 x the ~3 ADU noise
    ok, _ = found(t[["row", "col"]].to_numpy(), t[["row0", "col0"]].to_numpy(float),
                  strong[["row", "col"]].to_numpy())
    out.append({"case": "~17 ADU background, weak spots (MarCCD)", "spots": len(t),
                "found_peak_gt_10_sigma": float(ok.mean()), "target": "weak spots found",
                "met": ok.mean() > 0.9})
    # CdTe-like: saturated streaks on a MarCCD
    mix = {"streaked": 0.3, "saturated": 0.1, "gaussian": 0.4, "elongated": 0.2}
    cfg = RenderConfig.for_detector("marccd165", shape_mix=mix, background=40)
    fr = render_frame(spots_table(1000, (2048, 2048), 6), cfg, rng=7, frame_shape=(2048, 2048)).frame
    cpu, t = cpu_median(lambda: analyze_frame(fr), 1)
    pairs = len(cKDTree(t[["row", "col"]].to_numpy()).query_pairs(1.5))
    out.append({"case": "saturated streaks (MarCCD, 1000 spots)", "spots": len(t), "pairs_1p5": pairs,
                "cpu_s": cpu, "target": "no two rows within 1.5 px", "met": pairs == 0})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=REPO / "out" / "bench_real_frames.json")
    ap.add_argument("--no-lauetools", action="store_true", help="Skip LaueTools' PeakSearch.")
    a = ap.parse_args()
    lt_py = None if a.no_lauetools else lauetools_python()
    load = os.getloadavg()
    rows = real_rows(a.repeats, lt_py)
    sims = simulated_rows(a.repeats)
    print(f"# Real frames: laue-live vs LaueTools 3.2.19 (one thread, CPU s; load {load[0]:.1f})\n")
    print("| frame | LaueTools lists (indexed) | LT run: spots, found listed, CPU s | laue-live: spots "
          "(good) | found listed | found indexed | median px | pairs < 1.5 px | CPU s | LT / ours |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lt = (f"{r['lt_n']}, {r['lt_found_listed']:.1%}, {r['lt_cpu_s']:.2f}" if "lt_n" in r else "n/a")
        sp = f"{r['speedup']:.0f}x" if "speedup" in r else "n/a"
        print(f"| {r['frame']} | {r['listed']} ({r['indexed']}) | {lt} | {r['ours_n']} ({r['ours_good']}) | "
              f"{r['ours_found_listed']:.1%} | {r['ours_found_indexed']:.1%} | {r['ours_median_px']:.3f} | "
              f"{r['ours_pairs_1p5']} | {r['ours_cpu_s']:.3f} | {sp} |")
    print("\nTargets (issue 14): found indexed >= 98%, found listed >= 90%, median <= 0.05 px, spots <= 1.5x "
          "listed, no pair < 1.5 px, LaueTools CPU / ours >= 10")
    for r in rows:
        checks = {"indexed>=98%": r["ours_found_indexed"] >= 0.98,
                  "listed>=90%": r["ours_found_listed"] >= 0.90, "median<=0.05": r["ours_median_px"] <= 0.05,
                  "count<=1.5x": r["ours_n"] <= 1.5 * r["listed"], "no pairs": r["ours_pairs_1p5"] == 0}
        if "speedup" in r:
            checks["10x faster"] = r["speedup"] >= 10
        r["targets"] = checks
        print(f"- {r['frame']}: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in checks.items()))
    print("\n# Simulated conditions\n")
    for s in sims:
        print("- " + ", ".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}"
                               for k, v in s.items()))
    a.json.parent.mkdir(parents=True, exist_ok=True)
    report = {"load_average": load, "real": rows, "simulated": sims}
    a.json.write_text(json.dumps(report, indent=1, default=str))
    print(f"\nJSON -> {a.json}")


if __name__ == "__main__":
    main()
