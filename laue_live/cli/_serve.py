"""``laue-live serve``: the standalone analysis service; ``laue-live proxy``: a loopback-safe 0MQ proxy."""

from __future__ import annotations

import dataclasses
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from laue_live._errors import LaueLiveError
from laue_live.cli._analyze import DetectorOptions
from laue_live.cli._options import ApiKeyFile, CatalogSettingsFile, DataDir, TiledUri

__all__ = ["serve", "proxy"]


serve_app = typer.Typer()


_SERVE_HELP = """Run the analysis service: subscribe to a RunEngine's documents (0MQ proxy), analyse
every run that has frames, write analysis runs to Tiled and publish spot tables, until SIGINT/SIGTERM.
Runs that name a material and a calibration (start document, or --material/--calibration) are
indexed live too: grains, orientations and strains.

The RunEngine side publishes with the safe codec, e.g.
`RE.subscribe(laue_live.stream.DocumentPublisher("127.0.0.1:5577"))` (or bluesky's Publisher with
`serializer=laue_live.stream.dumps`); run a proxy with `laue-live proxy` or pass `--with-proxy`.
No pickle is accepted. State (frames/s, queue depth, dropped messages, device) goes every
--status-interval seconds, and on SIGUSR1, to STATE_DIR/status.json and as a `laue.status` message
on the publish socket (`laue-live watch --status`). With --dashboard, the web dashboard
(`laue-live dashboard`) runs beside it in its own process. Addresses are "host:port" strings;
everything binds 127.0.0.1 unless told otherwise."""


@serve_app.command("serve", help=_SERVE_HELP,
                   short_help="Run the analysis service: documents in over 0MQ, spot tables out.")
