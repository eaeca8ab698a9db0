"""The dashboard in a real browser (Debian's Chromium through Playwright) on a real scan.

A real RunEngine scans a simulated stage with an HDF5-writing detector; the live analysis writes to
a real Tiled server and publishes on real 0MQ; the dashboard (its own server, 127.0.0.1) follows it.
The page must follow the new run by itself, fill the map, show a clicked frame's spots with the right
count, and find an older run with the run picker; no request may leave the dashboard's origin.
Set LAUE_LIVE_UPDATE_SCREENSHOTS=1 to refresh docs/images/dashboard_test.png from this test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from laue_live.dashboard import DashboardServer, DashboardSettings
from laue_live.stream import SpotPublisher
from laue_live.testing import make_hdf5_detector, n_spots

from .conftest import browser_missing, run_scan

# decided before any fixture: without a browser, no scan and no server are started for nothing
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))]

REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 60_000  # bound on any wait in the page (a loaded 2-core CI machine)
NX, NY = 4, 3

_CELL_POSITION = """([x, y]) => {
  const gd = document.getElementById('map');
  const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
  const xr = gd.layout.xaxis.range, yr = gd.layout.yaxis.range;
  // an axis range runs from left to right, and from bottom to top (reversed for y: [last row, first])
  return [box.left + (x - xr[0]) / (xr[1] - xr[0]) * box.width,
          box.bottom - (y - yr[0]) / (yr[1] - yr[0]) * box.height];
}"""


@pytest.fixture(scope="module")
def older_run(module_catalog, analyzer, tmp_path_factory):
    """A finished 2 x 2 scan, in Tiled only (the dashboard never saw it live)."""
    det = make_hdf5_detector("laue", tmp_path_factory.mktemp("detector-old"))
    raw_uid, uid = run_scan(module_catalog, det, analyzer, nx=2, ny=2, sample="Si-old", scan_id=41)
    assert module_catalog.raw[raw_uid].metadata["start"]["scan_id"] == 41
    return uid, 41


@pytest.fixture(scope="module")
def dashboard(module_catalog, older_run):
    publisher = SpotPublisher("127.0.0.1:0")
    settings = DashboardSettings(port=0, stream=publisher.address, push_interval=0.2, latest_interval=0.5)
    server = DashboardServer(settings, catalog_settings=module_catalog.settings).start()
    yield publisher, server
    server.stop()
    publisher.close()


def test_live_scan_map_click_and_run_picker(browser_context, dashboard, module_catalog, analyzer, older_run,
                                            tmp_path):
    from laue_live.catalog import frame_summary, get_spot_table

    publisher, server = dashboard
    page = browser_context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.goto(server.url)
    assert publisher.wait_for_subscribers(1, 30), "the dashboard did not subscribe to the spot stream"

    # a scan starts after the page is open: the page follows it and its map fills
    det = make_hdf5_detector("laue", tmp_path / "detector")
    _, uid = run_scan(module_catalog, det, analyzer, nx=NX, ny=NY, sinks=[publisher], sample="Cu-live",
                      scan_id=42)
    page.wait_for_function("() => document.querySelector('#run-title').textContent"
                           f".includes('{uid[:8]}')", timeout=WAIT_MS)
    page.wait_for_function("() => { const t = document.querySelector('#map .gtitle'); "
                           f"return t && t.textContent.includes('{NX * NY} / {NX * NY} frames'); }}",
                           timeout=WAIT_MS)
    run = module_catalog.analysis[uid]
    summary = frame_summary(run)
    # the map holds each frame's good-spot count at its stage position, in µm
    heatmap = page.evaluate("() => { const gd = document.getElementById('map'), d = gd.data[0]; "
                            "return {x: d.x, y: d.y, z: d.z, xt: gd.layout.xaxis.title.text}; }")
    assert heatmap["x"] == [0.0, 2.0, 4.0, 6.0] and heatmap["y"] == [0.0, 3.0, 6.0]
    assert "µm" in heatmap["xt"]
    expected = [[None] * NX for _ in range(NY)]
    for frame, good in zip(summary["frame"], summary["n_good"], strict=True):
        expected[frame // NX][frame % NX] = int(good)
    assert heatmap["z"] == expected

    # a click on the cell of frame 10 (row 2, column 2: x = 4 µm, y = 6 µm) shows that frame's spots
    frame = 10
    x, y = page.evaluate(_CELL_POSITION, [4.0, 6.0])
    page.mouse.click(x, y)
    page.wait_for_function("() => document.querySelector('#frame-title').textContent"
                           f".startsWith('frame {frame}:') && "
                           "document.querySelector('#spot-table tbody').rows.length > 0", timeout=WAIT_MS)
    in_tiled = len(get_spot_table(run, frames=frame))
    assert in_tiled == n_spots(frame)
    assert page.get_attribute("#frame-title", "data-spots") == str(in_tiled)
    assert page.locator("#spot-table tbody tr").count() == in_tiled
    assert page.inner_text("#frame-title").startswith(f"frame {frame}: {in_tiled} spots")
    # the frame itself is drawn under the spots (read from the detector's HDF5 file)
    traces = page.evaluate("() => document.getElementById('frame').data"
                           ".map(t => [t.type, t.name, (t.x || []).length])")
    assert traces[0][0] == "image"
    assert sum(n for kind, _, n in traces if kind == "scatter") >= in_tiled
    csv = httpx.get(server.url.rstrip("/") + page.get_attribute("#dl-csv", "href"), timeout=30)
    assert csv.status_code == 200 and len(csv.text.strip().splitlines()) == in_tiled + 1
    page.wait_for_function("() => document.querySelector('#latest-title').textContent"
                           ".includes('latest frame: ')", timeout=WAIT_MS)
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    if os.environ.get("LAUE_LIVE_UPDATE_SCREENSHOTS"):
        shutil.copyfile(shot, REPO / "docs" / "images" / "dashboard_test.png")

    # the run picker finds the older run by its scan id, and shows its map from Tiled
    old_uid, old_scan = older_run
    page.fill("#q-scan", str(old_scan))
    page.click("#q-go")
    page.wait_for_function("() => document.querySelector('#run-title').textContent"
                           f".includes('{old_uid[:8]}')", timeout=WAIT_MS)
    page.wait_for_function("() => { const t = document.querySelector('#map .gtitle'); "
                           "return t && t.textContent.includes('4 / 4 frames'); }", timeout=WAIT_MS)
    assert not page.is_checked("#follow")  # looking at an older run: the next run does not take over

    assert not page_errors, page_errors
    outside = [u for u in browser_context.requests if not u.startswith((server.url, "data:"))]
    assert not outside, f"requests outside the dashboard: {outside}"
    page.close()
