"""Fixtures shared by every test area. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")  # tests never open windows

REPO = Path(__file__).resolve().parents[1]


DATA = REPO / "tests" / "data"
#: The real-frame crops committed under tests/data/crops (see tests/data/README.md), by frame name.
CROP_NAMES = ("nw1_0000", "nw1_0001", "AH12_CMT_r14_0200", "Ge_blanc_0000")
#: LaueTools' files of each frame (tests/data): peak list, indexation (None: the list is all there
#: is), calibration.
LAUETOOLS_FILES = {
    "nw1_0000": ("bm32/peaks_GaN_Si_nw1_0000_box16.csv", None, "bm32/calib.det"),
    "nw1_0001": ("bm32/peaks_GaN_Si_nw1_0001_box16.csv", None, "bm32/calib.det"),
    "AH12_CMT_r14_0200": ("lauetools/AH12_CMT_r14_0200_LT_0.dat", "lauetools/AH12_CMT_r14_0200_LT_0.fit",
                          "lauetools/testcalib.det"),
    "Ge_blanc_0000": ("lauetools/Ge_blanc_0000_LT_5.dat", "lauetools/Ge_blanc_0000_LT_5.fit",
                      "lauetools/calibGe111.det"),
}


@dataclass
class RealCrop:
    """A 640 x 640 crop of a real frame with LaueTools' results inside it (0-based crop coordinates).

    Attributes
    ----------
    name, frame, origin, full_shape
        Frame name, the uint16 crop, its (row, col) in the full frame, the full frame's shape.
    peaks
        LaueTools' peak list rows whose position lies in the crop at least 16 px from its border:
        ``row, col`` (crop coordinates), plus the file's columns.
    indexed
        LaueTools' indexed spots (``.fit``) in the same window (``row, col``), or None (nw1 frames).
    calibration
        The frame's LaueTools calibration (full-frame pixel coordinates: add ``origin``).
    """

    name: str
    frame: np.ndarray
    origin: tuple[int, int]
    full_shape: tuple[int, int]
    peaks: object
    indexed: object
    calibration: object


# --- accuracy bounds of the shipped networks (tests/doubles/test_accuracy.py, tests/cnn/) -----------
# BOUNDS: figure -> (bound, measured on the shipped network); every figure must stay below its bound.


def out_of_bounds(fig: dict[str, float], bounds: dict[str, tuple[float, float]]) -> list[str]:
    """The figures of ``fig`` that are not below their bound."""
    return [k for k, (bound, _) in bounds.items() if not fig[k] < bound]


def bounds_report(fig: dict[str, float], bounds: dict[str, tuple[float, float]]) -> str:
    """Every figure, measured now, beside its bound and the shipped network's value (failure messages)."""
    lines = [f"  {k}: measured {fig[k]:.4g} (bound {b:.4g}, shipped model {m:.4g})"
             for k, (b, m) in bounds.items()]
    return "\n".join([f"{out_of_bounds(fig, bounds)} out of bounds:", *lines])


def perturb_weights(net, scale: float = 0.3, seed: int = 0):
    """Multiply every weight of a torch network by N(1, scale) in place (issue 16's broken model)."""
    import torch  # heavy: only the tests of the networks need it

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1 + scale * torch.randn(p.shape, generator=gen))
    return net


def read_fit_spots(path: Path):
    """The indexed spots of a LaueTools ``.fit`` file: 0-based ``row, col`` of ``Xexp, Yexp``, ``h, k, l``
    and the theoretical ``two_theta, chi`` (deg)."""
    import pandas as pd

    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            if rows:
                break
            continue
        vals = line.split()
        if len(vals) >= 14:
            rows.append([float(v) for v in vals[:14]])
    a = np.array(rows)
    return pd.DataFrame({"row": a[:, 8] - 1, "col": a[:, 7] - 1, "h": a[:, 2], "k": a[:, 3], "l": a[:, 4],
                         "two_theta": a[:, 12], "chi": a[:, 13]})


def _in_window(df, origin, side, margin=16):
    r, c = df["row"] - origin[0], df["col"] - origin[1]
    keep = (r >= margin) & (r < side - margin) & (c >= margin) & (c < side - margin)
    return df[keep].assign(row=r[keep], col=c[keep]).reset_index(drop=True)


def load_crop(name: str) -> RealCrop:
    """Load one committed crop with LaueTools' peaks and indexed spots inside it."""
    import pandas as pd

    from laue_live.geometry import read_det
    from laue_live.spots import read_lauetools_dat

    with np.load(DATA / "crops" / f"{name}.npz") as z:
        frame = z["frame"]
        origin, full = tuple(int(v) for v in z["origin"]), tuple(int(v) for v in z["full_shape"])
    lst, fit, det = LAUETOOLS_FILES[name]
    if lst.endswith(".csv"):
        peaks = pd.read_csv(DATA / lst)
        peaks = peaks.assign(row=peaks["peak_Y"] - 1, col=peaks["peak_X"] - 1)
    else:
        peaks = read_lauetools_dat(DATA / lst)
    side = frame.shape[0]
    indexed = None if fit is None else _in_window(read_fit_spots(DATA / fit), origin, side)
    return RealCrop(name, frame, origin, full, _in_window(peaks, origin, side), indexed,
                    read_det(DATA / det)[0])


@pytest.fixture(scope="session")
def real_crops() -> dict[str, RealCrop]:
    """Every committed real-frame crop, by name (tests/data/README.md)."""
    return {n: load_crop(n) for n in CROP_NAMES}


@pytest.fixture(scope="session")
def bm32_frame(real_crops):
    """A real BM32 sCMOS frame: the 640 x 640 crop of nw1_0000.tif (uint16, 18 LaueTools peaks)."""
    return real_crops["nw1_0000"].frame


