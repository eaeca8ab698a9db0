"""The service with its sinks, measured through the service's own path.

Frames are submitted as fast as the producer can to an :class:`~laue_live.analysis.AnalysisWorker`
(the live service's bounded queue, ``spill`` policy and batching) whose composer feeds a
:class:`~laue_live.catalog.SpooledAnalysisWriter` (journal + batched Tiled appends into a local
Tiled server on the same machine) and a :class:`~laue_live.stream.SpotPublisher` (0MQ), exactly the
sinks :class:`laue_live.service.AnalysisService` builds. The clock stops when the last row is
confirmed in Tiled; then the rows in Tiled are counted, frame by frame.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["measure_service"]

log = logging.getLogger(__name__)


def _raw_start() -> dict[str, Any]:
    return {"uid": str(uuid.uuid4()), "time": time.time(), "scan_id": 1, "plan_name": "bench"}


def _count_in_tiled(cat, run_uid: str) -> tuple[set[int], int]:
    """Frame numbers with a ``frames`` row, and the number of ``spots`` rows, of a run in Tiled."""
    # Tiled's client only when the catalog is read (the live view does without it)
    from laue_live.catalog import read_stream_table

    run = cat.analysis[run_uid]
    frames = read_stream_table(run, "frames", ["frame"])
    spots = read_stream_table(run, "spots", ["frame"])
    return (set(frames["frame"].astype(int).tolist()) if len(frames) else set()), len(spots)


def _lat_ms(latencies) -> dict[str, float]:
    lat = np.asarray(list(latencies), dtype=float)
    if not lat.size:
        return {"latency_p50_ms": float("nan"), "latency_p99_ms": float("nan")}
    return {"latency_p50_ms": 1e3 * float(np.percentile(lat, 50)),
            "latency_p99_ms": 1e3 * float(np.percentile(lat, 99))}


def _worker_stats(worker) -> dict[str, Any]:
    """Return the worker's counters with its latencies as p50/p99 in ms (not its own seconds)."""
    stats = worker.stats.as_dict() | _lat_ms(worker.stats.latencies)
    stats.pop("latency_p50_s", None)
    stats.pop("latency_max_s", None)
    return stats


def measure_service(analyzer, frames: list[np.ndarray], n: int, tmp: Path, *, worker_batch: int = 8,
                    timeout_s: float = 300.0) -> dict[str, Any]:
    """Analysis alone, sinks alone and the whole service path, for one analyser.

    Parameters
    ----------
    analyzer
        A :class:`laue_live.analysis.FrameAnalyzer` (what the service builds from its settings).
    frames
        Distinct frames; frame ``i`` of the run is ``frames[i % len(frames)]``.
    n
        Frames per run.
    tmp
        Scratch folder (Tiled server data, spool journals).
    worker_batch
        ``batch_size`` of the :class:`~laue_live.analysis.AnalysisWorker` (the service's default: 8).
    timeout_s
        Bound on each wait (worker drained, rows confirmed in Tiled).

    Returns
    -------
    dict
        ``frames``, ``rows`` (spot rows expected, from the analysis-alone run),
        ``analysis_frames_per_s`` (worker, no sinks), ``sinks_only_frames_per_s`` (precomputed
        tables through the composer into Tiled + 0MQ, until confirmed in Tiled),
        ``analysis_and_sinks_frames_per_s`` (the service path, until confirmed in Tiled), the
        frames and spot rows found in Tiled for both sink runs, ``frames_lost`` (must be 0),
        ``spot_rows_missing``, the worker's counters (spilled, max queue depth, batches), latency
        p50/p99 (hand-over to documents emitted), 0MQ ``published``/``publish_dropped`` and
        ``limit`` (``"analysis"`` or ``"sinks"``: the slower of the two alone).
    """
    # the service stack only for the service benchmark
    from laue_live.analysis import AnalysisRunComposer, AnalysisWorker, FrameTask
    from laue_live.catalog import LocalTiledServer, SpooledAnalysisWriter, open_catalog
    from laue_live.stream import SpotPublisher

    describe = analyzer.describe()
    out: dict[str, Any] = {"frames": n, "worker_batch": worker_batch}

    def run_worker(sinks: list) -> tuple[float, AnalysisWorker, AnalysisRunComposer]:
        comp = AnalysisRunComposer(sinks, _raw_start(), describe, image_field="image")
        worker = AnalysisWorker(comp, analyzer, batch_size=worker_batch, name="laue-live-bench-analysis")
        t0 = time.perf_counter()
        for i in range(n):
            worker.submit(FrameTask(i, source=frames[i % len(frames)]))
        worker.close("success")
        if not worker.join(timeout_s):
            raise TimeoutError(f"the analysis worker did not finish {n} frames in {timeout_s:.0f} s")
        return time.perf_counter() - t0, worker, comp

    # analysis alone: the same worker and composer, no sinks
    dt, worker, comp = run_worker([])
    out["analysis_frames_per_s"] = n / dt
    out["rows"] = comp.spots_written
    out["analysis_worker"] = _worker_stats(worker)
    tables = [analyzer([f])[0] for f in frames]  # for the sinks-alone run: the sinks get real tables

    with LocalTiledServer(tmp / "tiled") as server:
        cat = open_catalog(server.settings)
        pub = SpotPublisher("127.0.0.1:0")
        try:
            for mode in ("sinks_only", "analysis_and_sinks"):
                writer = SpooledAnalysisWriter(cat, tmp / f"spool-{mode}")
                sinks = [writer, pub]
                t0 = time.perf_counter()
                if mode == "sinks_only":
                    comp = AnalysisRunComposer(sinks, _raw_start(), describe, image_field="image")
                    for i in range(n):
                        comp.frame(i, tables[i % len(tables)])
                    comp.stop("success")
                    emitted = time.perf_counter() - t0
                else:
                    emitted, worker, comp = run_worker(sinks)
                    out["worker"] = _worker_stats(worker)
                synced = writer.wait_synced(timeout_s)  # every row confirmed in Tiled
                dt = time.perf_counter() - t0
                writer.close(timeout=timeout_s)
                in_tiled, spot_rows = _count_in_tiled(cat, comp.uid)
                out[f"{mode}_frames_per_s"] = n / dt
                out[f"{mode}_emitted_s"] = emitted
                out[f"{mode}_confirmed_s"] = dt
                out[f"{mode}_synced"] = bool(synced)
                out[f"{mode}_frames_in_tiled"] = len(in_tiled)
                out[f"{mode}_spot_rows_in_tiled"] = spot_rows
                out[f"{mode}_appends"] = writer.writer.stats["appends"]
                out[f"{mode}_frames_lost"] = n - len(in_tiled & set(range(n)))
            out["published"] = pub.sent
            out["publish_dropped"] = pub.dropped
        finally:
            pub.close()
    out["frames_lost"] = out["analysis_and_sinks_frames_lost"]
    out["spot_rows_missing"] = out["rows"] - out["analysis_and_sinks_spot_rows_in_tiled"]
    out["limit"] = "analysis" if out["analysis_frames_per_s"] < out["sinks_only_frames_per_s"] else "sinks"
    return out
