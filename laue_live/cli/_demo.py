"""``laue-live demo``: the whole live path on a laptop, with nothing to configure.

Starts the embedded Tiled server, runs a simulated raster scan through a real RunEngine (detector
frames written to HDF5 and registered in Tiled with StreamResource documents, as area detectors do),
analyses every frame live with the spot callback (the web dashboard follows it, `laue-live
dashboard`), then reads the results back with a catalog query, saves a quality map of the scan and a
picture of one frame with its spots, and stops the servers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from laue_live._run import FRAMES_STREAM

demo_app = typer.Typer()


@demo_app.command("demo")
def demo(
    nx: Annotated[int, typer.Option("--nx", min=1, help="Points along the fast axis (x).")] = 10,
    ny: Annotated[int, typer.Option("--ny", min=1, help="Rows along the slow axis (y).")] = 10,
    method: Annotated[str, typer.Option(
        help="Spot descriptors: fit (exact Gaussian fit), cnn, or auto (the one the shipped model's "
             "evaluation measured better on this device; see the README).")] = "auto",
    data_dir: Annotated[Path, typer.Option(
        "--data-dir", help="Data directory of the embedded catalog (SQLite catalog, tables, detector "
                           "HDF5 files, pictures); reused by later runs and by `laue-live query`.")
    ] = Path("laue-live-data"),
    keep_server: Annotated[bool, typer.Option(
        "--keep-server", help="Leave the Tiled server running at the end (to browse or query the "
                              "results); stop it with `kill PID` as printed.")] = False,
    material: Annotated[str, typer.Option(help="Material of the simulated polycrystal.")] = "Cu",
    grains: Annotated[int, typer.Option(min=1, help="Grains in the simulated polycrystal.")] = 8,
    step: Annotated[float, typer.Option(min=0.0, help="Raster step, micrometres.")] = 2.0,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the simulated sample and noise.")] = 0,
    device: Annotated[str | None, typer.Option(
        help="torch device for the analysis (cpu, cuda, auto).")] = None,
    pipeline: Annotated[str, typer.Option(
        help="numpy (analyze_frames), torch (the whole per-frame path on --device) or auto: torch "
             "when a CUDA device is present, else numpy.")] = "auto",
    dashboard: Annotated[bool, typer.Option(
        "--dashboard/--no-dashboard", help="Serve the web dashboard of the scan on 127.0.0.1 (kept "
                                           "with --keep-server).")] = True,
    dashboard_port: Annotated[int, typer.Option(
        min=0, help="Port of the dashboard (another free one if taken).")] = 8765,
) -> None:
    """Simulate a raster scan and characterize every Laue spot live into a local Tiled catalog.

    At the start it prints the address of the web dashboard that follows the scan. At the end it
    prints where the results are, a query that reads them back (and its output), and the paths of a
    quality map of the scan (PNG) and of a picture of one frame with its spots. Ctrl-C stops the scan
    cleanly; the servers it started are stopped in every case (kept with --keep-server).
    """
    # imported at run time: `laue-live --help` stays fast
    from laue_live.analysis import FrameAnalyzer, OOMFallbackAnalyzer, runs_on_cuda
    from laue_live.catalog import prepare_data_dir

    logging.getLogger("bluesky").setLevel(logging.WARNING)
    data_dir = prepare_data_dir(data_dir.expanduser().resolve())  # a file in the way: one line
    analyzer = FrameAnalyzer(method, device=device, pipeline=pipeline)
    if runs_on_cuda(analyzer):
        analyzer = OOMFallbackAnalyzer(analyzer)  # GPU out of memory: split the batch, then the CPU
    print(f"laue-live demo: {nx} x {ny} raster of a simulated {material} polycrystal, "
          f"analysis method {analyzer.method!r} ({analyzer.model_info['name']}), "
          f"{analyzer.pipeline} pipeline")
    server = dash = publisher = None
    failed = ""
    try:
        print(f"loading the analysis ... ({analyzer.warm_up():.1f} s)", flush=True)
        server = _start_server(data_dir)
        if dashboard:
            publisher, dash = _start_dashboard(server, data_dir, dashboard_port, keep=keep_server)
        failed = _run_demo(server, analyzer, data_dir, nx=nx, ny=ny, material=material, grains=grains,
                           step=step, seed=seed, sinks=[publisher] if publisher is not None else [])
    except KeyboardInterrupt:
        print("\ninterrupted: stopping")
        raise typer.Exit(130) from None
    finally:
        if dash is not None:
            if keep_server and dash.process is not None and dash.process.poll() is None:
                print(f"\ndashboard left running at {dash.url} (pid {dash.pid}); "
                      f"stop it with: kill {dash.pid}")
                dash.detach()
            else:
                dash.stop()
                print("dashboard stopped.")
        if publisher is not None:
            publisher.close()
        if isinstance(server, _RunningServer):
            print(f"the Tiled server of `laue-live catalog serve` keeps running at {server.uri}")
        elif server is not None:
            if keep_server and server.process is not None and server.process.poll() is None:
                print(f"Tiled server left running at {server.uri} (pid {server.process.pid}); "
                      f"API key in {data_dir / 'api_key'}; stop it with: kill {server.process.pid}")
            else:
                server.stop()
                print("Tiled server stopped.")
    if failed:
        typer.echo(f"error: {failed}", err=True)
        raise typer.Exit(1)


@dataclass
class _RunningServer:
    """The Tiled server a `laue-live catalog serve` already runs on the data directory (used, not stopped)."""

    uri: str
    settings: Any

    @property
    def api_key(self) -> str:
        return self.settings.api_key


def _start_server(data_dir: Path):
    # imported at run time: `laue-live --help` stays fast
    from laue_live.catalog import CatalogSettings, LocalTiledServer, find_running_server

    running = find_running_server(data_dir)
    if running is not None:  # `laue-live catalog serve` on the same data: write into it, leave it on
        print(f"using the Tiled server that already runs on {data_dir}: {running}", flush=True)
        settings = CatalogSettings(data_dir=data_dir)
        return _RunningServer(running, settings.with_server(running, settings.embedded_api_key()))
    print(f"starting the local Tiled server (data in {data_dir}) ...", flush=True)
    t0 = time.monotonic()
    server = LocalTiledServer(data_dir).start()
    print(f"Tiled server at {server.uri} (up in {time.monotonic() - t0:.1f} s)")
    return server


def _start_dashboard(server, data_dir: Path, port: int, *, keep: bool = False):
    """Publish the analysis on a loopback 0MQ socket and start the dashboard on it (its own process).

    Returns the publisher and the :class:`~laue_live.dashboard.DashboardProcess`, or ``(None, None)``
    when the dashboard cannot start (the demo goes on without it).
    """
    # imported at run time: `laue-live --help` stays fast
    from laue_live.dashboard import DashboardProcess
    from laue_live.stream import SpotPublisher

    publisher = SpotPublisher("127.0.0.1:0")
    # the key goes through the environment, never the command line
    env = {"LAUE_LIVE_TILED_URI": server.uri, "LAUE_LIVE_TILED_API_KEY": server.api_key}
    log = data_dir / "logs" / "dashboard.log"
    for p in dict.fromkeys((port, 0)):  # the port may be taken (a dashboard kept from a run before)
        args = ["--stream", publisher.address, "--port", str(p), "--data-dir", str(data_dir)]
        dash = DashboardProcess(args, log, env=env, exit_with_parent=not keep)
        try:
            url = dash.start()
        except RuntimeError as exc:
            error = exc
            continue
        port = url.rstrip("/").rsplit(":", 1)[1]
        print(f"dashboard at {url} : open it in a browser to follow the scan (from another machine: "
              f"ssh -L {port}:127.0.0.1:{port} THIS-HOST, then http://127.0.0.1:{port}/)", flush=True)
        # bounded: the scan starts anyway, and the dashboard reads what it missed from Tiled
        publisher.wait_for_subscribers(1, timeout=20.0)
        return publisher, dash
    print(f"dashboard not started ({error}); the demo goes on without it")
    publisher.close()
    return None, None


def _run_demo(server, analyzer, data_dir: Path, *, nx: int, ny: int, material: str, grains: int,
              step: float, seed: int, sinks=()) -> str:
    """Run the scan and its live analysis, print the results; return why frames failed ("" if none)."""
    # imported at run time: `laue-live --help` stays fast
    from bluesky import RunEngine
    from bluesky.utils import RunEngineInterrupted
    from bluesky_tiled_plugins import TiledWriter
    from tqdm.auto import tqdm

    from laue_live.callbacks import make_run_router, serialize_tiled_writes
    from laue_live.catalog import SpooledAnalysisWriter, open_catalog
    from laue_live.plans import raster_scan
    from laue_live.sim import Polycrystal, SimLaueDetector, make_sim_stage

    serialize_tiled_writes()  # raw and analysis writers share this process: see docs/live.md
    cat = open_catalog(server.settings)
    extent = ((0.0, max(step * (nx - 1), 1.0)), (0.0, max(step * (ny - 1), 1.0)))
    sample = Polycrystal(material, n_grains=grains, extent=extent, beam_size=max(step, 0.5), seed=seed)
    x, y = make_sim_stage()
    det = SimLaueDetector("laue", sample=sample, x_motor=x, y_motor=y, mode="hdf5",
                          write_dir=data_dir / "detector", seed=seed)

    n = nx * ny
    acquired = tqdm(total=n, desc="acquired", unit="frame", position=0)
    analysed = tqdm(total=n, desc="analysed", unit="frame", position=1)

    def count_acquired(name, doc):
        if name == "event":
            acquired.update(1)

    frames_descriptors: set[str] = set()  # the analysis run's per-frame stream (not grains, ...)

    def count_analysed(name, doc):
        if name == "descriptor" and doc.get("name") == FRAMES_STREAM:
            frames_descriptors.add(doc["uid"])
        elif name == "event" and doc.get("descriptor") in frames_descriptors:
            d = doc["data"]
            analysed.update(1)
            analysed.set_postfix_str(f"frame {d['frame']}: {d['n_spots']} spots, {d['n_good']} good"
                                     + (" FAILED" if d["failed"] else ""))

    writer = SpooledAnalysisWriter(cat, data_dir / "spool")  # journaled: a Tiled hiccup loses nothing
    router = make_run_router([writer, count_analysed, *sinks], analyzer=analyzer)
    RE = RunEngine({})
    RE.subscribe(TiledWriter(cat.raw, batch_size=1))  # the raw run: HDF5 frames registered, not copied
    RE.subscribe(router)
    RE.subscribe(count_acquired)
    t0 = time.monotonic()
    try:
        (raw_uid,) = RE(raster_scan([det], x, 0.0, extent[0][1], nx, y, 0.0, extent[1][1], ny,
                                    md={"purpose": "laue-live demo"}))
    except (KeyboardInterrupt, RunEngineInterrupted):

        if RE.state != "idle":
            logging.getLogger("bluesky").setLevel(logging.CRITICAL)  # no traceback for a requested abort
            RE.abort("interrupted by the user")
        acquired.close()
        analysed.close()
        print(f"\nscan aborted after {acquired.n} frames; writing their analysis (Ctrl-C again to skip) ...")
        try:
            done = router.wait(60)
            writer.close()
            uid = router.callbacks[-1].analysis_uid if router.callbacks else None
            if done and uid:
                print(f"analysis run {uid} holds the frames acquired; finish the raw run's analysis "
                      f"later with `laue-live reprocess RUN --resume` if frames are missing.")
        except KeyboardInterrupt:
            pass
        except Exception as exc:  # the catalog write failed: say so, still clean up
            print(f"could not write the analysis: {exc}")
        raise KeyboardInterrupt from None
    t_scan = time.monotonic() - t0
    router.wait()  # the analysis of every frame is written, late rather than never
    writer.close()
    t_all = time.monotonic() - t0
    acquired.close()
    analysed.close()
    cb = router.callbacks[-1]
    stats = cb.stats()
    print(f"\nscan: {n} frames in {t_scan:.1f} s; analysis finished {t_all - t_scan:.1f} s after the scan "
          f"({stats.get('analysis_seconds', 0) / max(n, 1):.2f} s/frame analysis time); "
          f"callback time on the RunEngine thread: {stats.get('re_ms_mean', 0):.3f} ms/event mean, "
          f"{stats.get('re_ms_max', 0):.3f} ms max")
    summary = _report(cat, server, raw_uid, cb.analysis_uid, data_dir)
    failed = summary[summary["failed"].astype(bool)]
    if not len(failed):
        return ""
    return (f"{len(failed)} of {n} frames could not be analysed (frame {int(failed['frame'].iloc[0])}: "
            f"{failed['error'].iloc[0]}); see `laue-live query --data-dir {data_dir} summary "
            f"{cb.analysis_uid[:8]}`")


def _report(cat, server, raw_uid: str, analysis_uid: str, data_dir: Path):
    """Print where the results are, read them back, draw the pictures; return the per-frame summary."""
    # imported at run time: `laue-live --help` stays fast
    import pandas as pd

    from laue_live.catalog import frame_summary, get_spot_table, plot_quality_map

    run = cat.analysis[analysis_uid]
    stop = run.metadata.get("stop") or {}
    print("\nResults")
    print(f"  Tiled server     {server.uri}  (API key in {data_dir / 'api_key'})")
    print(f"  raw run          {cat.settings.raw_path}/{raw_uid}")
    print(f"                   (frames: HDF5 files under {data_dir / 'detector'}, registered in Tiled)")
    print(f"  analysis run     {cat.settings.analysis_path}/{analysis_uid}")
    print(f"                   {stop.get('frames_analysed', '?')} frames analysed, "
          f"{stop.get('frames_failed', '?')} failed, {stop.get('spots', '?')} spots")

    print("\nRead back (Python):")
    print("    from laue_live.catalog import CatalogSettings, catalog_session, frame_summary, get_spot_table")
    print(f"    with catalog_session(CatalogSettings.load(data_dir='{data_dir}')) as cat:")
    print(f"        run = cat.analysis['{analysis_uid}']")
    print("        spots = get_spot_table(run, good_only=True)")
    print("        summary = frame_summary(run)")
    spots = get_spot_table(run, good_only=True)
    summary = frame_summary(run)
    with pd.option_context("display.width", 140, "display.max_columns", 12):
        print(f"\n  -> {len(spots)} good spots; the first five:")
        cols = ["frame", "spot", "row", "col", "sim", "asp", "area", "intensity"]
        print(spots[cols].head().to_string(index=False))
        print(f"\n  -> per-frame summary ({len(summary)} frames), the first five:")
        print(summary[["frame", "x", "y", "n_spots", "n_good", "mean_sim", "seconds", "failed"]]
              .head().to_string(index=False))
    print("\nOr from the shell:")
    print(f"    laue-live query --data-dir {data_dir} spots {analysis_uid[:8]} --good-only")

    out = data_dir / "pictures"
    map_png = plot_quality_map(run, out / f"quality_map_{analysis_uid[:8]}.png", "n_good", catalog=cat)
    print(f"\nquality map of the scan:        {map_png}")
    frame_png = _frame_picture(cat, raw_uid, run, summary, out / f"frame_{analysis_uid[:8]}.png")
    if frame_png is not None:
        print(f"one frame with its spots:       {frame_png}")
    return summary


def _frame_picture(cat, raw_uid: str, run, summary, path: Path) -> Path | None:
    """Draw the frame with the most good spots, its spots as fitted ellipses; return the PNG path."""
    # imported at run time: `laue-live --help` stays fast
    import matplotlib

    matplotlib.use("Agg", force=False)
    # imported at run time: `laue-live --help` stays fast
    import numpy as np
    from matplotlib.figure import Figure

    from laue_live.catalog import get_spot_table
    from laue_live.views import draw_frame

    ok = summary[~summary["failed"].astype(bool)]
    if not len(ok):
        return None
    i = int(ok.sort_values("n_good", ascending=False)["frame"].iloc[0])
    start = run.metadata["start"]
    frame = np.asarray(cat.raw[raw_uid][start.get("raw_stream", "primary")][start["image_field"]][i])
    spots = get_spot_table(run, frames=i)
    fig = Figure(figsize=(8.2, 7.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    draw_frame(ax, frame, spots)
    scan = start.get("raw_scan_id")
    ax.set_title(f"Scan {scan}, frame {i}: {int(spots['good'].sum())} good of {len(spots)} spots "
                 "(good: Sim > 0.5 and |Pos - s| <= 0.9 px)", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path
