"""``laue-live catalog serve|init|info``: the embedded Tiled server and where the catalog is."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from laue_live._errors import SettingsError

catalog_app = typer.Typer(
    help=(
        "The Tiled catalog. By default laue-live runs its own Tiled server on 127.0.0.1 with an "
        "SQLite catalog and file storage under one data directory (--data-dir, default "
        "./laue-live-data), or with catalog and tables in PostgreSQL (--postgres). "
        "To use a beamline's Tiled server instead, set LAUE_LIVE_TILED_URI and "
        "the key (LAUE_LIVE_TILED_API_KEY, TILED_API_KEY or LAUE_LIVE_TILED_API_KEY_FILE); keys are "
        "never taken on the command line."
    ),
    no_args_is_help=True,
)

_DATA_DIR_HELP = "Data directory of the embedded server (env LAUE_LIVE_DATA_DIR; default ./laue-live-data)."
_SETTINGS_HELP = ("YAML/TOML settings file with uri, api_key_file, data_dir, raw_path, analysis_path "
                  "(env LAUE_LIVE_CATALOG_SETTINGS).")


def load_settings(uri: str | None = None, settings_file: Path | None = None, data_dir: Path | None = None):
    """Load settings from CLI options + environment + file; a SettingsError ends the command cleanly."""
    # imported at run time: `laue-live --help` stays fast
    from laue_live.catalog import CatalogSettings

    try:
        return CatalogSettings.load(uri=uri, settings_file=settings_file, data_dir=data_dir)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def existing_catalog_settings(uri: str | None = None, settings_file: Path | None = None,
                              data_dir: Path | None = None):
    """Return the settings of a catalog that must exist already (query, index --run, reprocess).

    A data directory that is missing or unusable is one line and exit code 1.

    The embedded catalog of a data directory that does not exist would be made, empty, by the first
    command that opens it: a mistyped ``--data-dir`` would then say "no such run" and leave a new
    folder behind. A server (``--uri``) or a running ``catalog serve`` on the directory is taken as is.
    """
    # imported at run time: `laue-live --help` stays fast
    from laue_live.catalog import find_running_server

    settings = load_settings(uri, settings_file, data_dir)
    if settings.uri is None and find_running_server(settings.data_dir) is None:
        where, why = settings.data_dir, None
        above = next((p for p in where.parents if p.exists()), None)
        if where.exists() and not where.is_dir():
            why = f"the data directory {where} is a file, not a laue-live data directory"
        elif not where.exists() and above is not None and not above.is_dir():
            why = f"there is no data directory {where}: part of its path, {above}, is a file"
        elif not where.exists():
            why = (f"no laue-live data directory at {where}: give the one of your runs (--data-dir or "
                   "LAUE_LIVE_DATA_DIR), or a server (--uri or LAUE_LIVE_TILED_URI)")
        if why:  # exit 1, as for a data directory catalog_session cannot use
            typer.echo(f"error: {why}", err=True)
            raise typer.Exit(1)
    return settings


_TABULAR_HELP = ("SQL storage of spot tables of a new catalog: duckdb (fastest single writer; writers "
                 "take turns), sqlite (readable by other processes while the server runs) or postgresql "
                 "(catalog and tables in PostgreSQL: several writers at once). Fixed at creation; default: "
                 "the settings file's `tabular`, else what the data directory holds, else duckdb.")
_POSTGRES_HELP = ("Keep the catalog and the spot tables in PostgreSQL (same as --tabular postgresql): "
                  "laue-live runs the machine's PostgreSQL from DATA_DIR/postgres.")


def _tabular(tabular: str | None, postgres: bool, settings) -> str | None:
    if postgres:
        if tabular not in (None, "postgresql"):
            typer.echo(f"error: --postgres and --tabular {tabular} contradict each other", err=True)
            raise typer.Exit(2)
        return "postgresql"
    return tabular or settings.tabular


def _stop_on_sigterm() -> None:
    """Turn SIGTERM (systemd, supervisors, ``kill``) into a clean stop, like Ctrl-C."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@catalog_app.command("serve")
