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

from laue_live.bench._device import h100_rates, measure_device, measured_rates, work_ceilings
from laue_live.bench._report import write_json
from laue_live.bench._targets import BM32_SHAPE, LARGE_SHAPE, evaluate_targets
from laue_live.describe import choose_method

__all__ = ["BenchConfig", "run_benchmark", "PAPER_TABLE5_MS"]

log = logging.getLogger(__name__)

#: The paper's Table 5, ms per spot.
PAPER_TABLE5_MS = {"cnn_gpu_rtx2080s": 0.027, "cnn_cpu_one_core": 0.647, "lauetools_fit_one_core": 2.089}

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
        Frames sent through the service per run (None: 40 on the CPU, 300 on CUDA).
    worker_batch
        ``batch_size`` of the service's :class:`~laue_live.analysis.AnalysisWorker` (its default, 8).
    batch_frames
        Frames per device batch of the pipelines (None: the pipeline's default, 16 on CUDA, 1 on
        the CPU). The batch-1 latency rows always hand over one frame at a time.
    sustained_seconds
        Sustained rows: frames are streamed for at least this long (s) ...
    sustained_min_frames
        ... and at least this many frames (rounded up to whole batches).
    large
        Also measure 36-Mpx frames (``large_shape``, ``large_spots``) on the sustained path.
    large_shape, large_spots, large_frames
        Size, rendered spots (the peak search finds ~5 % fewer) and distinct frames of the large
        rows (rendering one 6000 x 6000 frame takes ~2.5 s of CPU).
    latency_batch
        On CUDA, also stream the dense frames with pipelines of this many frames per batch (the
        latency side of the trade-off: a frame waits for its batch-mates and one batch of
        look-ahead); None: not measured. Not used on the CPU (batch 1 already).
    fit_spots
        Cutouts in the batched-fit throughput row (None: 100,000 on CUDA, 4,000 on the CPU), tiled
        from the real cutouts of the first dense frame.
    ceilings
        Measure the device's bandwidths and matrix rates (:func:`laue_live.bench.measure_device`).
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
    sink_frames: int | None = None
    worker_batch: int = 8
    batch_frames: int | None = None
    sustained_seconds: float = 3.0
    sustained_min_frames: int = 8
    large: bool = True
    large_shape: tuple[int, int] = LARGE_SHAPE
    large_spots: int = 10500
    large_frames: int = 1
    fit_spots: int | None = None
    latency_batch: int | None = 4
    ceilings: bool = True
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
            "sustained_seconds": 0.0,
            "sustained_min_frames": 2,
            "large": False,
            "large_shape": (1536, 1536),
            "large_spots": 600,
            "fit_spots": 300,
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
    # only the measurement that needs it pays the import
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


def _dense_frames(cfg: BenchConfig, shape: tuple[int, int] | None = None, spots: int | None = None,
                  n: int | None = None) -> list[np.ndarray]:
    """Render ``n`` frames of ``shape`` with ``spots`` random spots each (default: the dense frames)."""
    # only the measurement that needs it pays the import
    import pandas as pd

    from laue_live.sim import RenderConfig, render_frame

    rng = np.random.default_rng(cfg.seed)
    h, w = shape or cfg.frame_shape
    n_spots = spots or cfg.spots
    frames = []
    for _ in range(cfg.frames if n is None else n):
        table = pd.DataFrame(
            {
                "row": rng.uniform(0, h - 1, n_spots),
                "col": rng.uniform(0, w - 1, n_spots),
                "intensity": np.exp(rng.uniform(np.log(2e-3), 0, n_spots)),
            }
        )
        frames.append(render_frame(table, RenderConfig(), rng=rng, frame_shape=(h, w)).frame)
    return frames


def _real_frames() -> list[np.ndarray]:
    d = _shared_dir() / "data" / "bm32"
    if not d.is_dir():
        return []
    # tifffile only for TIFF files
    import tifffile

    return [tifffile.imread(p) for p in sorted(d.glob("nw1_*.tif"))]


