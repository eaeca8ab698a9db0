"""The printed form of a ``laue-live bench`` result (Markdown tables) and its JSON file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from laue_live.bench._device import H100

__all__ = ["format_report", "write_json"]


def _row(name: str, s: dict[str, float]) -> str:
    cpu = f"{s['cpu_p50_ms']:.1f}" if "cpu_p50_ms" in s else ""
    return (
        f"| {name:<34} | {s['frames_per_s']:>9.2f} | {s['spots_per_s']:>11,.0f} | {s['p50_ms']:>8.1f} "
        f"| {s['p99_ms']:>8.1f} | {cpu:>8} |"
    )


def _fmt(v: float | None, spec: str = ",.0f", none: str = "n/a") -> str:
    return none if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def format_report(res: dict[str, Any]) -> str:
    """Render the benchmark result as Markdown tables (what ``laue-live bench`` prints)."""
    env = res["environment"]
    cfg = res["config"]
    lines = [
        f"laue-live bench, {env['date']}: device {env['device']} ({env['gpu'] or env['cpu']}, "
        f"{env['cpu_count']} cores, {cfg['threads'] or 1} torch thread(s) per pipeline), "
        f"torch {env['torch']}, "
        f"numpy {env['numpy']}, scipy {env['scipy']}, Python {env['python']}, laue-live {env['laue_live']}",
        f"load average at start/end: {env['load_avg_start']} / {env['load_avg_end']} "
        "(other jobs on the machine slow every figure)",
        f"CNN: {res['model']}, precision {res['cnn_precision']}, then "
        f"{res.get('cnn_polish', 0)} iteration(s) of the fit from its prediction; method='auto' on this "
        f"device: {res.get('auto_method', '?')} (recorded in the model file); pipeline batch: "
        f"{res.get('batch_frames', 1)} frame(s)",
        "",
        "| stage / path | frames/s | spots/s | p50 ms | p99 ms | CPU ms p50 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method, stages in res["stages"].items():
        for stage in ("h2d", "peaks", "cutouts", "describe", "d2h", "table"):
            if stage in stages:
                lines.append(_row(f"{method}: {stage}", stages[stage]))
    lines.append(_row("reference find_peaks (scipy)", res["reference_peak_search"]))
    for key, s in res["end_to_end"].items():
        lines.append(_row(f"batch-1 latency {key}", s))
    lines.append(_row("reference analyze_frames fit/dense", res["reference_analyze_frames_fit"]))
    for key, s in res.get("sustained", {}).items():
        if "error" in s:
            lines.append(f"| sustained {key} | failed: {s['error']} | | | | |")
        else:
            lines.append(_row(f"sustained {key} ({s['n']} fr, batch {s['batch_frames']})",
                              {**s, "cpu_p50_ms": s["cpu_ms_per_frame"]}))
    lines.append(
        f"\ndense = simulated frames {cfg['frame_shape'][0]} x {cfg['frame_shape'][1]}, "
        f"~{res['end_to_end']['fit/dense']['spots_per_frame']:.0f} spots found per frame; "
        + (f"36mpx = simulated {cfg['large_shape'][0]} x {cfg['large_shape'][1]} frames, "
           f"{cfg['large_spots']} spots rendered; " if cfg.get("large") else "")
        + "stage rows come from a profiled pass (device synchronised between stages); batch-1 latency = "
        "process([frame]) one frame at a time; sustained = a long sequence through pipe.stream() with "
        "the pipeline's batching: frames/s = frames / wall time, latency = frame handed to the stream "
        "-> its table yielded (includes its batch and the stream's one batch of look-ahead); CPU ms = "
        "process CPU time per frame, all threads (near the idle-machine wall time x threads when others "
        "load it)"
    )
    ft = res.get("fit_throughput") or {}
    if ft:
        lines += ["", "| exact batched fit, one call | cutouts | spots/s | s | iterations | converged |",
                  "|---|---:|---:|---:|---:|---:|"]
        for dt, f in ft.items():
            if "error" in f:
                lines.append(f"| fit_gaussians {dt} | failed: {f['error']} | | | | |")
            else:
                lines.append(f"| fit_gaussians {dt} ({env['device']}) | {f['n']:,} "
                             f"| {f['spots_per_s']:,.0f} | {f['seconds']:.3f} | {f['mean_iterations']:.1f} "
                             f"| {100 * f['converged']:.1f} % |")
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
    lines += _service_report(res.get("sinks"))
    lines += _ceilings_report(res)
    lines += ["", "| target (issue 8) | required | measured | status |", "|---|---|---:|---|"]
    for r in res.get("targets", []):
        m = r["measured"]
        if isinstance(m, bool) or not isinstance(m, (int, float)):
            shown = m if m is not None else "n/a"
        else:
            shown = _fmt(m, ",d" if isinstance(m, int) else ",.1f")
        lines.append(f"| {r['target']} | {r['required']} | {shown} ({r['device']}) | {r['status']} |")
    secs = res.get("seconds") or {}
    if secs:
        lines.append("\nbench wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in secs.items()))
    return "\n".join(lines)


def _giga(v: float | None) -> float | None:
    return None if v is None else v / 1e9


def _service_report(sinks: dict[str, Any] | None) -> list[str]:
    if not sinks:
        return []
    lines = [
        "",
        "| service (AnalysisWorker -> spooled Tiled appends + 0MQ) | analysis alone frames/s "
        "| sinks alone frames/s | analysis + sinks frames/s (confirmed in Tiled) | latency p50 / p99 ms "
        "| frames lost | spot rows missing | limit |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for k, s in sinks.items():
        if not isinstance(s, dict) or "error" in s:
            why = s.get("error") if isinstance(s, dict) else s
            lines.append(f"| {k} | failed: {why} | | | | | | |")
            continue
        w = s.get("worker", {})
        lines.append(
            f"| {k} ({s['frames']} frames, {s['rows']:,} rows, worker batch {s['worker_batch']}) "
            f"| {s['analysis_frames_per_s']:.2f} | {s['sinks_only_frames_per_s']:.2f} "
            f"| {s['analysis_and_sinks_frames_per_s']:.2f} "
            f"| {_fmt(w.get('latency_p50_ms'), '.0f')} / {_fmt(w.get('latency_p99_ms'), '.0f')} "
            f"| {s['frames_lost']} | {s['spot_rows_missing']} | {s['limit']} |"
        )
    return lines


def _ceilings_report(res: dict[str, Any]) -> list[str]:
    c = res["h100_ceilings"]
    d = res.get("device_ceilings") or {"measured": False, "error": "not run"}
    measured = bool(d.get("measured"))
    dev = d.get("device", "?")
    cuda = str(dev).startswith("cuda")
    lines = [""]
    if measured:
        r = d["rates"]
        mm = r.get("matmul_flops", {})
        lines += [
            f"Measured on this run's device ({dev}, {r['name']}"
            + (f", {r['threads']} thread(s)" if r.get("threads") else "") + f", {r['seconds']:.1f} s):",
            "| rate | H100 SXM vendor peak | measured here |",
            "|---|---:|---:|",
            f"| host -> device copy, pinned (GB/s) | {H100['pcie_bytes_per_s'] / 1e9:.0f} "
            f"| {_fmt(_giga(r['h2d_bytes_per_s']), '.1f', 'n/a (CPU: no copy)' if not cuda else 'n/a')} |",
            f"| one BM32 frame host -> device (ms) | 0.160 | {_fmt(r['h2d_frame_ms'], '.3f')} |",
            f"| host memcpy (GB/s) | | {_fmt(_giga(r['host_copy_bytes_per_s']), '.1f')} |",
            f"| device memory, read + write (GB/s) | {H100['hbm_bytes_per_s'] / 1e9:,.0f} "
            f"| {_fmt(_giga(r['mem_bytes_per_s']), ',.1f')} |",
        ]
        for k in ("fp16", "bf16", "fp32", "fp64"):
            if k in mm:
                vendor = {"fp16": H100["fp16_tensor_flops"], "fp64": H100["fp64_flops"]}.get(k)
                lines.append(f"| matmul {k} (TFLOP/s) | {_fmt(vendor and vendor / 1e12, '.0f', '')} "
                             f"| {mm[k] / 1e12:.2f} |")
        for what, why in r.get("errors", {}).items():
            lines.append(f"| {what} | | failed: {why} |")
    else:
        lines.append(f"Ceilings of this run's device ({dev}): NOT MEASURED ({d.get('error')}).")
    sus = res.get("sustained", {})
    lines += [
        "",
        "H100 ceilings from vendor peak numbers (analytic, not measured)"
        + (", beside this device's, measured:" if measured else ":"),
        "| ceiling (ms per frame unless said) | H100 bm32 | " + ("here bm32 | " if measured else "")
        + "H100 36mpx |" + (" here 36mpx |" if measured else ""),
        "|---|" + "---:|" * (4 if measured else 2),
    ]
    rows = [("host -> device copy", "pcie_ms", ".3f"), ("memory, peak search", "hbm_peak_search_ms", ".3f"),
            ("memory, CNN activations + cutouts", "hbm_cnn_ms", ".3f"), ("CNN FLOPs", "flops_cnn_ms", ".3f"),
            ("fit FLOPs (fp64)", "flops_fit_ms", ".3f"), ("fit, memory (>= 8 KB per spot-iteration)",
                                                          "hbm_fit_ms", ".3f"),
            ("CNN frames/s ceiling", "cnn_frames_per_s_ceiling", ",.0f"),
            ("fit frames/s ceiling", "fit_frames_per_s_ceiling", ",.0f"),
            ("fit spots/s ceiling", "fit_spots_per_s_ceiling", ",.0f"),
            ("CNN bound by", "bound_cnn", "s"), ("fit bound by", "bound_fit", "s")]
    for label, key, spec in rows:
        cells = [c["bm32"][key]] + ([d["bm32"][key]] if measured else []) + [c["36mpx"][key]] \
            + ([d["36mpx"][key]] if measured else [])
        shown = [(v or "n/a") if spec == "s" else _fmt(v, spec) for v in cells]
        lines.append(f"| {label} | " + " | ".join(shown) + " |")
    for method in ("cnn", "fit"):
        got = [sus.get(f"{method}/{inp}", {}).get("frames_per_s") for inp in ("dense", "36mpx")]
        cells = [None, got[0]] if measured else [got[0]]
        cells += [None, got[1]] if measured else [got[1]]
        lines.append(f"| measured sustained {method} frames/s (this run, {res['environment']['device']}) | "
                     + " | ".join(_fmt(v, ",.1f", "") for v in cells) + " |")
    ft = (res.get("fit_throughput") or {}).get("float64", {})
    lines.append(
        f"fit ceiling (H100): {_fmt(c['bm32']['fit_spots_per_s_ceiling'])} spots/s (FLOPs alone: "
        f"{_fmt(c['bm32']['fit_spots_per_s_ceiling_flops'])}) at "
        f"{res['same_cutouts']['ours_fit']['mean_iterations']:.1f} Levenberg-Marquardt iterations per spot "
        f"(FP64)" + (f"; here: {_fmt(d['bm32']['fit_spots_per_s_ceiling'])} spots/s ceiling, "
                     f"{_fmt(ft.get('spots_per_s'))} measured" if measured else "")
    )
    return lines


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
