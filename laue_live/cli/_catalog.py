"""``laue-live catalog serve|init|info``: the embedded Tiled server and where the catalog is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from laue_live.cli._app import app

catalog_app = typer.Typer(
    help=(
        "The Tiled catalog. By default laue-live runs its own Tiled server on 127.0.0.1 with an "
        "SQLite catalog and file storage under one data directory (--data-dir, default "
        "./laue-live-data). To use a beamline's Tiled server instead, set LAUE_LIVE_TILED_URI and "
        "the key (LAUE_LIVE_TILED_API_KEY, TILED_API_KEY or LAUE_LIVE_TILED_API_KEY_FILE); keys are "
        "never taken on the command line."
    ),
    no_args_is_help=True,
)
app.add_typer(catalog_app, name="catalog")

_DATA_DIR_HELP = "Data directory of the embedded server (env LAUE_LIVE_DATA_DIR; default ./laue-live-data)."
_SETTINGS_HELP = ("YAML/TOML settings file with uri, api_key_file, data_dir, raw_path, analysis_path "
                  "(env LAUE_LIVE_CATALOG_SETTINGS).")


def load_settings(uri: str | None = None, settings_file: Path | None = None, data_dir: Path | None = None):
    """Load settings from CLI options + environment + file; a SettingsError ends the command cleanly."""
    from laue_live._errors import SettingsError
    from laue_live.catalog import CatalogSettings

    try:
        return CatalogSettings.load(uri=uri, settings_file=settings_file, data_dir=data_dir)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@catalog_app.command("serve")
def serve(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help=_DATA_DIR_HELP)] = None,
    tabular: Annotated[str, typer.Option(
        help="SQL storage of spot tables: duckdb (faster) or sqlite (readable by other processes "
             "while the server runs). Fixed at creation.")] = "duckdb",
    readable: Annotated[list[Path] | None, typer.Option(
        "--readable", help="Extra directory the server may read detector HDF5 files from "
                           "(repeatable).")] = None,
    public: Annotated[bool, typer.Option(help="Allow reads without the key (writes still need it).")] = False,
    settings_file: Annotated[Path | None, typer.Option("--settings", help=_SETTINGS_HELP)] = None,
) -> None:
    """Run the embedded Tiled server in the foreground (127.0.0.1, free port) until Ctrl-C."""
    from laue_live.catalog import LocalTiledServer

    settings = load_settings(settings_file=settings_file, data_dir=data_dir)
    server = LocalTiledServer(settings.data_dir, api_key=settings.api_key, tabular=tabular,
                              readable_storage=list(readable or []), public=public)
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - the message is already redacted
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    key_file = server.data_dir / "api_key"
    typer.echo(f"Tiled server running at {server.uri}  (data: {server.data_dir}, log: {server.log_path})")
    typer.echo("Point other laue-live processes (and tiled clients) at it with:")
    typer.echo(f"  export LAUE_LIVE_TILED_URI={server.uri}")
    if key_file.exists() and settings.api_key is None:
        typer.echo(f"  export LAUE_LIVE_TILED_API_KEY_FILE={key_file}")
    else:
        typer.echo("  (and the API key you configured, through LAUE_LIVE_TILED_API_KEY)")
    typer.echo("Press Ctrl-C to stop.")
    try:
        code = server.wait()
        typer.echo(f"the Tiled server exited with code {code}; see {server.log_path}", err=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        typer.echo("stopping the Tiled server")
    finally:
        server.stop()


@catalog_app.command("init")
def init(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help=_DATA_DIR_HELP)] = None,
    tabular: Annotated[str, typer.Option(help="SQL storage of spot tables: duckdb or sqlite.")] = "duckdb",
    settings_file: Annotated[Path | None, typer.Option("--settings", help=_SETTINGS_HELP)] = None,
) -> None:
    """Create the data directory, its SQLite catalog and its API key (idempotent)."""
    from laue_live.catalog import init_catalog

    settings = load_settings(settings_file=settings_file, data_dir=data_dir)
    db = init_catalog(settings.data_dir, tabular=tabular)
    settings.embedded_api_key()
    typer.echo(f"catalog: {db}")
    typer.echo(f"API key file: {settings.data_dir.resolve() / 'api_key'} (mode 0600)")


@catalog_app.command("info")
def info(
    uri: Annotated[str | None, typer.Option(help="Tiled server URI (env LAUE_LIVE_TILED_URI).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help=_DATA_DIR_HELP)] = None,
    settings_file: Annotated[Path | None, typer.Option("--settings", help=_SETTINGS_HELP)] = None,
) -> None:
    """Show the catalog settings (key redacted), whether a server runs, and how many runs it holds."""
    from laue_live._errors import SettingsError
    from laue_live.catalog import find_running_server, open_catalog

    settings = load_settings(uri, settings_file, data_dir)
    typer.echo(repr(settings))
    if settings.embedded:
        running = find_running_server(settings.data_dir)
        typer.echo(f"embedded server on {settings.data_dir}: {running or 'not running'}")
        if not running:
            return
    try:
        # create=True: the containers are made on first contact anyway (needs a write-capable key)
        cat = open_catalog(settings)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"server: {cat.settings.uri}")
    typer.echo(f"raw runs ({settings.raw_path}): {len(cat.raw)}")
    typer.echo(f"analysis runs ({settings.analysis_path}): {len(cat.analysis)}")
