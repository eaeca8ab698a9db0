"""The pipeline benchmark behind ``laue-live bench`` and ``benchmarks/bench_pipeline.py``.

One run measures, on the chosen device and the same frames: every stage and the whole path of
:class:`FramePipeline` (fit, CNN in the fast precision, CNN in float32), the numpy/scipy reference
(:func:`laue_live.analyze_frames`), LaueTools' own fit on the same cutouts (the paper's baseline,
through ``../shared/tools/lauetools_baseline.py``), the paper's Table 5 as ratios, optionally the
service with its sinks (Tiled + 0MQ), and the analytic ceilings of an H100 for the measured work.
Frames come from :mod:`laue_live.sim` (dense BM32-size frames) and the real BM32 frames when the
shared data folder is there. This module imports the simulator, catalog and stream packages lazily:
it is a measurement tool, never used by the service.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BenchConfig", "run_benchmark", "format_report", "write_json", "PAPER_TABLE5_MS", "H100"]

log = logging.getLogger(__name__)

#: The paper's Table 5, ms per spot.
PAPER_TABLE5_MS = {"cnn_gpu_rtx2080s": 0.027, "cnn_cpu_one_core": 0.647, "lauetools_fit_one_core": 2.089}

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
DESCRIBE_BYTES_PER_SPOT = 32 * 32 * 4 * 6  # cutout gather + descriptor passes over float32 cutouts


@dataclass
class BenchConfig:
    """What to measure.

    Parameters
    ----------
    quick
        Small run for tests and smoke checks (one small frame, no sinks, LaueTools only if its
        environment already exists): seconds.
    device
        torch device (``"auto"``, ``"cpu"``, ``"cuda"``).
    frames
        Distinct dense frames rendered (each analysed ``repeats`` times).
    spots
        Spots rendered per dense frame (the peak search finds a few % fewer: overlaps).
    frame_shape
        Size of the dense frames, px.
    repeats
        Timed passes over the frames per method.
    lauetools
        ``"auto"`` (use ``.lauetools-venv`` if it exists, else create it with the shared script,
        except in quick mode), ``"off"``, or the path of a python that has LaueTools.
    lauetools_spots
        Cutouts given to LaueTools (it takes ~2 ms each).
    sinks
        Measure the service with its sinks (starts a local Tiled server).
    sink_frames
        Frames sent through the sinks.
    model
        CNN model file; default the shipped one, else a random-weight paper network (same speed).
    threads
        torch intra-op threads of the pipelines on the CPU (default 1, the pipeline's default).
    seed
        Seed of the rendered frames.
    """

    quick: bool = False
    device: str = "auto"
    frames: int = 4
    spots: int = 1600
    frame_shape: tuple[int, int] = (2018, 2016)
    repeats: int = 5
    lauetools: str = "auto"
    lauetools_spots: int = 300
    sinks: bool = True
    sink_frames: int = 40
    model: str | None = None
    threads: int | None = None
    seed: int = 0

    @classmethod
    def quick_config(cls, **kw) -> BenchConfig:
        """Return the ``--quick`` settings."""
        base = {
            "quick": True,
            "frames": 1,
            "spots": 300,
            "frame_shape": (768, 768),
            "repeats": 2,
            "lauetools_spots": 20,
            "sinks": False,
            "sink_frames": 5,
        }
        base.update(kw)
        return cls(**base)


def _stats(lat_s: list[float], spots: list[int]) -> dict[str, float]:
    lat = np.asarray(lat_s, dtype=float)
    n_spots = float(np.sum(spots))
    total = float(lat.sum())
    return {
        "n": int(lat.size),
        "frames_per_s": lat.size / total if total else float("nan"),
        "spots_per_s": n_spots / total if total else float("nan"),
        "p50_ms": 1e3 * float(np.percentile(lat, 50)),
        "p99_ms": 1e3 * float(np.percentile(lat, 99)),
        "mean_ms": 1e3 * float(lat.mean()),
        "spots_per_frame": n_spots / max(lat.size, 1),
    }


def _shared_dir() -> Path:
    repo = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("LAUE_LIVE_SHARED", repo.parent / "shared"))


def _environment(device) -> dict[str, Any]:
    import scipy
    import torch

    import laue_live

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "device": str(device),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "laue_live": laue_live.__version__,
        "load_avg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }
    return env


def _dense_frames(cfg: BenchConfig) -> list[np.ndarray]:
    import pandas as pd

    from laue_live.sim import RenderConfig, render_frame

    rng = np.random.default_rng(cfg.seed)
    h, w = cfg.frame_shape
    frames = []
    for _ in range(cfg.frames):
        spots = pd.DataFrame(
            {
                "row": rng.uniform(0, h - 1, cfg.spots),
                "col": rng.uniform(0, w - 1, cfg.spots),
                "intensity": np.exp(rng.uniform(np.log(2e-3), 0, cfg.spots)),
            }
        )
        frames.append(render_frame(spots, RenderConfig(), rng=rng, frame_shape=(h, w)).frame)
    return frames


def _real_frames() -> list[np.ndarray]:
    d = _shared_dir() / "data" / "bm32"
    if not d.is_dir():
        return []
    import tifffile

    return [tifffile.imread(p) for p in sorted(d.glob("nw1_*.tif"))]


def _model(cfg: BenchConfig, tmp: Path) -> tuple[str | None, str]:
    if cfg.model:
        return cfg.model, cfg.model
    try:
        from laue_live.cnn import default_model_path

        return None, str(default_model_path())
    except Exception:  # noqa: BLE001 - no shipped weights: speed does not depend on them
        import torch

        from laue_live.cnn import SpotCNN, save_model

        torch.manual_seed(0)
        path = save_model(tmp / "random-paper-cnn.safetensors", SpotCNN().eval(), info={"version": "random"})
        return str(path), "random weights, paper architecture (speed only)"


def _time_pipeline(
    pipe, frames: list[np.ndarray], repeats: int
) -> tuple[list[float], list[int], list[float]]:
    """Time each frame: wall latency, spots found and process CPU time.

    CPU time is what the frame cost the machine, all threads together; on a loaded machine it stays
    near the idle-machine wall time x threads.
    """
    lat, spots, cpu = [], [], []
    for _ in range(repeats):
        for f in frames:
            c0, t0 = time.process_time(), time.perf_counter()
            (table,) = pipe.process([f])
            lat.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            spots.append(len(table))
    return lat, spots, cpu


def _stage_rows(pipe, frames, repeats) -> dict[str, dict[str, float]]:
    pipe.profile = True
    pipe.timings.clear()
    counts = []
    for _ in range(repeats):
        for f in frames:
            counts.append(len(pipe.process([f])[0]))
    pipe.profile = False
    rows = {}
    for stage, ts in pipe.timings.items():
        rows[stage] = _stats(ts, counts[: len(ts)])
    return rows


def _lauetools(cfg: BenchConfig, cutouts: np.ndarray, tmp: Path) -> dict[str, Any]:
    if cfg.lauetools == "off":
        return {"measured": False, "why": "disabled (--no-lauetools)"}
    shared = _shared_dir()
    script = shared / "tools" / "lauetools_baseline.py"
    if not script.is_file():
        return {"measured": False, "why": f"{script} not found (set LAUE_LIVE_SHARED)"}
    repo = Path(__file__).resolve().parents[2]
    py = cfg.lauetools if cfg.lauetools not in ("auto", "off") else None
    if py is None:
        venv_py = repo / ".lauetools-venv" / "bin" / "python"
        if venv_py.exists():
            py = str(venv_py)
        elif cfg.quick:
            return {"measured": False, "why": "no .lauetools-venv (quick mode does not create it)"}
        else:
            try:
                py = subprocess.run(
                    ["bash", str(shared / "tools" / "lauetools_env.sh"), str(repo / ".lauetools-venv")],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=900,
                ).stdout.strip()
            except (subprocess.SubprocessError, OSError) as exc:
                return {"measured": False, "why": f"cannot make the LaueTools environment: {exc}"}
    path = tmp / "cutouts.npy"
    np.save(path, cutouts.astype(np.float32))
    try:
        out = subprocess.run(
            [py, str(script), str(path)], capture_output=True, text=True, check=True, timeout=600
        ).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        return {"measured": False, "why": f"LaueTools baseline failed: {exc}"}
    m = re.search(r"ms_per_spot=([0-9.]+)", out)
    if not m:
        return {"measured": False, "why": f"unexpected LaueTools output {out!r}"}
    return {"measured": True, "ms_per_spot": float(m.group(1)), "n": len(cutouts), "python": py}


def _our_fit_on(cutouts: np.ndarray, device) -> dict[str, float]:
    from laue_live.spots import fit_gaussians

    fit_gaussians(cutouts[:8], device=device)
    t0 = time.perf_counter()
    fit = fit_gaussians(cutouts, device=device)
    dt = time.perf_counter() - t0
    return {
        "ms_per_spot": 1e3 * dt / len(cutouts),
        "mean_iterations": float(np.mean(fit.n_iter)),
        "converged": float(np.mean(fit.converged)),
    }


def _sinks(cfg: BenchConfig, pipe, frames: list[np.ndarray], tmp: Path) -> dict[str, Any]:
    """Analysis alone, sinks alone (precomputed tables), and both, through Tiled + 0MQ."""
    import uuid

    from laue_live.analysis import AnalysisRunComposer, FrameAnalyzer
    from laue_live.catalog import LocalTiledServer, make_analysis_writer, open_catalog
    from laue_live.stream import SpotPublisher

    n = cfg.sink_frames
    seq = [frames[i % len(frames)] for i in range(n)]
    t0 = time.perf_counter()
    tables = [pipe.process([f])[0] for f in seq]
    t_analysis = time.perf_counter() - t0
    rows = sum(len(t) for t in tables)
    describe = FrameAnalyzer(pipe.method).describe()
    out: dict[str, Any] = {"frames": n, "rows": rows, "analysis_frames_per_s": n / t_analysis}
    with LocalTiledServer(tmp / "tiled") as server:
        cat = open_catalog(server.settings)
        pub = SpotPublisher("127.0.0.1:0")
        try:
            for mode in ("sinks_only", "analysis_and_sinks"):
                writer = make_analysis_writer(cat)
                raw = {"uid": str(uuid.uuid4()), "time": time.time(), "scan_id": 1, "plan_name": "bench"}
                comp = AnalysisRunComposer([writer, pub], raw, describe, image_field="image")
                t0 = time.perf_counter()
                emit = 0.0
                for i, f in enumerate(seq):
                    table = tables[i] if mode == "sinks_only" else pipe.process([f])[0]
                    te = time.perf_counter()
                    comp.frame(i, table)
                    emit += time.perf_counter() - te
                comp.stop("success")
                writer.close(timeout=600)  # everything confirmed in Tiled
                dt = time.perf_counter() - t0
                out[f"{mode}_frames_per_s"] = n / dt
                out[f"{mode}_emit_ms_per_frame"] = 1e3 * emit / n
                out[f"{mode}_appends"] = writer.stats["appends"]
            out["published"] = pub.sent
            out["publish_dropped"] = pub.dropped
        finally:
            pub.close()
    out["limit"] = "analysis" if out["analysis_frames_per_s"] < out["sinks_only_frames_per_s"] else "sinks"
    return out


def _ceilings(frame_shape: tuple[int, int], spots: float, fit_iters: float) -> dict[str, Any]:
    px = frame_shape[0] * frame_shape[1]
    t_pcie = 2 * px / H100["pcie_bytes_per_s"]
    hbm_peaks = PEAK_BYTES_PER_PX * px / H100["hbm_bytes_per_s"]
    hbm_cnn = spots * (CNN_ACT_BYTES_PER_SPOT + DESCRIBE_BYTES_PER_SPOT) / H100["hbm_bytes_per_s"]
    flops_cnn = spots * CNN_FLOP_PER_SPOT / H100["fp16_tensor_flops"]
    flops_fit = spots * FIT_FLOP_PER_SPOT_ITER * fit_iters / H100["fp64_flops"]
    cnn_bound = max(t_pcie, hbm_peaks + hbm_cnn, flops_cnn)
    fit_bound = max(t_pcie, hbm_peaks, flops_fit)
    return {
        "frame_shape": list(frame_shape),
        "spots": spots,
        "pcie_ms": 1e3 * t_pcie,
        "hbm_peak_search_ms": 1e3 * hbm_peaks,
        "hbm_cnn_ms": 1e3 * hbm_cnn,
        "flops_cnn_ms": 1e3 * flops_cnn,
        "flops_fit_ms": 1e3 * flops_fit,
        "cnn_frames_per_s_ceiling": 1 / cnn_bound,
        "fit_frames_per_s_ceiling": 1 / fit_bound,
        "fit_spots_per_s_ceiling": H100["fp64_flops"] / (FIT_FLOP_PER_SPOT_ITER * fit_iters),
        "bound_cnn": "pcie"
        if cnn_bound == t_pcie
        else ("hbm" if cnn_bound == hbm_peaks + hbm_cnn else "flops"),
    }


def run_benchmark(cfg: BenchConfig, progress: bool = True) -> dict[str, Any]:
    """Measure what :class:`BenchConfig` asks for; return a JSON-ready dict (see :func:`format_report`)."""
    from tqdm.auto import tqdm

    from laue_live.pipeline._pipeline import FramePipeline, resolve_device
    from laue_live.spots import analyze_frames, extract_cutouts, find_peaks

    device = resolve_device(cfg.device)
    res: dict[str, Any] = {
        "config": {**asdict(cfg), "frame_shape": list(cfg.frame_shape)},
        "environment": _environment(device),
        "paper_table5_ms_per_spot": PAPER_TABLE5_MS,
    }
    steps = ["render", "fit", "cnn", "cnn fp32", "reference", "lauetools", "sinks", "ceilings"]
    bar = tqdm(steps, desc="bench", disable=not progress, leave=False)
    with tempfile.TemporaryDirectory(prefix="laue-bench-") as tmpdir:
        tmp = Path(tmpdir)
        bar.set_postfix_str("render")
        dense = _dense_frames(cfg)
        real = [] if cfg.quick else _real_frames()
        bar.update()
        model, model_name = _model(cfg, tmp)
        res["model"] = model_name
        inputs = {"dense": dense, **({"bm32_real": real} if real else {})}
        thr = {"threads": cfg.threads or 1}
        pipes = {
            "fit": FramePipeline("fit", device, **thr),
            "cnn": FramePipeline("cnn", device, model=model, **thr),
            "cnn_fp32": FramePipeline("cnn", device, model=model, precision="fp32", **thr),
        }
        res["cnn_precision"] = pipes["cnn"].cnn.precision
        res["end_to_end"], res["stages"] = {}, {}
        for name, pipe in pipes.items():
            bar.set_postfix_str(name)
            pipe.process([dense[0]])  # warm-up: allocations, oneDNN kernels
            for inp, frames in inputs.items():
                lat, spots, cpu = _time_pipeline(pipe, frames, cfg.repeats)
                res["end_to_end"][f"{name}/{inp}"] = {
                    **_stats(lat, spots),
                    "cpu_p50_ms": 1e3 * float(np.median(cpu)),
                }
            res["stages"][name] = _stage_rows(pipe, dense, max(1, cfg.repeats // 2))
            bar.update()
        bar.set_postfix_str("reference")
        lat, spots = [], []
        ref_peaks = []
        for f in dense:
            t0 = time.perf_counter()
            p = find_peaks(f)
            ref_peaks.append(time.perf_counter() - t0)
            spots.append(len(p))
        res["reference_peak_search"] = _stats(ref_peaks, spots)
        for f in dense[: max(1, len(dense) // 2)]:
            t0 = time.perf_counter()
            (t,) = analyze_frames([f], "fit")
            lat.append(time.perf_counter() - t0)
        res["reference_analyze_frames_fit"] = _stats(lat, spots[: len(lat)])
        bar.update()
        bar.set_postfix_str("lauetools")
        cut = extract_cutouts(dense[0], find_peaks(dense[0]))[: cfg.lauetools_spots]
        res["same_cutouts"] = {
            "n": len(cut),
            "ours_fit": _our_fit_on(cut, device),
            "lauetools_fit": _lauetools(cfg, cut, tmp),
        }
        bar.update()
        if cfg.sinks:
            bar.set_postfix_str("sinks")
            try:
                res["sinks"] = {k: _sinks(cfg, pipes[k], dense, tmp) for k in ("fit", "cnn")}
            except Exception as exc:  # noqa: BLE001 - the rest of the benchmark still counts
                log.error("sink benchmark failed: %r", exc)
                res["sinks"] = {"error": f"{type(exc).__name__}: {exc}"}
        bar.update()
        fit_iters = res["same_cutouts"]["ours_fit"]["mean_iterations"]
        res["h100_ceilings"] = {
            "measured": False,
            "why": "no GPU was available to this run: analytic bounds only "
            "(bytes / bandwidth, FLOPs / peak rate)",
            "bm32": _ceilings((2018, 2016), 1500, fit_iters),
            "36mpx": _ceilings((6000, 6000), 10000, fit_iters),
        }
        bar.update()
    bar.close()
    res["environment"]["load_avg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    dense_fit = res["end_to_end"]["fit/dense"]
    dense_cnn = res["end_to_end"]["cnn/dense"]
    res["cpu_target"] = {
        "target_ms": 250.0,
        "spots_per_frame": dense_fit["spots_per_frame"],
        "fit_p50_ms": dense_fit["p50_ms"],
        "cnn_p50_ms": dense_cnn["p50_ms"],
        "fit_cpu_p50_ms": dense_fit["cpu_p50_ms"],
        "cnn_cpu_p50_ms": dense_cnn["cpu_p50_ms"],
        "fit_met": dense_fit["p50_ms"] < 250.0,
        "cnn_met": dense_cnn["p50_ms"] < 250.0,
        "applies": device.type == "cpu" and tuple(cfg.frame_shape) == (2018, 2016),
    }
    return res


def _row(name: str, s: dict[str, float]) -> str:
    cpu = f"{s['cpu_p50_ms']:.1f}" if "cpu_p50_ms" in s else ""
    return (
        f"| {name:<34} | {s['frames_per_s']:>9.2f} | {s['spots_per_s']:>11,.0f} | {s['p50_ms']:>8.1f} "
        f"| {s['p99_ms']:>8.1f} | {cpu:>8} |"
    )


def format_report(res: dict[str, Any]) -> str:
    """Render the benchmark result as Markdown tables (what ``laue-live bench`` prints)."""
    env = res["environment"]
    lines = [
        f"laue-live bench, {env['date']}: device {env['device']} ({env['gpu'] or env['cpu']}, "
        f"{env['cpu_count']} cores, {res['config']['threads'] or 1} torch thread(s) per pipeline), "
        f"torch {env['torch']}, "
        f"numpy {env['numpy']}, scipy {env['scipy']}, Python {env['python']}, laue-live {env['laue_live']}",
        f"load average at start/end: {env['load_avg_start']} / {env['load_avg_end']} "
        "(other jobs on the machine slow every figure)",
        f"CNN: {res['model']}, precision {res['cnn_precision']}",
        "",
        "| stage / path | frames/s | spots/s | p50 ms | p99 ms | CPU ms p50 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    cfg = res["config"]
    for method, stages in res["stages"].items():
        for stage in ("h2d", "peaks", "cutouts", "describe", "d2h", "table"):
            if stage in stages:
                lines.append(_row(f"{method}: {stage}", stages[stage]))
    lines.append(_row("reference find_peaks (scipy)", res["reference_peak_search"]))
    for key, s in res["end_to_end"].items():
        lines.append(_row(f"end to end {key}", s))
    lines.append(_row("reference analyze_frames fit/dense", res["reference_analyze_frames_fit"]))
    lines.append(
        f"\ndense = simulated frames {cfg['frame_shape'][0]} x {cfg['frame_shape'][1]}, "
        f"~{res['end_to_end']['fit/dense']['spots_per_frame']:.0f} spots found per frame; "
        "stage rows come from a profiled pass (device synchronised between stages); CPU ms = process "
        "CPU time per frame, all threads (near the idle-machine wall time x threads when others load it)"
    )
    sc = res["same_cutouts"]
    ours_fit = sc["ours_fit"]["ms_per_spot"]
    stage_fit = res["stages"]["fit"]["describe"]
    stage_cnn = res["stages"]["cnn"]["describe"]
    cnn_ms = 1e3 / stage_cnn["spots_per_s"]
    fit_ms = 1e3 / stage_fit["spots_per_s"]
    p = res["paper_table5_ms_per_spot"]
    lines += [
        "",
        "| ms per spot | this run | paper Table 5 | paper / this run |",
        "|---|---:|---:|---:|",
        f"| CNN ({res['cnn_precision']}, {env['device']}) | {cnn_ms:.4f} "
        f"| {p['cnn_cpu_one_core']} (1 CPU core) "
        f"| {p['cnn_cpu_one_core'] / cnn_ms:.1f} |",
        f"| CNN vs the paper's GPU | {cnn_ms:.4f} | {p['cnn_gpu_rtx2080s']} (RTX 2080 Super) "
        f"| {p['cnn_gpu_rtx2080s'] / cnn_ms:.2f} |",
        f"| exact fit, whole frames ({env['device']}) | {fit_ms:.4f} "
        f"| {p['lauetools_fit_one_core']} (LaueTools) "
        f"| {p['lauetools_fit_one_core'] / fit_ms:.1f} |",
        f"| exact fit, same {sc['n']} cutouts | {ours_fit:.4f} | {p['lauetools_fit_one_core']} (LaueTools) "
        f"| {p['lauetools_fit_one_core'] / ours_fit:.1f} |",
    ]
    lt = sc["lauetools_fit"]
    if lt.get("measured"):
        lines.append(
            f"| LaueTools fit measured now, same cutouts | {lt['ms_per_spot']:.4f} | "
            f"{p['lauetools_fit_one_core']} | ours is {lt['ms_per_spot'] / ours_fit:.1f}x faster |"
        )
    else:
        lines.append(f"| LaueTools fit measured now | not measured: {lt['why']} | | |")
    t = res["cpu_target"]
    if t["applies"]:
        lines.append(
            f"\nCPU target (< 250 ms per BM32 frame of ~1,500 spots, peak search included): "
            f"fit p50 {t['fit_p50_ms']:.0f} ms ({'met' if t['fit_met'] else 'NOT met'}), "
            f"CNN p50 {t['cnn_p50_ms']:.0f} ms ({'met' if t['cnn_met'] else 'NOT met'}), "
            f"{t['spots_per_frame']:.0f} spots per frame; "
            f"CPU time per frame: fit {t['fit_cpu_p50_ms']:.0f} ms, "
            f"CNN {t['cnn_cpu_p50_ms']:.0f} ms"
        )
    sinks = res.get("sinks")
    if sinks:
        lines += [
            "",
            "| service with sinks (Tiled appends + 0MQ) | analysis frames/s | sinks only frames/s "
            "| analysis + sinks frames/s | limit |",
            "|---|---:|---:|---:|---|",
        ]
        for k, s in sinks.items():
            if isinstance(s, dict):
                lines.append(
                    f"| {k} ({s['frames']} frames, {s['rows']} rows) | {s['analysis_frames_per_s']:.2f} "
                    f"| {s['sinks_only_frames_per_s']:.2f} | {s['analysis_and_sinks_frames_per_s']:.2f} "
                    f"| {s['limit']} |"
                )
            else:
                lines.append(f"| {k} | failed: {s} | | | |")
    c = res["h100_ceilings"]
    lines += [
        "",
        f"H100: NOT MEASURED ({c['why']}).",
        "| H100 analytic ceiling | PCIe copy ms | HBM ms (peaks + CNN) | CNN FLOP ms | fit FLOP ms "
        "| CNN frames/s ceiling | fit frames/s ceiling |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for k in ("bm32", "36mpx"):
        b = c[k]
        lines.append(
            f"| {k} ({b['frame_shape'][0]} x {b['frame_shape'][1]}, {b['spots']:.0f} spots) "
            f"| {b['pcie_ms']:.3f} | {b['hbm_peak_search_ms']:.3f} + {b['hbm_cnn_ms']:.3f} "
            f"| {b['flops_cnn_ms']:.3f} | {b['flops_fit_ms']:.3f} | {b['cnn_frames_per_s_ceiling']:,.0f} "
            f"| {b['fit_frames_per_s_ceiling']:,.0f} |"
        )
    lines.append(
        f"fit ceiling: {c['bm32']['fit_spots_per_s_ceiling']:,.0f} spots/s at "
        f"{sc['ours_fit']['mean_iterations']:.1f} Levenberg-Marquardt iterations per spot (FP64)"
    )
    return "\n".join(lines)


def write_json(res: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write the benchmark result as JSON (NaN written as null)."""

    def clean(o):
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, (np.floating, float)):
            return None if not np.isfinite(o) else float(o)
        if isinstance(o, (np.integer,)):
            return int(o)
        if isinstance(o, np.bool_):
            return bool(o)
        return o

    path = Path(path)
    path.write_text(json.dumps(clean(res), indent=2))
    return path
