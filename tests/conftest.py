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


@pytest.fixture
def catalog(tiled_client):
    """``tiled_client`` with table requests serialised, as the demo does (Tiled 0.2.20 DuckDB race).

    See docs/live.md.
    """
    from laue_live.catalog import serialize_tiled_writes

    serialize_tiled_writes()
    return tiled_client


# --- the live path (analysis, callbacks, reprocessing, faults) ---------------------------------------
# Frames are small synthetic ones (laue_live.testing): frame ``i`` holds ``n_spots(i) = 2 + i % 3``
# bright, well separated Gaussian spots, so that every test knows how many spot rows each frame gives.


@pytest.fixture(scope="session")
def analyzer():
    """The real analysis (exact Gaussian fit of laue_live.spots), one shared instance."""
    from laue_live.analysis import FrameAnalyzer

    return FrameAnalyzer("fit")


@pytest.fixture
def RE():
    """A real RunEngine, halted after the test if a scan was left running."""
    from bluesky import RunEngine

    re = RunEngine({}, call_returns_result=False)
    yield re
    if re.state != "idle":
        re.halt()


@pytest.fixture
def inline_det():
    """Frames inline in the events: frame ``i`` of every run is ``laue_live.testing.synthetic_frame(i)``."""
    from laue_live.testing import SHAPE, make_inline_detector, synthetic_frame

    return make_inline_detector("laue", synthetic_frame, SHAPE)


@pytest.fixture
def hdf5_det(tmp_path):
    """Frames in an HDF5 file announced by StreamResource/StreamDatum documents, as area detectors do."""
    from laue_live.testing import make_hdf5_detector

    return make_hdf5_detector("laueh5", tmp_path / "detector")


# --- 0MQ -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def curve_certs(tmp_path_factory):
    """Server and client certificates made by zmq.auth, plus a stranger's."""
    import zmq.auth

    d = tmp_path_factory.mktemp("curve")
    server_pub, server_sec = zmq.auth.create_certificates(d, "server")
    clients = d / "clients"
    clients.mkdir()
    client_pub, client_sec = zmq.auth.create_certificates(d, "client")
    (clients / "client.key").write_bytes(open(client_pub, "rb").read())
    _, stranger_sec = zmq.auth.create_certificates(d, "stranger")
    return {"server_public": server_pub, "server_secret": server_sec, "client_secret": client_sec,
            "client_keys_dir": clients, "stranger_secret": stranger_sec}
