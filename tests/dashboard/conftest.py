"""Fixtures of the dashboard tests: real scans into a real Tiled server, a real dashboard, a real browser.

The browser is Debian's Chromium driven by Playwright (never `playwright install`): when
/usr/bin/chromium or the playwright package is missing, the browser tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("LAUE_LIVE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium; .ci/run does it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright for Python is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    """A headless Chromium context with an empty profile; every request it makes is recorded."""
    why = browser_missing()
    if why:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1500, "height": 1250})
        context.requests = []
        context.on("request", lambda request: context.requests.append(request.url))
        yield context
        context.close()


@pytest.fixture(scope="module")
def module_catalog(tiled_server):
    """Raw and analysis containers of their own on the session's Tiled server, for a whole module."""
    from laue_live.callbacks import serialize_tiled_writes
    from laue_live.catalog import CatalogSettings, open_catalog

    serialize_tiled_writes()
    prefix = f"dash-{uuid.uuid4().hex[:12]}"
    settings = CatalogSettings(uri=tiled_server.uri, api_key=tiled_server.api_key,
                               data_dir=tiled_server.data_dir, raw_path=f"{prefix}/raw",
                               analysis_path=f"{prefix}/analysis")
    return open_catalog(settings)


@pytest.fixture(scope="module")
def analyzer():
    from laue_live.analysis import FrameAnalyzer

    return FrameAnalyzer("fit")


def run_scan(catalog, detector, analyzer, *, nx: int, ny: int, sinks=(), sample: str = "Cu-test",
             scan_id: int = 1):
    """A raster scan in a real RunEngine: raw run into Tiled, analysis run into Tiled and ``sinks``.

    Returns the raw uid and the analysis uid once the analysis is written.
    """
    from bluesky import RunEngine
    from bluesky_tiled_plugins import TiledWriter

    from laue_live.callbacks import make_run_router
    from laue_live.catalog import make_analysis_writer
    from laue_live.plans import raster_scan
    from laue_live.sim import make_sim_stage

    RE = RunEngine({"scan_id": scan_id - 1}, call_returns_result=False)  # the RunEngine counts from there
    RE.subscribe(TiledWriter(catalog.raw, batch_size=1))
    writer = make_analysis_writer(catalog, max_delay_s=0.1)
    router = make_run_router([writer, *sinks], analyzer=analyzer)
    RE.subscribe(router)
    x, y = make_sim_stage()
    (raw_uid,) = RE(raster_scan([detector], x, 0.0, 2.0 * (nx - 1), nx, y, 0.0, 3.0 * (ny - 1), ny,
                                md={"sample": sample}))
    assert router.wait(120), "analysis did not finish"
    writer.close()
    return raw_uid, router.callbacks[-1].analysis_uid
