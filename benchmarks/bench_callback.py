"""Time the live callback adds to each event on the RunEngine thread (target: < 1 ms per frame).

A real RunEngine runs a grid scan of a detector that hands out pre-rendered BM32-sized frames
(2018 x 2016 uint16, simulated Si), so that the scan itself costs almost nothing and the
callback's share is visible. Printed side by side, in the same run:

* ``no callback``          the scan alone (baseline);
* ``naive, in RE thread``  the obvious callback: analyse each frame inside the RunEngine callback;
* ``LaueSpotCallback``     this project's callback (inline frames, and HDF5 StreamResource frames),
                           with the real analysis running in its worker thread;
* ``... slow analysis``    the same with an analysis slower than the scan, so the bounded queue
                           fills and the ``spill`` / ``drop_newest`` policies act.

"RE thread, per event" is measured inside the callback (``perf_counter`` around each event
document: the time the RunEngine waits for it). "scan per event" is wall time of ``RE(plan)`` / N.
The analysis keeps running after the scan ends; "drained" is when the last frame was written.

Usage: ``python benchmarks/bench_callback.py [--frames 40] [--quick]``
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def _frames(n: int) -> list[np.ndarray]:
    from laue_live.sim import SingleCrystal

    sample = SingleCrystal("Si", seed=1)
    return [sample.frame_at(0.0, 0.0, np.random.default_rng(i)).frame for i in range(n)]


def _inline_det(frames):
    from ophyd import Component as Cpt
    from ophyd import Device
    from ophyd.sim import SynSignal

    cycle = itertools.cycle(frames)

    class Det(Device):
        image = Cpt(SynSignal, kind="hinted")

        def trigger(self):
            return self.image.trigger()

        def describe(self):
            d = super().describe()
            for v in d.values():
                v["dtype_numpy"] = "<u2"
            return d

    det = Det(name="laue")
    det.image.sim_set_func(lambda: next(cycle))
    det.image.trigger()
    return det


def _hdf5_det(frames, directory: Path):
    from laue_live.sim import SimLaueDetector

    det = SimLaueDetector("laueh5", mode="hdf5", write_dir=directory)
    cycle = itertools.cycle(frames)

    class _Pre:  # pre-rendered frames: the benchmark measures the callback, not the renderer
        calibration = det.sample.calibration

        def frame_at(self, x, y, rng):
            from types import SimpleNamespace

            import pandas as pd

            return SimpleNamespace(frame=next(cycle), truth=pd.DataFrame())

    det.sample = _Pre()
    return det


def _scan(det, n, callbacks):
    from bluesky import RunEngine
    from bluesky.plans import grid_scan
    from ophyd.sim import motor1, motor2

    RE = RunEngine({})
    for cb in callbacks:
        RE.subscribe(cb)
    nx = int(np.sqrt(n)) or 1
    ny = max(n // nx, 1)
    t0 = time.perf_counter()
    RE(grid_scan([det], motor1, 0, 1, ny, motor2, 0, 1, nx))
    return (time.perf_counter() - t0) / (nx * ny), nx * ny


def _row(name, scan_s, re_times=None, drained=None, extra=""):
    if re_times:
        s = sorted(re_times)
        p99 = s[int(0.99 * (len(s) - 1))]
        re = f"{1e3 * statistics.mean(s):7.3f} / {1e3 * p99:7.3f} / {1e3 * s[-1]:7.3f}"
    else:
        re = f"{'-':>7} / {'-':>7} / {'-':>7}"
    dr = f"{drained:6.1f}" if drained is not None else f"{'-':>6}"
    print(f"| {name:<38} | {1e3 * scan_s:9.2f} | {re} | {dr} | {extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=36, help="frames per scan (a square grid)")
    ap.add_argument("--quick", action="store_true", help="9 frames, for a smoke run")
    args = ap.parse_args()
    n = 9 if args.quick else args.frames
    import logging

    logging.basicConfig(level=logging.ERROR)  # dropped frames are logged one by one: keep the table readable

    from laue_live.analysis import FrameAnalyzer
    from laue_live.callbacks import make_run_router

    print("rendering frames ...", flush=True)
    frames = _frames(4)
    analyzer = FrameAnalyzer("fit")
    analyzer(frames[:1])  # warm-up (torch, first-call costs) outside the timed scans
    t0 = time.perf_counter()
    per_frame = [len(t) for t in analyzer(frames)]
    t_analysis = (time.perf_counter() - t0) / len(frames)
    print(f"frames {frames[0].shape} uint16, ~{int(np.mean(per_frame))} spots each; analysis (fit, "
          f"this machine): {1e3 * t_analysis:.0f} ms per frame\n")
    print(f"| {'configuration':<38} | scan ms/ev | RE thread per event, ms: mean / p99 / max | drained s |")
    print(f"|{'-' * 40}|-----------|{'-' * 43}|-----------|")

    det = _inline_det(frames)
    scan_s, _ = _scan(det, n, [])
    _row("no callback (baseline)", scan_s)

    naive_times: list[float] = []

    def naive(name, doc):
        if name == "event":
            t = time.perf_counter()
            analyzer([doc["data"]["laue_image"]])
            naive_times.append(time.perf_counter() - t)

    scan_s, _ = _scan(det, min(n, 9), [naive])
    _row("naive: analyse in the RE callback", scan_s, naive_times)

    def live(det, label, analyzer_=analyzer, **options):
        sink_count = [0]

        def sink(name, doc):
            if name == "event":
                sink_count[0] += 1

        router = make_run_router([sink], analyzer=analyzer_, **options)
        t0 = time.perf_counter()
        scan_s, m = _scan(det, n, [router])
        assert router.wait(600), "analysis did not drain"
        drained = time.perf_counter() - t0
        cb = router.callbacks[-1]
        st = cb.stats()
        assert sink_count[0] == m, f"{sink_count[0]} of {m} frames written"
        extra = (f"queue max {st['max_depth']}, spilled {st['spilled']}, dropped {st['dropped']}, "
                 f"batches {st['batches']}")
        _row(label, scan_s, list(cb.re_seconds), drained, extra)

    live(det, "LaueSpotCallback, inline frames")
    with tempfile.TemporaryDirectory() as tmp:
        h5det = _hdf5_det(frames, Path(tmp))
        scan_s, _ = _scan(h5det, n, [])
        _row("no callback, HDF5 detector (baseline)", scan_s)
        live(h5det, "LaueSpotCallback, HDF5 StreamResource")

    gate = threading.Event()

    def slow(frames_):  # an analysis that cannot keep up: held until the scan is over
        gate.wait(600)
        return analyzer(frames_)

    for policy in ("spill", "drop_newest"):
        gate.clear()
        router = make_run_router([], analyzer=slow, policy=policy, queue_size=4, block_timeout=0.02)
        t0 = time.perf_counter()
        scan_s, _ = _scan(det, n, [router])
        gate.set()
        assert router.wait(600)
        drained = time.perf_counter() - t0
        st = router.callbacks[-1].stats()
        _row(f"slow analysis, policy {policy}", scan_s, list(router.callbacks[-1].re_seconds), drained,
             f"queue max {st['max_depth']}, spilled {st['spilled']}, dropped {st['dropped']}")
    print("\nRE thread per event = time inside LaueSpotCallback for each event document (what the RunEngine "
          "waits for);\nwith a full queue, 'spill' and 'drop_newest' wait at most block_timeout (20 ms here) "
          "before acting.")


if __name__ == "__main__":
    main()