@pytest.fixture(scope="session")
def bm32_lists_dir() -> Path:
    """tests/data/bm32: calib.det and LaueTools' full-frame peak lists of nw1_0000/0001 (no frames)."""
    return DATA / "bm32"


@pytest.fixture(scope="session")
def bm32_dir(tmp_path_factory, real_crops) -> Path:
    """A folder laid out like ../shared/data/bm32 from the crops: nw1_000*.tif, calib.det, peak lists.

    The frames are the crops and the peak lists hold the peaks inside them, in crop coordinates
    (1-based X = column, Y = row, as LaueTools writes them).
    """
    import shutil

    import tifffile

    d = tmp_path_factory.mktemp("bm32")
    shutil.copy(DATA / "bm32" / "calib.det", d / "calib.det")
    for name in ("nw1_0000", "nw1_0001"):
        crop = real_crops[name]
        tifffile.imwrite(d / f"{name}.tif", crop.frame)
        p = crop.peaks.assign(peak_X=crop.peaks["col"] + 1, peak_Y=crop.peaks["row"] + 1)
        p.drop(columns=["row", "col"]).to_csv(d / f"peaks_GaN_Si_{name}_box16.csv", index=False)
    return d


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
    return _client_on(tiled_server)


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


# --- PostgreSQL-backed Tiled (issue 19) -------------------------------------------------------------
# One PostgreSQL cluster per session (fsync off: throw-away data), one initialised catalog database
# made once and copied per server (CREATE DATABASE ... TEMPLATE: milliseconds instead of tiled's
# migrations). Tests that need PostgreSQL skip with the reason where it cannot run; CI sets
# LAUE_LIVE_REQUIRE_POSTGRES=1 so that they fail instead (.ci/run installs and can start it).


@pytest.fixture(scope="session")
def postgres_cluster():
    """A running :class:`laue_live.catalog.LocalPostgres` for the session (127.0.0.1, own port)."""
    import shutil
    import tempfile

    from laue_live.catalog import LocalPostgres, postgres_unavailable_reason

    why = postgres_unavailable_reason()
    if why:
        if os.environ.get("LAUE_LIVE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required (LAUE_LIVE_REQUIRE_POSTGRES=1) but cannot run: {why}")
        pytest.skip(f"PostgreSQL tests skipped: {why}")
    # not under pytest's tmp_path: when we are root the server runs as another account, which must
    # be able to reach its directory (pytest's base temp is private to root)
    root = Path(tempfile.mkdtemp(prefix="laue-live-pg-"))
    root.chmod(0o755)
    pg = LocalPostgres(root / "cluster", settings={"fsync": "off", "synchronous_commit": "off",
                                                   "full_page_writes": "off"})
    pg.start()
    yield pg
    pg.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def tiled_template_pg(tmp_path_factory, postgres_cluster) -> Path:
    """An initialised, empty PostgreSQL catalog (databases in ``postgres_cluster``), made once."""
    from laue_live.catalog import init_catalog

    d = tmp_path_factory.mktemp("tiled-template-pg")
    init_catalog(d, tabular="postgresql", postgres=postgres_cluster)
    return d


@pytest.fixture
def tiled_data_dir_pg(tmp_path, tiled_template_pg, postgres_cluster) -> Path:
    """A fresh data directory whose catalog and tables are new PostgreSQL databases (template copies).

    Start ``LocalTiledServer(d, postgres=postgres_cluster)`` on it.
    """
    from laue_live.catalog import LocalTiledServer

    d = tmp_path / "tiled-data-pg"
    LocalTiledServer.copy_catalog(tiled_template_pg, d, postgres=postgres_cluster)
    return d


@pytest.fixture(scope="session")
def tiled_server_pg(tmp_path_factory, tiled_template_pg, postgres_cluster):
    """Like ``tiled_server``, with catalog and spot tables in PostgreSQL."""
    from laue_live.catalog import LocalTiledServer

    d = tmp_path_factory.mktemp("tiled-server-pg")
    LocalTiledServer.copy_catalog(tiled_template_pg, d, postgres=postgres_cluster)
    with LocalTiledServer(d, readable_storage=[tmp_path_factory.getbasetemp()],
                          postgres=postgres_cluster) as server:
        yield server


def _client_on(server):
    import uuid

    from laue_live.catalog import CatalogSettings, open_catalog

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    return open_catalog(CatalogSettings(uri=server.uri, api_key=server.api_key, data_dir=server.data_dir,
                                        raw_path=f"{prefix}/raw", analysis_path=f"{prefix}/analysis"))


@pytest.fixture(params=["duckdb", "postgresql"])
def tiled_store(request) -> str:
    """The table store a test runs on: each test that uses it runs once per store."""
    return request.param


@pytest.fixture
def any_tiled_server(tiled_store, request):
    """The session server of ``tiled_store`` (``tiled_server`` or ``tiled_server_pg``)."""
    return request.getfixturevalue("tiled_server" if tiled_store == "duckdb" else "tiled_server_pg")


@pytest.fixture
def any_tiled_client(any_tiled_server):
    """Like ``tiled_client``, on the session server of ``tiled_store``."""
    return _client_on(any_tiled_server)


@pytest.fixture
def new_tiled_server(tiled_store, request):
    """``new_tiled_server(**kw) -> LocalTiledServer`` (not started) on a fresh catalog of ``tiled_store``."""

    def make(**kw):
        from laue_live.catalog import LocalTiledServer

        if tiled_store == "duckdb":
            return LocalTiledServer(request.getfixturevalue("tiled_data_dir"), **kw)
        return LocalTiledServer(request.getfixturevalue("tiled_data_dir_pg"),
                                postgres=request.getfixturevalue("postgres_cluster"), **kw)

    return make