def serve(
    input_address: str = typer.Option(None, "--input", help="Proxy output carrying the RunEngine's "
                                      "documents (env LAUE_LIVE_SERVE_INPUT, default 127.0.0.1:5578)."),
    prefix: str = typer.Option("", "--prefix", help="Only documents with this bluesky Publisher prefix."),
    publish: str = typer.Option(None, "--publish", help="Where to bind the spot-table publisher "
                                "(env LAUE_LIVE_SERVE_PUBLISH, default 127.0.0.1:5579; "
                                "port 0: any free port)."),
    with_proxy: str = typer.Option(None, "--with-proxy", metavar="IN_ADDRESS",
                                   help="Also run a proxy in this process: RunEngines publish to IN_ADDRESS, "
                                   "the service reads its output at --input."),
    method: str = typer.Option(None, "--method", help="fit, cnn or auto (env LAUE_LIVE_METHOD)."),
    device: str = typer.Option(None, "--device",
                               help="torch device, e.g. cpu or cuda (env LAUE_LIVE_DEVICE)."),
    model: str = typer.Option(None, "--model", help="CNN model name or path (method cnn)."),
    pipeline: str = typer.Option(None, "--pipeline",
                                 help="numpy (analyze_frames), torch (the whole per-frame path on --device) "
                                 "or auto: torch when a CUDA device is present (env LAUE_LIVE_PIPELINE)."),
    state_dir: Annotated[Path | None, typer.Option(
        "--state-dir", help="Folder of status.json and the run journal "
        "(env LAUE_LIVE_SERVE_STATE_DIR, default ./laue-live-service).")] = None,
    status_interval: float = typer.Option(5.0, help="Seconds between status reports."),
    tiled: bool = typer.Option(True, "--tiled/--no-tiled", help="Write analysis runs to Tiled."),
    tiled_uri: TiledUri = None,
    api_key_file: ApiKeyFile = None,
    data_dir: DataDir = None,
    catalog_settings: CatalogSettingsFile = None,
    write_raw: bool = typer.Option(False, help="Also write the raw runs to Tiled (when nothing else does)."),
    recover: bool = typer.Option(False, help="On start, re-analyse from Tiled the runs that were being "
                                 "analysed when the service last stopped (see STATE_DIR/runs.journal)."),
    curve_secret: Annotated[Path | None, typer.Option(
        help="CURVE: the publisher's secret certificate (.key_secret) "
        "(env LAUE_LIVE_CURVE_SERVER_SECRET).")] = None,
    curve_clients: Annotated[Path | None, typer.Option(
        help="CURVE: folder of allowed subscribers' public .key files "
        "(env LAUE_LIVE_CURVE_CLIENT_KEYS).")] = None,
    input_curve_secret: Annotated[Path | None, typer.Option(
        help="CURVE on the input: this service's secret certificate, when the proxy output is a CURVE "
        "server (env LAUE_LIVE_INPUT_CURVE_CLIENT_SECRET).")] = None,
    input_curve_server: Annotated[Path | None, typer.Option(
        help="CURVE on the input: the proxy's public certificate "
        "(env LAUE_LIVE_INPUT_CURVE_SERVER_PUBLIC).")] = None,
    max_backlog: int = typer.Option(1000, help="Input messages held while busy before the proxy drops."),
    drain_timeout: float = typer.Option(120.0, help="On stop, seconds to finish queued frames."),
    detector: DetectorOptions.Detector = None,
    calibration: DetectorOptions.Calibration = None,
    mask: DetectorOptions.Mask = None,
    dark: DetectorOptions.Dark = None,
    flat: DetectorOptions.Flat = None,
    auto_mask: DetectorOptions.AutoMask = True,
    beamstop: DetectorOptions.Beamstop = None,
    threshold: Annotated[float | None, typer.Option(
        help="Peak search: local noise sigmas above the local background (default 7; env "
             "LAUE_LIVE_PEAK_PARAMS, a JSON object, sets any peak parameter).")] = None,
    min_pixels: Annotated[int | None, typer.Option(help="Peak search: smallest number of connected "
                                                   "pixels above the threshold (default 2).")] = None,
    index: bool = typer.Option(None, "--index/--no-index",
                               help="Index every frame of the runs whose start document (keys material, "
                               "calibration) or --material/--calibration name a material and a detector "
                               "calibration (--calibration is also the indexing's for runs that name "
                               "none): grains, orientations and strains in the analysis run and on "
                               "the publish socket (env LAUE_LIVE_INDEXING; default on)."),
    material: Annotated[list[str] | None, typer.Option(
        "--material", "-m", help="Material for runs that name none: Si, Ge, Cu, Al, Al2O3, GaN; repeat for "
        "several (a substrate first) (env LAUE_LIVE_MATERIAL).")] = None,
    energy_range: str = typer.Option(None, "--energy-range", help="Beam band 'E_min,E_max' in keV, "
                                     "default 5,23 (env LAUE_LIVE_ENERGY_RANGE)."),
    index_policy: str = typer.Option("spill", help="When indexing falls behind: spill (index every frame, "
                                     "late), drop_newest (record frames as not indexed) or block."),
    dashboard: bool = typer.Option(False, "--dashboard", help="Also serve the web dashboard (`laue-live "
                                   "dashboard`, its own process: it never slows the analysis)."),
    dashboard_bind: str = typer.Option("127.0.0.1:8765", "--dashboard-bind", metavar="HOST:PORT",
                                       help="Where the dashboard listens (port 0: any free port); any host "
                                       "but loopback needs a viewer key in LAUE_LIVE_DASHBOARD_KEY_FILE."),
) -> None:

    # imported at run time: `laue-live --help` stays fast
    from laue_live.service import AnalysisService, ServiceSettings
    from laue_live.stream import CurveClient, CurveServer, SafeProxy

    try:
        curve = CurveServer(curve_secret, curve_clients) if curve_secret else None
        input_curve = (CurveClient(input_curve_secret, input_curve_server)
                       if input_curve_secret and input_curve_server else None)
        settings = ServiceSettings.from_env(
            input_address=input_address, input_prefix=prefix.encode(), publish_address=publish,
            method=method, device=device, model=model, pipeline=pipeline, state_dir=state_dir,
            status_interval=status_interval,
            write_raw=write_raw, recover=recover, publish_curve=curve, input_curve=input_curve,
            max_backlog=max_backlog,
            drain_timeout=drain_timeout, detector=detector, calibration_file=calibration, mask_file=mask,
            dark_file=dark, flat_file=flat, auto_mask=auto_mask, beamstop=beamstop, indexing=index,
            index_material=tuple(material) if material else None, index_energy_range=energy_range,
            index_policy=index_policy)
        overrides = {k: v for k, v in (("threshold", threshold), ("min_pixels", min_pixels)) if v is not None}
        if overrides:
            settings = dataclasses.replace(settings, peak_params={**settings.peak_params, **overrides})
        catalog = None
        if tiled:
            # imported at run time: `laue-live --help` stays fast
            from laue_live.catalog import CatalogSettings, open_catalog

            catalog = open_catalog(CatalogSettings.load(uri=tiled_uri, api_key_file=api_key_file,
                                                        data_dir=data_dir, settings_file=catalog_settings))
        proxy = None
        if with_proxy:
            proxy = SafeProxy(with_proxy, settings.input_address)
            proxy.start_in_thread()
        service = AnalysisService(settings, catalog=catalog)
    except LaueLiveError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    signal.signal(signal.SIGINT, lambda *_: service.stop())
    signal.signal(signal.SIGTERM, lambda *_: service.stop())
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, lambda *_: service.request_status())
    typer.echo(f"laue-live serve: documents from {settings.input_address}"
               + (f" (proxy input {proxy.in_address})" if proxy else "")
               + f", spot tables on {service.publish_address}, status in {service.status_path}")
    dash = _start_dashboard(service, settings, dashboard_bind, tiled=tiled, tiled_uri=tiled_uri,
                            api_key_file=api_key_file, data_dir=data_dir,
                            catalog_settings=catalog_settings) if dashboard else None
    try:
        service.run()
    finally:
        if dash is not None:
            dash.stop()
        if proxy is not None:
            proxy.stop()
    typer.echo("laue-live serve: stopped")


