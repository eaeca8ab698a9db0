"""Fixtures shared by every test area. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")  # tests never open windows

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    # CI clones the repository with shared/ beside it; LAUE_LIVE_SHARED overrides.
    return Path(os.environ.get("LAUE_LIVE_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's read-only reference folder (real BM32 frames, calibration, paper)."""
    d = _shared_dir()
    if not (d / "data" / "bm32").is_dir():
        pytest.skip(f"reference data not found at {d} (set LAUE_LIVE_SHARED)")
    return d


@pytest.fixture(scope="session")
def bm32_dir(shared_dir: Path) -> Path:
    """Folder with the two real BM32 frames, calib.det and LaueTools' peak lists."""
    return shared_dir / "data" / "bm32"


@pytest.fixture(scope="session")
def bm32_frame(bm32_dir: Path):
    """The real BM32 frame nw1_0000.tif as a (2018, 2016) uint16 array."""
    import tifffile

    return tifffile.imread(bm32_dir / "nw1_0000.tif")


# --- LaueTools itself (interop and cross-checks) ------------------------------------------------------
# LaueTools 3.2.19 lives in a venv of its own (.lauetools-venv, numpy < 2.3); scripts/lauetools_env.sh
# makes it and .ci/run runs that script, so in CI these tests run. They skip only where the venv has
# not been made; a venv that exists but fails is a failure.

LAUETOOLS_PY = REPO / ".lauetools-venv" / "bin" / "python"


@pytest.fixture(scope="session")
def lauetools():
    """Run a Python snippet under LaueTools: ``lauetools(script, payload) -> answer``.

    The snippet reads its JSON payload from stdin and prints its JSON answer as its last line.
    """
    import json
    import subprocess

    if not LAUETOOLS_PY.exists():
        pytest.skip(f"LaueTools venv not made ({LAUETOOLS_PY} missing): run `bash scripts/lauetools_env.sh`")

    def run(script: str, payload=None):
        out = subprocess.run([str(LAUETOOLS_PY), "-c", script], input=json.dumps(payload),
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"LaueTools snippet failed:\n{out.stderr[-3000:]}"
        return json.loads(out.stdout.strip().splitlines()[-1])

    return run


# --- Tiled catalog (laue_live.catalog) --------------------------------------------------------------
# One real Tiled server process per session; each test gets its own raw/analysis containers on it.
# Initialising a catalog costs ~3 s (tiled's migrations), so it is done once into a template that
# is copied wherever a test needs a server of its own (`tiled_data_dir` + LocalTiledServer).


@pytest.fixture(scope="session")
def tiled_template(tmp_path_factory) -> Path:
    """An initialised, empty catalog directory (SQLite catalog + storage record), made once."""
    from laue_live.catalog import init_catalog

    d = tmp_path_factory.mktemp("tiled-template")
    init_catalog(d)
    return d


@pytest.fixture
def tiled_data_dir(tmp_path, tiled_template) -> Path:
    """A fresh data directory with a copy of the template catalog: start a LocalTiledServer on it."""
    from laue_live.catalog import LocalTiledServer

    d = tmp_path / "tiled-data"
    LocalTiledServer.copy_catalog(tiled_template, d)
    return d


@pytest.fixture(scope="session")
def tiled_server(tmp_path_factory, tiled_template):
    """A real local Tiled server (127.0.0.1, free port, API key, SQLite catalog) for the session.

    It may read detector files anywhere under pytest's base temporary directory (``tmp_path``),
    so HDF5 files written by simulated detectors can be registered (StreamResource).
    Attributes: ``uri``, ``api_key``, ``settings`` (:class:`laue_live.catalog.CatalogSettings`).
    """
    from laue_live.catalog import LocalTiledServer

    d = tmp_path_factory.mktemp("tiled-server")
    LocalTiledServer.copy_catalog(tiled_template, d)
    with LocalTiledServer(d, readable_storage=[tmp_path_factory.getbasetemp()]) as server:
        yield server


@pytest.fixture
def tiled_client(tiled_server):
    """A :class:`laue_live.catalog.Catalog` on the session server with empty ``raw``/``analysis``.

    The containers live under a per-test prefix, so tests never see each other's runs;
    ``tiled_client.raw`` / ``tiled_client["analysis"]`` are ``CatalogOfBlueskyRuns`` clients.
    """
    import uuid

    from laue_live.catalog import CatalogSettings, open_catalog

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    settings = CatalogSettings(uri=tiled_server.uri, api_key=tiled_server.api_key,
                               data_dir=tiled_server.data_dir, raw_path=f"{prefix}/raw",
                               analysis_path=f"{prefix}/analysis")
    return open_catalog(settings)
