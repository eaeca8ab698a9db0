"""``laue-live bench``: how fast frames become spot tables here, stage by stage, beside the baselines."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from laue_live.cli._checks import check_counts, check_paths

__all__ = ["bench"]


bench_app = typer.Typer()


@bench_app.command()
def bench(
    quick: Annotated[bool, typer.Option(
        "--quick", help="Small run (one 768 x 768 frame, no sinks): seconds.")] = False,
    device: Annotated[str, typer.Option(
        "--device", help="torch device: auto (CUDA if present), cpu, cuda, cuda:1.")] = "auto",
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Also write every number to this JSON file.")] = None,
    frames: Annotated[int | None, typer.Option(
        "--frames", help="Dense simulated frames to render (default 4; quick 1).")] = None,
    spots: Annotated[int | None, typer.Option(
        "--spots", help="Spots rendered per dense frame (default 1600; quick 300).")] = None,
    repeats: Annotated[int | None, typer.Option(
        "--repeats", help="Timed passes over the frames (default 5; quick 2).")] = None,
    sinks: Annotated[bool | None, typer.Option(
        "--sinks/--no-sinks", help="Measure the service with its sinks: local Tiled server + 0MQ "
                                   "(default on; off with --quick).")] = None,
    lauetools: Annotated[str, typer.Option(
        "--lauetools", help="LaueTools baseline: auto (use or make .lauetools-venv; quick mode and GPU "
                            "runs only use an existing one), off, or a python that has LaueTools.")] = "auto",
    model: Annotated[Path | None, typer.Option(
        "--model", help="CNN model file (default: the shipped one).")] = None,
    threads: Annotated[int | None, typer.Option(
        "--threads", help="torch threads per pipeline (default 1).")] = None,
    batch_frames: Annotated[int | None, typer.Option(
        "--batch-frames", help="Frames per device batch on the sustained path (default: the pipeline's, "
                               "16 on CUDA, 1 on the CPU).")] = None,
    seconds: Annotated[float | None, typer.Option(
        "--seconds", help="Each sustained row streams frames for at least this long (default 3; "
                          "quick 0: a few frames).")] = None,
    large: Annotated[bool | None, typer.Option(
        "--large/--no-large", help="Also stream 36-Mpx frames (6000 x 6000, ~10,000 spots) (default on; "
                                   "off with --quick).")] = None,
    fit_spots: Annotated[int | None, typer.Option(
        "--fit-spots", help="Cutouts in the batched-fit throughput row (default 100,000 on CUDA, "
                            "4,000 on the CPU; quick 300).")] = None,
    sink_frames: Annotated[int | None, typer.Option(
        "--sink-frames", help="Frames sent through the service with its sinks (default 40 on the "
                              "CPU, 300 on CUDA).")] = None,
    ceilings: Annotated[bool, typer.Option(
        "--ceilings/--no-ceilings", help="Measure the device's copy and memory bandwidth and matrix "
                                         "rates (default on).")] = True,
) -> None:
    """Measure the per-frame path on one device and print one table.

    Rows: every stage of the fast path (peak search, cutouts, fit or CNN, table); the whole path
    one frame at a time (batch-1 latency) for the exact fit, the CNN in its fast precision and in
    float32, on dense simulated BM32-size frames (~1,500 spots) and on the real BM32 frames; the
    sustained rate of a long stream of frames with the pipeline's batching (frames/s, spots/s,
    frame latency p50/p99), also on 36-Mpx frames; the batched exact fit on many cutouts (spots/s);
    the numpy/scipy reference; per-spot times beside the paper's Table 5 (0.027 / 0.647 / 2.089 ms)
    and LaueTools' own fit on the same cutouts, measured in the same run; the service path with its
    sinks (AnalysisWorker, spooled Tiled appends, 0MQ; frames lost; which one limits); the device's
    ceilings measured here (copy and memory bandwidth, matrix rates) beside an H100's vendor peak
    numbers; and the issue's targets, met or not on this device. Wall-clock figures depend on what
    else runs on the machine: the load average is printed with them.

    On a GPU machine: `laue-live bench --device cuda --lauetools off --json out.json` (expected
    3-5 minutes; the JSON file is rewritten after every part, so a run cut short keeps its numbers).
    """
    # imported at run time: `laue-live --help` stays fast
    from laue_live.bench import BenchConfig, format_report, run_benchmark, write_json

    logging.getLogger("distributed").setLevel(logging.WARNING)
    _check_options(json_out=json_out, model=model, seconds=seconds,
                   counts={"--frames": frames, "--spots": spots, "--repeats": repeats, "--threads": threads,
                           "--batch-frames": batch_frames, "--fit-spots": fit_spots,
                           "--sink-frames": sink_frames})
    kw = {"device": device, "frames": frames, "spots": spots, "repeats": repeats, "sinks": sinks,
          "lauetools": lauetools, "model": str(model) if model else None, "threads": threads,
          "batch_frames": batch_frames, "sustained_seconds": seconds, "large": large,
          "fit_spots": fit_spots, "sink_frames": sink_frames, "ceilings": ceilings}
    kw = {k: v for k, v in kw.items() if v is not None}
    cfg = BenchConfig.quick_config(**kw) if quick else BenchConfig(**kw)
    # with --json, the file is rewritten after every step: a run cut short keeps what it measured
    res = run_benchmark(cfg, progress=True, checkpoint=json_out)
    print(format_report(res))
    if json_out is not None:
        print(f"\nnumbers written to {write_json(res, json_out)}")


def _check_options(*, json_out: Path | None, model: Path | None, seconds: float | None,
                   counts: dict[str, int | None]) -> None:
    """Refuse what cannot work with one line, before anything is rendered or measured."""
    check_counts({**{k: (v, 1) for k, v in counts.items()}, "--seconds": (seconds, 0)})
    check_paths(files={"--json": json_out}, folders={})
    if model is not None:
        # imported at run time: torch loads only when a model is named
        from laue_live.cnn import read_metadata

        read_metadata(model)  # a missing or unreadable model file: its one-line ModelError here