def serve(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help=_DATA_DIR_HELP)] = None,
    port: Annotated[int | None, typer.Option(
        min=1, max=65535,
        help="TCP port on 127.0.0.1. A restarted server must come back on the port its writers use: "
             "default: the port of this data directory's last start when free, else a free one.")] = None,
    tabular: Annotated[str | None, typer.Option(help=_TABULAR_HELP)] = None,
    postgres: Annotated[bool, typer.Option("--postgres", help=_POSTGRES_HELP)] = False,
    readable: Annotated[list[Path] | None, typer.Option(
        "--readable", help="Extra directory the server may read detector HDF5 files from "
                           "(repeatable).")] = None,
    public: Annotated[bool, typer.Option(help="Allow reads without the key (writes still need it).")] = False,
    settings_file: Annotated[Path | None, typer.Option("--settings", help=_SETTINGS_HELP)] = None,
) -> None:
    """Run the embedded Tiled server in the foreground on 127.0.0.1 until Ctrl-C or SIGTERM.

    Stopping it (Ctrl-C, SIGTERM from systemd or kill) stops Tiled and PostgreSQL and removes
    server.json; if this process is killed outright, Linux stops them too. The web UI is at
    URI/ui/ (open URI/ui/?api_key=KEY once: the browser keeps the key in a cookie).
    """
    # imported at run time: `laue-live --help` stays fast
    from laue_live.catalog import LocalTiledServer

    settings = load_settings(settings_file=settings_file, data_dir=data_dir)
    _stop_on_sigterm()
    try:
        server = LocalTiledServer(settings.data_dir, api_key=settings.api_key,
                                  tabular=_tabular(tabular, postgres, settings),
                                  readable_storage=list(readable or []), public=public, port=port,
                                  die_with_parent=True)
        server.start()
    except KeyboardInterrupt:
        typer.echo("interrupted before the server was ready", err=True)
        raise typer.Exit(130) from None
    except (SettingsError, RuntimeError) as exc:  # the message is already redacted
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    key_file = server.data_dir / "api_key"
    typer.echo(f"Tiled server running at {server.uri}  ({server.store} tables; data: {server.data_dir}, "
               f"log: {server.log_path})")
    typer.echo("Point other laue-live processes (and tiled clients) at it with:")
    typer.echo(f"  export LAUE_LIVE_TILED_URI={server.uri}")
    if key_file.exists() and settings.api_key is None:
        typer.echo(f"  export LAUE_LIVE_TILED_API_KEY_FILE={key_file}")
    else:
        typer.echo("  (and the API key you configured, through LAUE_LIVE_TILED_API_KEY)")
    typer.echo(f"Web UI: {server.uri}/ui/  (once: {server.uri}/ui/?api_key=<the key>)")
    typer.echo("Press Ctrl-C to stop.", nl=True)
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
    tabular: Annotated[str | None, typer.Option(help=_TABULAR_HELP)] = None,
    postgres: Annotated[bool, typer.Option("--postgres", help=_POSTGRES_HELP)] = False,
    settings_file: Annotated[Path | None, typer.Option("--settings", help=_SETTINGS_HELP)] = None,
) -> None:
    """Create the data directory, its catalog (SQLite or PostgreSQL) and its API key (idempotent)."""
    # imported at run time: `laue-live --help` stays fast
    from laue_live.catalog import init_catalog

    settings = load_settings(settings_file=settings_file, data_dir=data_dir)
    try:
        db = init_catalog(settings.data_dir, tabular=_tabular(tabular, postgres, settings))
        settings.embedded_api_key()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"catalog: {db}")
    typer.echo(f"API key file: {settings.data_dir.resolve() / 'api_key'} (mode 0600)")


@catalog_app.command("info")
def info(
    uri: Annotated[str | None, typer.Option(help="Tiled server URI (env LAUE_LIVE_TILED_URI).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help=_DATA_DIR_HELP)] = None,
    settings_file: Annotated[Path | None, typer.Option("--settings", help=_SETTINGS_HELP)] = None,
) -> None:
    """Show the catalog settings (key redacted), whether a server runs, and how many runs it holds."""
    # imported at run time: `laue-live --help` stays fast
    from laue_live.catalog import find_running_server, open_catalog, running_server_tabular

    settings = load_settings(uri, settings_file, data_dir)
    typer.echo(repr(settings))
    if settings.embedded:
        running = find_running_server(settings.data_dir)
        store = f" ({running_server_tabular(settings.data_dir)} tables)" if running else ""
        typer.echo(f"embedded server on {settings.data_dir}: {running or 'not running'}{store}")
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
