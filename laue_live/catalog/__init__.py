"""The Tiled catalog of laue-live: settings, the embedded server, the analysis-run writer, queries.

Tiled itself is imported only inside the functions, so ``import laue_live.catalog`` stays cheap.
"""

from laue_live.catalog._client import (
    BLUESKY_CATALOG_SPEC,
    Catalog,
    catalog_session,
    ensure_container,
    open_catalog,
)
from laue_live.catalog._plot import plot_quality_map
from laue_live.catalog._postgres import LocalPostgres, find_postgres_bindir, postgres_unavailable_reason
from laue_live.catalog._query import (
    find_runs,
    frame_summary,
    get_raw_run,
    get_run,
    get_spot_table,
    list_analysis_runs,
    quality_map,
    raster_geometry,
    runs_query,
    search_runs,
)
from laue_live.catalog._serialize import TILED_TABLE_LOCK, serialize_tiled_writes, table_store
from laue_live.catalog._server import (
    TABULAR_STORES,
    LocalTiledServer,
    find_running_server,
    free_port,
    init_catalog,
    running_server_tabular,
    write_server_config,
)
from laue_live.catalog._settings import CatalogSettings, generate_api_key, prepare_data_dir, redact
from laue_live.catalog._source import CatalogCutoutSource, image_array, read_frames
from laue_live.catalog._spool import (
    DocumentJournal,
    ReplayResult,
    SpooledAnalysisWriter,
    read_journal,
    replay_journal,
    replay_spool,
)
from laue_live.catalog._synthetic import (
    analysis_data_keys,
    random_spot_table,
    synthetic_analysis_documents,
)
from laue_live.catalog._writer import AnalysisWriter, CatalogWriteError, make_analysis_writer

__all__ = [
    "TILED_TABLE_LOCK",
    "serialize_tiled_writes",
    "table_store",
    # settings and connection
    "CatalogSettings",
    "generate_api_key",
    "redact",
    "prepare_data_dir",
    "Catalog",
    "open_catalog",
    "catalog_session",
    "ensure_container",
    "BLUESKY_CATALOG_SPEC",
    # embedded server
    "LocalTiledServer",
    "init_catalog",
    "find_running_server",
    "free_port",
    "write_server_config",
    "running_server_tabular",
    "TABULAR_STORES",
    # PostgreSQL for the embedded server
    "LocalPostgres",
    "find_postgres_bindir",
    "postgres_unavailable_reason",
    # writing
    "AnalysisWriter",
    "CatalogWriteError",
    "make_analysis_writer",
    "analysis_data_keys",
    "random_spot_table",
    "synthetic_analysis_documents",
    # local journal replayed on reconnection
    "DocumentJournal",
    "ReplayResult",
    "SpooledAnalysisWriter",
    "read_journal",
    "replay_journal",
    "replay_spool",
    # queries
    "runs_query",
    "search_runs",
    "find_runs",
    "list_analysis_runs",
    "get_run",
    "get_raw_run",
    "get_spot_table",
    "frame_summary",
    "raster_geometry",
    "quality_map",
    "plot_quality_map",
    # training
    "CatalogCutoutSource",
    "read_frames",
    "image_array",
]
