"""Frames -> spot tables, stage by stage and end to end, beside the paper's Table 5 and LaueTools.

The same measurement as ``laue-live bench`` (see :mod:`laue_live.bench`), as a script:

    .venv/bin/python benchmarks/bench_pipeline.py [--quick] [--device cpu] [--json out.json]

Prints one Markdown table per part (stages, batch-1 latency and sustained rows, the batched fit,
per-spot ratios, the service with its sinks, the device's measured ceilings beside the H100's
vendor numbers, the issue's targets) and writes the numbers to JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import logging


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small run (seconds)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--frames", type=int)
    ap.add_argument("--spots", type=int)
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--no-sinks", dest="sinks", action="store_false", default=None)
    ap.add_argument("--lauetools", default="auto", help="auto, off, or a python with LaueTools")
    ap.add_argument("--threads", type=int, help="torch threads per pipeline (default 1)")
    ap.add_argument("--batch-frames", type=int, help="frames per device batch (default: the pipeline's)")
    ap.add_argument("--seconds", type=float, help="each sustained row streams at least this long (s)")
    ap.add_argument("--large", action=argparse.BooleanOptionalAction, default=None,
                    help="also stream 36-Mpx frames (default on; off with --quick)")
    ap.add_argument("--fit-spots", type=int, help="cutouts in the batched-fit throughput row")
    ap.add_argument("--sink-frames", type=int, help="frames sent through the service with its sinks")
    ap.add_argument("--no-ceilings", dest="ceilings", action="store_false", default=None,
                    help="do not measure the device's bandwidths and matrix rates")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from laue_live.bench import BenchConfig, format_report, run_benchmark, write_json

    kw = {
        k: v
        for k, v in {
            "device": a.device,
            "frames": a.frames,
            "spots": a.spots,
            "repeats": a.repeats,
            "sinks": a.sinks,
            "lauetools": a.lauetools,
            "threads": a.threads,
            "batch_frames": a.batch_frames,
            "sustained_seconds": a.seconds,
            "large": a.large,
            "fit_spots": a.fit_spots,
            "sink_frames": a.sink_frames,
            "ceilings": a.ceilings,
        }.items()
        if v is not None
    }
    cfg = BenchConfig.quick_config(**kw) if a.quick else BenchConfig(**kw)
    res = run_benchmark(cfg, checkpoint=a.json_out)
    print(format_report(res))
    if a.json_out:
        print(f"\nnumbers written to {write_json(res, a.json_out)}")


if __name__ == "__main__":
    main()
