"""The live web dashboard: the scan's raster map, any frame with its spots, the run's health, in a browser.

It follows the analysis service's spot stream (:mod:`laue_live.stream`) for the live run and reads
past runs, spot tables and detector frames from Tiled (:mod:`laue_live.catalog`). It only reads:
it never slows the analysis (its own process, updates coalesced, pictures on demand), serves every
asset itself (plotly.js from the ``plotly`` wheel) and binds 127.0.0.1 unless given a viewer key.
See ``docs/dashboard.md``.
"""

from laue_live._maps import (
    LENGTH_UNITS_UM,
    MAP_VALUES,
    VALUE_NAMES,
    MapValue,
    frame_values,
    map_geometry,
    run_values,
)
from laue_live.dashboard._app import SESSION_COOKIE, STATIC_DIR, TABLE_COLUMNS, create_app
from laue_live.dashboard._history import CatalogReader
from laue_live.dashboard._images import DEFAULT_MAX_PX, render_frame, render_ipf_key
from laue_live.dashboard._live import GrainMaps, LiveFeed, LiveRun, LiveState
from laue_live.dashboard._server import READY_LINE, DashboardProcess, DashboardServer
from laue_live.dashboard._settings import DEFAULT_PORT, DashboardSettings, make_viewer_key, read_viewer_key

__all__ = [
    "DashboardSettings",
    "DEFAULT_PORT",
    "make_viewer_key",
    "read_viewer_key",
    "DashboardServer",
    "DashboardProcess",
    "READY_LINE",
    "create_app",
    "STATIC_DIR",
    "SESSION_COOKIE",
    "TABLE_COLUMNS",
    "LiveState",
    "LiveRun",
    "LiveFeed",
    "GrainMaps",
    "CatalogReader",
    "map_geometry",
    "LENGTH_UNITS_UM",
    "render_frame",
    "render_ipf_key",
    "DEFAULT_MAX_PX",
    "MapValue",
    "MAP_VALUES",
    "VALUE_NAMES",
    "frame_values",
    "run_values",
]
