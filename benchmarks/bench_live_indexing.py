"""Throughput of the live indexing stage through the service path, beside the spot path alone, same run.

A real RunEngine publishes a scan's documents over 0MQ (``DocumentPublisher`` -> ``SafeProxy``) to an
in-process ``laue-live serve`` (``AnalysisService``: the callback machinery, the indexing stage, the
``SpotPublisher``); a ``SpotSubscriber`` in this process times each frame's spot table and its grains
message. The spot "analysis" hands out real spot tables, computed once beforehand (the exact fit of
rendered BM32 frames of a Si crystal, single grain, ~100 spots), so the figures are the service path's
and the indexing stage's, not the fit's (that is ``bench_callback.py``).

Printed side by side:

* ``spot path only``       indexing off (the baseline): spot tables/s at the scan rate;
* ``+ indexing, 4 Hz``     the scan paced at 4 Hz (``count(delay=0.25)``): frames indexed per second,
                           the delay from a frame's spot table to its grains, frames not indexed (0);
* ``+ indexing, unpaced``  as fast as the RunEngine goes: the stage's own capacity (frames/s).

CPU ms/frame is this process's CPU time (all threads: RunEngine, service, indexing) per frame; the
difference between the rows is what indexing costs. Wall times on the shared 2-core machine are
inflated by the other jobs (the load average is printed).

Usage: ``python benchmarks/bench_live_indexing.py [--frames 60] [--rate 4] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def _spot_tables(n: int) -> list:
    from laue_live.describe import analyze_frame
    from laue_live.geometry import rotation_matrix
    from laue_live.sim import SingleCrystal

    sample = SingleCrystal("Si", orientation=rotation_matrix([1.0, 2.0, 3.0], 17.0),
                           strain=np.diag([1.0, -0.5, -0.5]) * 1e-3, seed=1)
    return [analyze_frame(sample.frame_at(2.0 * i, 0.0).frame, "fit") for i in range(n)]


def _detector():
    """Tiny 2-D frames whose first pixel names the prepared spot table to hand out."""
    from laue_live.testing import make_inline_detector

    return make_inline_detector("laue", lambda i: np.full((4, 4), i, dtype=np.uint16), (4, 4))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _run(tables, n: int, delay: float | None, indexing: bool, state: Path) -> dict:
    from bluesky import RunEngine
    from bluesky.plans import count

    from laue_live.analysis import FrameAnalyzer
    from laue_live.geometry import BM32_CALIBRATION
    from laue_live.service import AnalysisService, ServiceSettings
    from laue_live.stream import DocumentPublisher, SafeProxy, SpotSubscriber

    analyzer = FrameAnalyzer("fit", func=lambda frames: [tables[int(f[0, 0]) % len(tables)] for f in frames])
    md = {"material": "Si", "calibration": BM32_CALIBRATION.to_dict()}
    with SafeProxy() as proxy:
        proxy.start_in_thread()
        settings = ServiceSettings(input_address=proxy.out_address, publish_address="127.0.0.1:0",
                                   state_dir=state, status_interval=3600, indexing=indexing)
        service = AnalysisService(settings, catalog=None, analyzer=analyzer)
        thread = service.run_in_thread()
        sub = SpotSubscriber(service.publish_address, grains=True, hwm=100_000)
        publisher = DocumentPublisher(proxy.in_address)
        assert sub.wait_ready(60) and publisher.wait_for_subscribers(1, 60)
        RE = RunEngine({}, call_returns_result=False)
        RE.subscribe(publisher)
        spot_t: dict[int, float] = {}
        grain_t: dict[int, float] = {}

        def receive() -> None:  # timestamps taken as the messages arrive, while the scan runs
            deadline = time.monotonic() + 600
            while (len(spot_t) < n or (indexing and len(grain_t) < n)) and time.monotonic() < deadline:
                message = sub.receive(deadline - time.monotonic())
                if message is None:
                    return
                now = time.monotonic()
                if message.topic == b"laue.spots":
                    spot_t[int(message.payload["frame"])] = now
                elif message.topic == b"laue.grains":
                    grain_t[int(message.payload["frame"])] = now

        receiver = threading.Thread(target=receive, daemon=True)
        cpu0, t0 = _cpu(), time.monotonic()
        receiver.start()
        RE(count([_detector()], num=n, delay=delay), **md)
        scan_s = time.monotonic() - t0
        receiver.join(600)
        cpu = _cpu() - cpu0
        status = service.report()
        cb = service.router.callbacks[-1]
        index_stats = cb.stats().get("indexing", {})
        publisher.close()
        sub.close()
        service.stop()
        thread.join(120)
    end = max((grain_t if indexing else spot_t).values())
    lat = [grain_t[f] - spot_t[f] for f in grain_t if f in spot_t]
    return {
        "frames": n, "scan_hz": n / scan_s, "scan_s": scan_s,
        "spot_tables": len(spot_t), "spot_per_s": len(spot_t) / (max(spot_t.values()) - t0),
        "grains_messages": len(grain_t),
        "indexed_per_s": (len(grain_t) / (end - t0)) if indexing else float("nan"),
        "frames_indexed": status.get("frames_indexed", 0),
        "frames_not_indexed": status.get("frames_not_indexed", 0),
        "latency_p50_s": statistics.median(lat) if lat else float("nan"),
        "latency_max_s": max(lat) if lat else float("nan"),
        "index_ms_per_frame": 1e3 * index_stats.get("index_seconds", 0.0)
        / max(1, index_stats.get("indexed", 0)),
        "max_index_queue": index_stats.get("max_depth", 0), "cpu_ms_per_frame": 1e3 * cpu / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60, help="frames per configuration")
    ap.add_argument("--rate", type=float, default=4.0, help="paced scan rate, Hz (the target: 4)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args()
    print("preparing spot tables (exact fit of rendered Si frames) ...", flush=True)
    tables = _spot_tables(8)
    print(f"{len(tables)} spot tables, {int(np.mean([len(t) for t in tables]))} spots each; "
          f"load average {os.getloadavg()[0]:.1f}")
    delay = 1.0 / args.rate
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, d, idx in ((f"spot path only, {args.rate:g} Hz (baseline)", delay, False),
                             (f"+ indexing, {args.rate:g} Hz", delay, True),
                             ("+ indexing, unpaced", None, True)):
            r = _run(tables, args.frames, d, idx, Path(tmp) / name.split(",")[0].replace(" ", "_"))
            r["configuration"] = name
            rows.append(r)
            print(f"  {name}: done", flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}; {args.frames} frames per row, service path "
          "(RunEngine -> 0MQ -> laue-live serve -> 0MQ subscriber)\n")
    print("| configuration | scan Hz | spot tables/s | frames indexed/s | spot -> grains p50 / max (s) | "
          "not indexed | indexing ms/frame (wall, its thread) | max queue | CPU ms/frame (process) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        indexed = "-" if np.isnan(r["indexed_per_s"]) else f"{r['indexed_per_s']:.1f} ({r['frames_indexed']})"
        lat = "-" if np.isnan(r["latency_p50_s"]) else f"{r['latency_p50_s']:.3f} / {r['latency_max_s']:.3f}"
        ms = "-" if np.isnan(r["indexed_per_s"]) else f"{r['index_ms_per_frame']:.1f}"
        print(f"| {r['configuration']} | {r['scan_hz']:.1f} | {r['spot_per_s']:.1f} | {indexed} | {lat} | "
              f"{r['frames_not_indexed']} | {ms} | {r['max_index_queue']} | {r['cpu_ms_per_frame']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"load_average": os.getloadavg(), "rows": rows}, indent=1))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
