"""The embedded Tiled server: a real process on 127.0.0.1 that needs its key and cleans up."""

from __future__ import annotations

import httpx
import pytest

from laue_live import SettingsError
from laue_live.catalog import (
    CatalogSettings,
    LocalTiledServer,
    catalog_session,
    find_running_server,
    open_catalog,
)


@pytest.mark.slow
def test_server_starts_requires_key_and_stops(tiled_data_dir):
    with LocalTiledServer(tiled_data_dir) as server:
        assert server.uri.startswith("http://127.0.0.1:")
        assert httpx.get(f"{server.uri}/healthz", timeout=5).status_code == 200
        # Reads need the key; with it, the catalog answers and the containers get created.
        assert httpx.get(f"{server.uri}/api/v1/metadata/", timeout=5).status_code == 401
        cat = open_catalog(server.settings)
        assert {"raw", "analysis"} <= set(cat.root)
        assert type(cat.raw).__name__ == "CatalogOfBlueskyRuns"
        assert find_running_server(tiled_data_dir) == server.uri
        # Another process on this machine finds the running embedded server from its data dir + key file.
        with catalog_session(CatalogSettings(data_dir=tiled_data_dir)) as other:
            assert other.settings.uri == server.uri
            other.analysis.create_container("probe")
            assert "probe" in list(cat.analysis)
        assert "***" in repr(server) and server.api_key not in repr(server)
        # A second server on the same data directory is refused (one writer per catalog).
        with pytest.raises(SettingsError, match="already runs"):
            LocalTiledServer(tiled_data_dir).start()
        uri, proc = server.uri, server.process
    assert proc.poll() is not None  # the process is gone
    assert find_running_server(tiled_data_dir) is None
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{uri}/healthz", timeout=2)
    # The key never reaches the server log or the generated config.
    assert server.api_key not in (tiled_data_dir / "logs" / "tiled-server.log").read_text()
    assert server.api_key not in (tiled_data_dir / "tiled-config.yml").read_text()
    for name in ("catalog.db", "data", "detector"):
        assert (tiled_data_dir / name).exists()


def test_open_catalog_bad_key_or_address(tiled_server):
    with pytest.raises(SettingsError, match="refused|401"):
        open_catalog(CatalogSettings(uri=tiled_server.uri, api_key="wrongkey123"))
    dead = CatalogSettings(uri="http://127.0.0.1:9", api_key="abc")
    with pytest.raises(SettingsError, match="cannot reach"):
        open_catalog(dead)
    with pytest.raises(SettingsError, match="no Tiled URI"):
        open_catalog(CatalogSettings(data_dir=tiled_server.data_dir / "nowhere"))