def _model(cfg: BenchConfig, tmp: Path) -> tuple[str | None, str]:
    if cfg.model:
        return cfg.model, cfg.model
    try:
        # the science stack only for the measurement that needs it
        from laue_live.cnn import default_model_path

        return None, str(default_model_path())
    except Exception:  # noqa: BLE001 - no shipped weights: speed does not depend on them
        # torch only for the measurement that runs on it
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
        elif cfg.device.startswith("cuda") or cfg.device == "auto" and _cuda_present():
            # Lent GPU machines reach no package index: do not spend their minutes on pip.
            return {"measured": False, "why": "no .lauetools-venv (a GPU run does not create it; "
                    "LaueTools is a CPU baseline: measure it in a CPU run)"}
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
    # the science stack only for the measurement that needs it
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


def _cuda_present() -> bool:
    # torch only for the measurement that runs on it
    import torch

    return bool(torch.cuda.is_available())


def _release(device) -> None:
    """Give cached device memory back after a failed row (an OOM must not spoil the next one)."""
    if device.type == "cuda":
        # torch only for the measurement that runs on it
        import torch

        torch.cuda.empty_cache()


def _sustained(pipe, frames: list[np.ndarray], seconds: float, min_frames: int) -> dict[str, Any]:
    """Stream frames through ``pipe.stream`` with its own batching; sustained rate and frame latency.

    Frames are handed over as fast as the pipeline takes them, for at least ``seconds`` and
    ``min_frames`` frames, ending on a whole batch. A frame's latency runs from the moment the
    stream's iterator took it from the generator below to the moment its table was yielded (it
    includes waiting for its batch-mates and the stream's one batch of look-ahead).
    """
    bf = pipe.batch_frames
    min_frames = -(-max(min_frames, 1) // bf) * bf
    handed: list[float] = []

    def feed():
        t_end = time.perf_counter() + seconds
        i = 0
        while i < min_frames or i % bf or (time.perf_counter() < t_end and i < 1_000_000):
            handed.append(time.perf_counter())
            yield frames[i % len(frames)]
            i += 1

    # warm-up on this frame shape (CUDA: one batch plus the look-ahead: pinned buffers, kernels)
    n_warm = 2 * bf if pipe.device.type == "cuda" else 1
    for _ in pipe.stream(frames[i % len(frames)] for i in range(n_warm)):
        pass
    lat, spots = [], []
    c0 = time.process_time()
    for k, table in enumerate(pipe.stream(feed())):
        lat.append(time.perf_counter() - handed[k])
        spots.append(len(table))
    wall = (handed[-1] + lat[-1]) - handed[0]  # first frame handed -> last table yielded
    cpu = time.process_time() - c0
    a = np.asarray(lat)
    n = len(lat)
    return {
        "n": n,
        "batch_frames": bf,
        "frame_shape": list(frames[0].shape),
        "wall_s": wall,
        "frames_per_s": n / wall,
        "spots_per_s": float(np.sum(spots)) / wall,
        "p50_ms": 1e3 * float(np.percentile(a, 50)),
        "p99_ms": 1e3 * float(np.percentile(a, 99)),
        "max_ms": 1e3 * float(a.max()),
        "spots_per_frame": float(np.mean(spots)),
        "cpu_ms_per_frame": 1e3 * cpu / n,
    }


def _fit_throughput(cut: np.ndarray, device, n: int, dtype: str) -> dict[str, Any]:
    """Time the batched exact fit on ``n`` cutouts tiled from real ones, in one call."""
    # the science stack only for the measurement that needs it
    from laue_live.spots import fit_gaussians

    big = np.concatenate([cut] * -(-n // len(cut)))[:n]
    fit_gaussians(big[: min(n, 1024)], device=device, dtype=dtype)  # warm-up: kernels, allocator
    t0 = time.perf_counter()
    fit = fit_gaussians(big, device=device, dtype=dtype)  # returns numpy: the device has finished
    dt = time.perf_counter() - t0
    return {
        "n": n,
        "dtype": dtype,
        "seconds": dt,
        "spots_per_s": n / dt,
        "mean_iterations": float(np.mean(fit.n_iter)),
        "converged": float(np.mean(fit.converged)),
    }


def _device_rates(cfg: BenchConfig, device) -> dict[str, Any]:
    """Measure the device's rates (the ceilings of this run's work are computed from them at the end)."""
    try:
        dev = measure_device(device, quick=cfg.quick, threads=cfg.threads or 1)
    except Exception as exc:  # noqa: BLE001 - recorded, the benchmark goes on
        log.error("device ceilings not measured: %r", exc)
        _release(device)
        return {"measured": False, "device": str(device), "error": f"{type(exc).__name__}: {exc}"}
    _release(device)  # the 1 GiB copy buffers and matrices: give them back before the pipelines run
    return {"measured": True, "device": str(device), "rates": dev}


def _guarded(what: str, device, fn, *args) -> dict[str, Any]:
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - one failed row (a GPU out of memory) must not stop the rest
        log.error("%s failed: %r", what, exc)
        _release(device)
        return {"error": f"{type(exc).__name__}: {exc}"}

def run_benchmark(cfg: BenchConfig, progress: bool = True,
                  checkpoint: str | os.PathLike | None = None) -> dict[str, Any]:
    """Measure what :class:`BenchConfig` asks for; return a JSON-ready dict (see :func:`format_report`).

    The parts run in the order of what a time-limited GPU run must not lose: the device's rates,
    the sustained rows, the batched fit, then the batch-1 and stage rows, the references, LaueTools
    and the service.

    Parameters
    ----------
    cfg
        What to measure.
    progress
        Show a progress bar (stderr).
    checkpoint
        JSON file rewritten after every part and every sustained row with what is measured so far
        (``"complete": false``, targets evaluated on it), so that a run cut short (a lent machine's
        time limit) still leaves its numbers.
    """
    # only the measurement that needs it pays the import
    from tqdm.auto import tqdm

    from laue_live.describe import analyze_frames
    from laue_live.pipeline import FramePipeline, resolve_device
    from laue_live.spots import extract_cutouts, find_peaks

    t_bench = time.perf_counter()
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    res: dict[str, Any] = {
        "config": {**asdict(cfg), "frame_shape": list(cfg.frame_shape), "large_shape": list(cfg.large_shape)},
        "environment": _environment(device),
        "paper_table5_ms_per_spot": PAPER_TABLE5_MS,
    }
    steps = ["render", "device rates", "sustained", "fit throughput", "fit", "cnn", "cnn fp32", "reference",
             "lauetools", "sinks", "ceilings"]
    bar = tqdm(steps, desc="bench", disable=not progress, leave=False)
    seconds: dict[str, float] = {}
    res["seconds"] = seconds
    res["complete"] = False

    def save() -> None:
        if checkpoint is None:
            return
        try:
            res["targets"] = evaluate_targets(res)
            write_json(res, checkpoint)
        except Exception as exc:  # noqa: BLE001 - the measurement matters more than the file
            log.warning("checkpoint %s not written: %r", checkpoint, exc)

    def step_done() -> None:
        bar.update()
        save()

    with tempfile.TemporaryDirectory(prefix="laue-bench-") as tmpdir:
        tmp = Path(tmpdir)
        bar.set_postfix_str("render")
        t0 = time.perf_counter()
        dense = _dense_frames(cfg)
        real = [] if cfg.quick else _real_frames()
        large = (_dense_frames(cfg, cfg.large_shape, cfg.large_spots, cfg.large_frames)
                 if cfg.large else [])
        seconds["render"] = time.perf_counter() - t0
        step_done()
        # the device's own rates first: seconds, and the ceilings need them whatever else runs
        bar.set_postfix_str("device rates")
        t0 = time.perf_counter()
        if cfg.ceilings:
            res["device_ceilings"] = _device_rates(cfg, device)
        else:
            res["device_ceilings"] = {"measured": False, "device": str(device),
                                      "error": "disabled (--no-ceilings)"}
        seconds["device_rates"] = time.perf_counter() - t0
        step_done()
        model, model_name = _model(cfg, tmp)
        res["model"] = model_name
        inputs = {"dense": dense, **({"bm32_real": real} if real else {})}
        kw = {"threads": cfg.threads or 1, "batch_frames": cfg.batch_frames}
        pipes = {
            "fit": FramePipeline("fit", device, **kw),
            "cnn": FramePipeline("cnn", device, model=model, **kw),
            "cnn_fp32": FramePipeline("cnn", device, model=model, precision="fp32", **kw),
        }
        res["cnn_precision"] = pipes["cnn"].cnn.precision
        res["cnn_polish"] = pipes["cnn"].cnn.polish
        res["auto_method"] = choose_method(device, model)  # what method="auto" runs on this device
        res["batch_frames"] = pipes["fit"].batch_frames
        # sustained: a long sequence through pipe.stream with the pipeline's batching; the rows the
        # targets are stated for first
        bar.set_postfix_str("sustained")
        t0 = time.perf_counter()
        res["sustained"] = {}
        plan = [(m, "dense") for m in ("cnn", "fit")]
        plan += [(m, "36mpx") for m in ("cnn", "fit") if large]
        lb = cfg.latency_batch
        small = {}
        if cuda and lb and lb != res["batch_frames"]:
            small = {
                "fit": FramePipeline("fit", device, **{**kw, "batch_frames": lb}),
                "cnn": FramePipeline("cnn", device, cnn=pipes["cnn"].cnn, **{**kw, "batch_frames": lb}),
            }
            plan += [(m, f"dense@batch{lb}") for m in ("cnn", "fit")]
        plan += [(m, "bm32_real") for m in ("cnn", "fit") if real]
        for name, inp in plan:
            frames = {"dense": dense, "36mpx": large, "bm32_real": real}.get(inp, dense)
            pipe = small[name] if "@batch" in inp else pipes[name]
            secs = cfg.sustained_seconds if inp != "bm32_real" else min(cfg.sustained_seconds, 1.0)
            min_frames = 2 if inp == "36mpx" else cfg.sustained_min_frames
            res["sustained"][f"{name}/{inp}"] = _guarded(
                f"sustained {name}/{inp}", device, _sustained, pipe, frames, secs, min_frames)
            save()
        del small
        seconds["sustained"] = time.perf_counter() - t0
        step_done()
        bar.set_postfix_str("fit throughput")
        t0 = time.perf_counter()
        all_cut = extract_cutouts(dense[0], find_peaks(dense[0]))
        n_fit = cfg.fit_spots or (100_000 if cuda else 4_000)
        res["fit_throughput"] = {
            dt: _guarded(f"fit throughput {dt}", device, _fit_throughput, all_cut, device, n_fit, dt)
            for dt in ("float64", "float32")
        }
        seconds["fit_throughput"] = time.perf_counter() - t0
        step_done()
        # batch-1 latency: one frame handed over and its table back before the next (process([f]))
        res["end_to_end"], res["stages"] = {}, {}
        t0 = time.perf_counter()
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
            step_done()
        seconds["batch1_and_stages"] = time.perf_counter() - t0
        bar.set_postfix_str("reference")
        t0 = time.perf_counter()
        lat, spots = [], []
        ref_peaks = []
        for f in dense:
            t1 = time.perf_counter()
            p = find_peaks(f)
            ref_peaks.append(time.perf_counter() - t1)
            spots.append(len(p))
        res["reference_peak_search"] = _stats(ref_peaks, spots)
        for f in dense[: max(1, len(dense) // 2)]:
            t1 = time.perf_counter()
            (t,) = analyze_frames([f], "fit")
            lat.append(time.perf_counter() - t1)
        res["reference_analyze_frames_fit"] = _stats(lat, spots[: len(lat)])
        seconds["reference"] = time.perf_counter() - t0
        step_done()
        bar.set_postfix_str("lauetools")
        t0 = time.perf_counter()
        cut = all_cut[: cfg.lauetools_spots]
        res["same_cutouts"] = {
            "n": len(cut),
            "ours_fit": _our_fit_on(cut, device),
            "lauetools_fit": _lauetools(cfg, cut, tmp),
        }
        seconds["lauetools"] = time.perf_counter() - t0
        step_done()
        if cfg.sinks:
            bar.set_postfix_str("sinks")
            t0 = time.perf_counter()
            res["sinks"] = _service_rows(cfg, device, model, dense, tmp)
            seconds["sinks"] = time.perf_counter() - t0
        step_done()
        bar.set_postfix_str("ceilings")
        fit_iters = res["same_cutouts"]["ours_fit"]["mean_iterations"]
        res["h100_ceilings"] = {
            "measured": False,
            "why": "vendor peak numbers of an H100 SXM, not measured: analytic bounds "
            "(bytes / bandwidth, FLOPs / peak rate)",
            "bm32": work_ceilings(BM32_SHAPE, 1500, fit_iters, h100_rates()),
            "36mpx": work_ceilings(LARGE_SHAPE, 10000, fit_iters, h100_rates()),
        }
        dc = res["device_ceilings"]
        if dc.get("measured"):
            rates = measured_rates(dc["rates"])
            dc["bm32"] = work_ceilings(BM32_SHAPE, 1500, fit_iters, rates)
            dc["36mpx"] = work_ceilings(LARGE_SHAPE, 10000, fit_iters, rates)
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
        "applies": device.type == "cpu" and tuple(cfg.frame_shape) == BM32_SHAPE,
    }
    res["targets"] = evaluate_targets(res)
    seconds["total"] = time.perf_counter() - t_bench
    res["complete"] = True
    return res


def _service_rows(cfg: BenchConfig, device, model, dense: list[np.ndarray], tmp: Path) -> dict[str, Any]:
    """Measure the service path (AnalysisWorker -> spooled Tiled writer + 0MQ) for the fit and the CNN."""
    # the analysis stack only for the run that needs it
    from laue_live.analysis import FrameAnalyzer, OOMFallbackAnalyzer, runs_on_cuda
    from laue_live.bench._service import measure_service

    n = cfg.sink_frames or (300 if device.type == "cuda" else 40)
    out: dict[str, Any] = {}
    for method in ("fit", "cnn"):
        try:
            # what AnalysisService builds from its settings: the torch pipeline on the bench device
            params = {"threads": None if device.type == "cuda" else cfg.threads or 1,
                      "batch_frames": cfg.batch_frames}
            analyzer = FrameAnalyzer(method, model=model if method == "cnn" else None, device=str(device),
                                     pipeline="torch", **{k: v for k, v in params.items() if v is not None})
            if runs_on_cuda(analyzer):
                # as the service does: a GPU out-of-memory error splits the batch, then goes to the CPU
                analyzer = OOMFallbackAnalyzer(analyzer)
            analyzer([dense[0]])  # warm-up, as the service's warm_up does
            out[method] = measure_service(analyzer, dense, n, tmp / method, worker_batch=cfg.worker_batch,
                                          timeout_s=300.0)
            if isinstance(analyzer, OOMFallbackAnalyzer):
                out[method]["oom_fallback"] = dict(analyzer.stats)
        except Exception as exc:  # noqa: BLE001 - the rest of the benchmark still counts
            log.error("service benchmark (%s) failed: %r", method, exc)
            _release(device)
            out[method] = {"error": f"{type(exc).__name__}: {exc}"}
    return out
