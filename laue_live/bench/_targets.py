"""The issue's targets, each beside the figure measured in this run and a verdict.

A target is *met* or *NOT met* only when this run measured what it is stated for: a GPU target on a
CUDA device, a CPU target on the CPU, BM32-size frames for the BM32 targets. Otherwise the row says
why it does not apply and still shows the figure measured here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BM32_SHAPE", "LARGE_SHAPE", "evaluate_targets"]

#: Frame size of the BM32 detector (px): the issue's targets are stated for it.
BM32_SHAPE = (2018, 2016)
#: The issue's large detector (px).
LARGE_SHAPE = (6000, 6000)

#: (id, what, where it applies, key path into the result, figure, comparison, required, unit)
_TARGETS = [
    ("bm32_sustained_cnn", "BM32 frames sustained end to end, CNN", "gpu", ("sustained", "cnn/dense"),
     "frames_per_s", ">=", 2000.0, "frames/s"),
    ("bm32_sustained_fit", "BM32 frames sustained end to end, exact fit", "gpu", ("sustained", "fit/dense"),
     "frames_per_s", ">=", 2000.0, "frames/s"),
    ("bm32_p99_cnn", "BM32 frame latency p99 (sustained), CNN", "gpu", ("sustained", "cnn/dense"),
     "p99_ms", "<", 5.0, "ms"),
    ("bm32_p99_fit", "BM32 frame latency p99 (sustained), exact fit", "gpu", ("sustained", "fit/dense"),
     "p99_ms", "<", 5.0, "ms"),
    ("large_sustained_cnn", "36-Mpx frames (~10,000 spots) sustained, CNN", "gpu", ("sustained", "cnn/36mpx"),
     "frames_per_s", ">=", 200.0, "frames/s"),
    ("large_sustained_fit", "36-Mpx frames (~10,000 spots) sustained, exact fit", "gpu",
     ("sustained", "fit/36mpx"), "frames_per_s", ">=", 200.0, "frames/s"),
    ("fit_spots_per_s", "exact batched fit (float64)", "gpu", ("fit_throughput", "float64"),
     "spots_per_s", ">=", 2e6, "spots/s"),
    ("service_cnn", "service with its sinks (Tiled + 0MQ), BM32 frames, CNN", "gpu", ("sinks", "cnn"),
     "analysis_and_sinks_frames_per_s", ">=", 300.0, "frames/s"),
    ("service_fit", "service with its sinks (Tiled + 0MQ), BM32 frames, exact fit", "gpu", ("sinks", "fit"),
     "analysis_and_sinks_frames_per_s", ">=", 300.0, "frames/s"),
    ("cpu_fit_ms", "CPU: one BM32 frame (~1,500 spots), exact fit, wall p50 at batch 1", "cpu",
     ("end_to_end", "fit/dense"), "p50_ms", "<", 250.0, "ms"),
    ("cpu_cnn_ms", "CPU: one BM32 frame (~1,500 spots), CNN, wall p50 at batch 1", "cpu",
     ("end_to_end", "cnn/dense"), "p50_ms", "<", 250.0, "ms"),
    ("service_frames_lost_cnn", "service: frames lost, CNN", "any", ("sinks", "cnn"),
     "frames_lost", "==", 0, "frames"),
    ("service_frames_lost_fit", "service: frames lost, exact fit", "any", ("sinks", "fit"),
     "frames_lost", "==", 0, "frames"),
]


def _get(res: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = res
    for k in path:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node if isinstance(node, dict) else None


def _compare(value: float, op: str, required: float) -> bool:
    return {">=": value >= required, "<": value < required, "==": value == required}[op]


def evaluate_targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one row per target of the issue: what is required, what this run measured, the verdict.

    Parameters
    ----------
    res
        The result of :func:`laue_live.bench.run_benchmark` (``environment``, ``config``,
        ``sustained``, ``end_to_end``, ``fit_throughput``, ``sinks``).

    Returns
    -------
    list of dict
        ``id``, ``target``, ``applies_to`` (``"gpu"``, ``"cpu"``, ``"any"``), ``required`` (e.g.
        ``">= 2000 frames/s"``), ``measured`` (the figure, or None), ``unit``, ``device`` and
        ``status``: ``"met"``, ``"NOT met"``, ``"not measured: ..."`` or ``"not applicable: ..."``.
    """
    device = str(res["environment"]["device"])
    on_gpu = device.startswith("cuda")
    shape = tuple(res["config"]["frame_shape"])
    large_shape = tuple(res["config"].get("large_shape") or ())
    targets = list(_TARGETS)
    lb = res["config"].get("latency_batch")
    if lb:
        # the same BM32 targets at a small device batch: the latency side of the trade-off
        for method, label in (("cnn", "CNN"), ("fit", "exact fit")):
            path = ("sustained", f"{method}/dense@batch{lb}")
            targets += [
                (f"bm32_sustained_{method}_batch{lb}", f"BM32 frames sustained, {label}, batch {lb}", "gpu",
                 path, "frames_per_s", ">=", 2000.0, "frames/s"),
                (f"bm32_p99_{method}_batch{lb}", f"BM32 frame latency p99 (sustained), {label}, batch {lb}",
                 "gpu", path, "p99_ms", "<", 5.0, "ms"),
            ]
    rows = []
    for tid, what, where, path, key, op, required, unit in targets:
        node = _get(res, path)
        value = None if node is None else node.get(key)
        row = {"id": tid, "target": what, "applies_to": where, "required": f"{op} {required:,.10g} {unit}",
               "measured": value, "unit": unit, "device": device}
        frames_ok = True
        why_shape = ""
        if "/dense" in path[1] or path[0] == "sinks" and key != "frames_lost" or where == "cpu":
            frames_ok = shape == BM32_SHAPE
            why_shape = f"frames are {shape[0]} x {shape[1]}, not BM32 {BM32_SHAPE[0]} x {BM32_SHAPE[1]}"
        if path[1].endswith("/36mpx"):
            frames_ok = large_shape == LARGE_SHAPE
            why_shape = f"large frames are {' x '.join(map(str, large_shape))}, not 6000 x 6000"
        if where == "gpu" and not on_gpu:
            row["status"] = "not measured: no GPU in this run"
        elif where == "cpu" and on_gpu:
            row["status"] = "not applicable: CPU target, this run is on a GPU"
        elif node is None:
            row["status"] = "not measured: this run skipped it"
        elif value is None:
            row["status"] = f"not measured: {node.get('error', 'no figure')}"
        elif not frames_ok:
            row["status"] = f"not applicable: {why_shape}"
        else:
            row["status"] = "met" if _compare(value, op, required) else "NOT met"
        rows.append(row)
    sinks = res.get("sinks") or {}
    limits = {k: v.get("limit") for k, v in sinks.items() if isinstance(v, dict) and "limit" in v}
    row = {"id": "cpu_service_limit",
           "target": "CPU: the analysis is the limit of the service, not the sinks",
           "applies_to": "cpu", "required": "limit = analysis", "measured": ", ".join(
               f"{k}: {v}" for k, v in limits.items()) or None, "unit": "", "device": device}
    if on_gpu:
        row["status"] = "not applicable: CPU target, this run is on a GPU"
    elif not limits:
        row["status"] = "not measured: this run skipped the sinks"
    else:
        row["status"] = "met" if all(v == "analysis" for v in limits.values()) else "NOT met"
    rows.append(row)
    return rows
