"""Catalog-test fixtures: analysis runs written by the real writer, raw runs from a real RunEngine.

Raw frames are the small synthetic ones of :mod:`laue_live.testing` (``n_spots(i)`` well separated
Gaussian spots), so that the real peak search and exact fit of laue_live.spots run in milliseconds.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from laue_live.testing import SHAPE, make_inline_detector, n_spots, synthetic_frame


@pytest.fixture(scope="session")
def small_detector():
    """An ophyd detector whose ``image`` is a new small uint16 frame at each trigger (inline)."""
    return make_inline_detector("det", synthetic_frame, SHAPE)


@pytest.fixture
def write_raw_run(small_detector):
    """``write_raw_run(container, rows, cols, **md) -> uid``: a real grid_scan written by TiledWriter."""
    from bluesky import RunEngine
    from bluesky.plans import grid_scan
    from bluesky_tiled_plugins import TiledWriter
    from ophyd.sim import SynAxis

    def write(container, rows: int = 2, cols: int = 3, snake: bool = False, **md) -> str:
        RE = RunEngine({}, call_returns_result=False)
        RE.subscribe(TiledWriter(container, batch_size=1))
        my, mx = SynAxis(name="sample_y"), SynAxis(name="sample_x")
        (uid,) = RE(grid_scan([small_detector], my, 0.0, 1.0, rows, mx, 0.0, 2.0, cols, snake_axes=snake),
                    **md)
        return uid

    return write


@pytest.fixture(scope="session")
def write_analysis_run():
    """``write_analysis_run(catalog, n_frames, spots, **md) -> (uid, docs)`` through the real writer."""
    from laue_live.catalog import make_analysis_writer, synthetic_analysis_documents

    def write(catalog, n_frames=6, spots=5, *, raw_uid="raw-0", shape=None, seed=0, **md):
        if shape is not None:
            md["shape"] = list(shape)  # as the composer copies it from the raw run's start document
        docs = list(synthetic_analysis_documents(n_frames, spots, raw_uid=raw_uid, metadata=md,
                                                 seed=seed, shape=shape))
        w = make_analysis_writer(catalog, max_rows=10_000, max_delay_s=0.2)
        for name, doc in docs:
            w(name, doc)
        w.close(timeout=60)
        return docs[0][1]["uid"], docs

    return write


@pytest.fixture(scope="session")
def spots_in_small_frame():
    """``f(i) -> n``: how many spots frame ``i`` of the small detector holds."""
    return n_spots


@pytest.fixture(scope="module")
def cli():
    return CliRunner()


@pytest.fixture
def cli_env(tiled_server, tiled_client, tmp_path):
    """Environment + settings file that point the CLI at this test's containers (key from env only)."""
    settings = tmp_path / "catalog.yml"
    settings.write_text(f"raw_path: {tiled_client.settings.raw_path}\n"
                        f"analysis_path: {tiled_client.settings.analysis_path}\n")
    return {"LAUE_LIVE_TILED_URI": tiled_server.uri, "LAUE_LIVE_TILED_API_KEY": tiled_server.api_key,
            "LAUE_LIVE_CATALOG_SETTINGS": str(settings)}
