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
from laue_live.catalog._server import LocalTiledServer, find_running_server, free_port, init_catalog
from laue_live.catalog._settings import CatalogSettings, generate_api_key, redact
from laue_live.catalog._synthetic import analysis_data_keys, random_spot_table, synthetic_analysis_documents
from laue_live.catalog._writer import AnalysisWriter, CatalogWriteError, make_analysis_writer

__all__ = [
    "BLUESKY_CATALOG_SPEC",
    "Catalog",
    "catalog_session",
    "ensure_container",
    "open_catalog",
    "LocalTiledServer",
    "find_running_server",
    "free_port",
    "init_catalog",
    "CatalogSettings",
    "generate_api_key",
    "redact",
    "analysis_data_keys",
    "random_spot_table",
    "synthetic_analysis_documents",
    "AnalysisWriter",
    "CatalogWriteError",
    "make_analysis_writer",
]
