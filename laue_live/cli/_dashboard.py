"""``laue-live dashboard``: the live web dashboard of the scan (raster map, frames with spots, health)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from laue_live.cli._options import ApiKeyFile, CatalogSettingsFile, DataDir, TiledUri

__all__ = ["dashboard"]


dashboard_app = typer.Typer()


_DASHBOARD_HELP = """Serve the live web dashboard: the raster quality map of the current run filling in
as frames are analysed (µm from the scan geometry, any per-frame value, labelled colour scale), a
click on a cell shows that frame with its spots and its spot table (CSV and LaueTools .dat
downloads), the latest frame, the run's health (frames analysed / failed / dropped, frames/s,
backlog, sinks, errors), and a picker for any earlier run in Tiled.

Live data come from the analysis service's spot stream (--stream, `laue-live serve --publish`),
past runs from Tiled (as `laue-live query`). It binds 127.0.0.1 by default: from another machine use
an SSH tunnel (`ssh -L 8765:127.0.0.1:8765 beamline-host`, then open http://127.0.0.1:8765/), or bind
another address with a viewer key (--key-file; make one with --make-key FILE). Every asset is served
by laue-live itself: no outside request. `laue-live serve --dashboard` starts it beside the service."""


@dashboard_app.command("dashboard", help=_DASHBOARD_HELP,
                       short_help="Serve the live web dashboard: maps, frames, spot tables, run health.")
def dashboard(
    stream: str = typer.Option(None, "--stream", help="Spot stream of the analysis service, host:port "
                               "(env LAUE_LIVE_DASHBOARD_STREAM, default 127.0.0.1:5579)."),
    live: bool = typer.Option(True, "--live/--no-live", help="Follow the spot stream (--no-live: past "
                              "runs from Tiled only)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs "
                             "a viewer key."),
    port: int = typer.Option(8765, "--port", help="TCP port (0: any free port)."),
    key_file: Annotated[Path | None, typer.Option(
        "--key-file", help="File holding the viewer key browsers must give (env "
        "LAUE_LIVE_DASHBOARD_KEY_FILE or LAUE_LIVE_DASHBOARD_KEY).")] = None,
    make_key: Annotated[Path | None, typer.Option(
        "--make-key", metavar="FILE",
        help="Write a new random viewer key to FILE (mode 0600) and exit.")] = None,
    tiled: bool = typer.Option(True, "--tiled/--no-tiled", help="Read past runs, spot tables and frames "
                               "from Tiled."),
    tiled_uri: TiledUri = None,
    api_key_file: ApiKeyFile = None,  # a key with read scopes is enough: the dashboard never writes
    data_dir: DataDir = None,
    catalog_settings: CatalogSettingsFile = None,
    push_interval: float = typer.Option(0.5, min=0.05, help="Seconds between two updates sent to a "
                                        "browser (what arrives in between is coalesced)."),
    latest_interval: float = typer.Option(2.0, min=0.2, help="Seconds between two pictures of the latest "
                                          "frame in a browser."),
    curve_secret: str = typer.Option(None, help="CURVE: this client's secret certificate "
                                     "(env LAUE_LIVE_CURVE_CLIENT_SECRET)."),
    curve_server: str = typer.Option(None, help="CURVE: the publisher's public certificate "
                                     "(env LAUE_LIVE_CURVE_SERVER_PUBLIC)."),
    exit_with_parent: int = typer.Option(None, "--exit-with-parent", metavar="PID", hidden=True,
                                         help="Stop when process PID is gone (set by `serve --dashboard`)."),
) -> None:
    from laue_live._errors import LaueLiveError
    from laue_live.dashboard import READY_LINE, DashboardServer, DashboardSettings, make_viewer_key

    try:
        if make_key is not None:
            typer.echo(f"viewer key written to {make_viewer_key(make_key)}")
            return
        from laue_live.catalog import CatalogSettings
        from laue_live.stream import CurveClient, curve_client_from_env

        overrides = {"host": host, "port": port, "push_interval": push_interval,
                     "latest_interval": latest_interval}
        if not live:
            overrides["stream"] = None
        elif stream:
            overrides["stream"] = stream
        settings = DashboardSettings.from_env(key_file=key_file, **overrides)
        cat_settings = (CatalogSettings.load(uri=tiled_uri, api_key_file=api_key_file, data_dir=data_dir,
                                             settings_file=catalog_settings) if tiled else None)
        curve = (CurveClient(Path(curve_secret), Path(curve_server)) if curve_secret and curve_server
                 else curve_client_from_env())
        server = DashboardServer(settings, catalog_settings=cat_settings, curve=curve)
    except LaueLiveError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    where = [f"live: {settings.stream}" if settings.stream else "no live stream",
             f"Tiled: {cat_settings.uri or 'local laue-live server'}" if cat_settings else "no Tiled",
             "viewer key required" if settings.key else "loopback only, no key"]
    typer.echo(f"{READY_LINE}{server.url} ({'; '.join(where)})", color=False)
    server.serve(parent_pid=exit_with_parent)
    typer.echo("laue-live dashboard: stopped")
