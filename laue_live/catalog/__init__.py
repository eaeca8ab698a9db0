"""The Tiled catalog of laue-live: settings, the embedded server, writing, recovery, queries.

Everything that knows Tiled lives here: the analysis-run writer, the recovery of interrupted runs
(resume, reprocessing from Tiled, the local journal replayed after an outage), queries (spot
tables, summaries, grains, quality and grain maps), indexing runs already in the catalog, and the
training source. Where a run's data are in Tiled is known to one module, ``_layout``. Tiled itself
is imported only inside the functions, so ``import laue_live.catalog`` stays cheap.
"""

from laue_live._journal import DocumentJournal, read_journal
from laue_live.catalog._client import (
    BLUESKY_CATALOG_SPEC,
    Catalog,
    catalog_session,
    ensure_container,
    open_catalog,
)
from laue_live.catalog._grains import (
    get_grains,
    get_spot_indices,
    indexing_info,
    indexing_summary,
    run_materials,
)
from laue_live.catalog._import import IMPORT_IMAGE_KEY, frame_run_documents, import_frames, scan_positions
from laue_live.catalog._index import IndexRunResult, index_run, indexing_setup_of
from laue_live.catalog._layout import (
    NotInCatalogError,
    image_array,
    read_stream_table,
    stream_table_node,
    written_frames,
)
from laue_live.catalog._plot import plot_quality_map
from laue_live.catalog._postgres import LocalPostgres, find_postgres_bindir, postgres_unavailable_reason
from laue_live.catalog._query import (
    frame_summary,
    get_spot_table,
    map_values,
    orientation_map,
    quality_map,
    raster_geometry,
)
from laue_live.catalog._reprocess import ReprocessResult, reprocess_run
from laue_live.catalog._resume import ResumeSink
from laue_live.catalog._runs import (
    find_analysis_runs,
    find_runs,
    get_raw_run,
    get_run,
    list_analysis_runs,
    run_finished,
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
from laue_live.catalog._source import CatalogCutoutSource, TiledFrameLoader, read_frames
from laue_live.catalog._spool import ReplayResult, SpooledAnalysisWriter, replay_journal, replay_spool
from laue_live.catalog._synthetic import random_spot_table, synthetic_analysis_documents
from laue_live.catalog._writer import AnalysisWriter, CatalogWriteError, make_analysis_writer

__all__ = [
    "IMPORT_IMAGE_KEY",
    "frame_run_documents",
    "import_frames",
    "scan_positions",
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
    "random_spot_table",
    "synthetic_analysis_documents",
    # recovery: resume, reprocessing, the local journal replayed on reconnection
    "ResumeSink",
    "ReprocessResult",
    "reprocess_run",
    "IndexRunResult",
    "index_run",
    "indexing_setup_of",
    "DocumentJournal",
    "ReplayResult",
    "SpooledAnalysisWriter",
    "read_journal",
    "replay_journal",
    "replay_spool",
    # finding runs
    "NotInCatalogError",
    "runs_query",
    "search_runs",
    "find_runs",
    "list_analysis_runs",
    "find_analysis_runs",
    "run_finished",
    "get_run",
    "get_raw_run",
    # reading results
    "stream_table_node",
    "read_stream_table",
    "written_frames",
    "get_spot_table",
    "frame_summary",
    "raster_geometry",
    "quality_map",
    "map_values",
    "plot_quality_map",
    # reading the indexing
    "get_grains",
    "get_spot_indices",
    "indexing_info",
    "indexing_summary",
    "orientation_map",
    "run_materials",
    # training
    "CatalogCutoutSource",
    "TiledFrameLoader",
    "read_frames",
    "image_array",
]
