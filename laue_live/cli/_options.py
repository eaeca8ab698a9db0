"""Command-line options that several commands share, declared once (where the catalog is)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["TiledUri", "ApiKeyFile", "DataDir", "CatalogSettingsFile"]

TiledUri = Annotated[str | None, typer.Option(
    "--tiled-uri", help="Tiled server (env LAUE_LIVE_TILED_URI; default: the local laue-live catalog "
    "server).")]
ApiKeyFile = Annotated[Path | None, typer.Option(
    help="File holding the Tiled API key (never pass keys on the command line) "
    "(env LAUE_LIVE_TILED_API_KEY(_FILE)).")]
DataDir = Annotated[Path | None, typer.Option(help="Data folder of the local laue-live catalog server.")]
CatalogSettingsFile = Annotated[Path | None, typer.Option(
    help="YAML/TOML catalog settings (uri, api_key_file, raw_path, analysis_path) "
    "(env LAUE_LIVE_CATALOG_SETTINGS).")]