def _start_dashboard(service, settings, bind: str, *, tiled: bool, tiled_uri, api_key_file, data_dir,
                     catalog_settings):
    """Start ``laue-live dashboard`` in a child process on the service's spot stream.

    A thread starts it and prints its address once it listens: the service does not wait for it.
    """
    # imported at run time: `laue-live --help` stays fast
    from laue_live.dashboard import DashboardProcess

    host, _, port = bind.rpartition(":")
    stream = service.publish_address.replace("0.0.0.0:", "127.0.0.1:")
    args = ["--stream", stream, "--host", host or "127.0.0.1", "--port", port]
    if not tiled:
        args.append("--no-tiled")
    for option, value in (("--tiled-uri", tiled_uri), ("--api-key-file", api_key_file),
                          ("--data-dir", data_dir), ("--catalog-settings", catalog_settings)):
        if value is not None:
            args += [option, str(value)]
    dash = DashboardProcess(args, settings.state_dir / "dashboard.log")

    def start() -> None:
        try:
            typer.echo(f"laue-live serve: dashboard at {dash.start()}")
        except RuntimeError as exc:  # the analysis goes on without it
            typer.echo(f"laue-live serve: dashboard not started: {exc}", err=True)

    threading.Thread(target=start, name="laue-live-dashboard-start", daemon=True).start()
    return dash


_PROXY_HELP = """Run a 0MQ proxy for bluesky documents: RunEngines publish to --in, consumers (the
analysis service, RemoteDispatchers) subscribe to --out. Binds 127.0.0.1 by default, passes
subscriptions upstream (publishers can wait for consumers instead of sleeping), never decodes
payloads. A loopback-safe stand-in for `bluesky-0MQ-proxy`."""


@serve_app.command("proxy", help=_PROXY_HELP,
                   short_help="Run a loopback-safe 0MQ proxy for bluesky documents.")
def proxy(
    in_address: str = typer.Option("127.0.0.1:5577", "--in", help="Address RunEngines publish to."),
    out_address: str = typer.Option("127.0.0.1:5578", "--out", help="Address consumers subscribe to."),
    in_curve_secret: Annotated[Path | None, typer.Option(
        help="CURVE on --in: the proxy's secret certificate (publishers need its public key).")] = None,
    out_curve_secret: Annotated[Path | None, typer.Option(
        help="CURVE on --out: the proxy's secret certificate (subscribers need its public key).")] = None,
    curve_clients: Annotated[Path | None, typer.Option(
        help="CURVE: folder of the public .key files of allowed peers (default: any peer that knows "
        "the proxy's public key).")] = None,
) -> None:

    # imported at run time: `laue-live --help` stays fast
    from laue_live.stream import CurveServer, SafeProxy

    try:
        p = SafeProxy(in_address, out_address,
                      in_curve=CurveServer(in_curve_secret, curve_clients) if in_curve_secret else None,
                      out_curve=CurveServer(out_curve_secret, curve_clients) if out_curve_secret else None)
    except LaueLiveError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    thread = p.start_in_thread()
    signal.signal(signal.SIGTERM, lambda *_: p.stop())
    typer.echo(f"laue-live proxy: publishers -> {p.in_address}, subscribers <- {p.out_address}")
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        p.stop()
