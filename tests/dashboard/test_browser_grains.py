"""The dashboard's grain maps in a real browser (Debian's Chromium through Playwright).

An indexed analysis run (spot tables of known Si grains, indexed by the real indexer, composed into
documents as the live stage emits them) goes out on a real 0MQ publisher; the dashboard follows it.
The page must offer the grain values of an indexed run, map the strain and the misorientation with
the indexer's values, and draw the orientation in inverse-pole-figure colours with the material's
colour key, black for a frame indexed without a grain and nothing for a frame not indexed. The same
run written into a real Tiled gives the same maps when read back as a past run.
Set LAUE_LIVE_UPDATE_SCREENSHOTS=1 to refresh docs/images/dashboard_grains.png from this test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from laue_live._run import IndexingRequest
from laue_live.analysis import AnalysisRunComposer, resolve_indexing
from laue_live.catalog import make_analysis_writer
from laue_live.dashboard import DashboardServer, DashboardSettings
from laue_live.geometry import BM32_CALIBRATION, rotation_matrix
from laue_live.indexing import Indexer, ipf_colors, ipf_sector, misorientation_deg
from laue_live.stream import SpotPublisher
from laue_live.testing import grain_spot_table

from .conftest import browser_missing

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))]

REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 60_000  # bound on any wait in the page (a loaded 2-core CI machine)
RAW = {"uid": "raw-grains-1", "scan_id": 7, "time": 0.0, "sample": "Si-grains",
       "laue_live": {"scan_shape": [2, 3], "x_range": [0.0, 4.0], "y_range": [0.0, 2.0], "units": "um",
                     "x_motor": "sx", "y_motor": "sy", "snake": False}}
U = [rotation_matrix([1.0, 2.0, 3.0], 17.0), rotation_matrix([3.0, -1.0, 2.0], 40.0)]
STRAIN = np.diag([1.0, -0.5, -0.5]) * 1e-3


def _map(page):
    return page.evaluate("() => { const gd = document.getElementById('map'); return {"
                         "traces: gd.data.map(t => ({type: t.type, z: t.z, zmin: t.zmin, zmax: t.zmax})), "
                         "title: gd.layout.title.text, images: (gd.layout.images || []).length, "
                         "notes: (gd.layout.annotations || []).map(a => a.text)}; }")


def _show(page, value, frames_text):
    page.select_option("#map-value", value)
    page.wait_for_function("() => { const t = document.querySelector('#map .gtitle'); "
                           f"return t && t.textContent.includes('{frames_text}'); }}", timeout=WAIT_MS)
    return _map(page)


def test_grain_maps_of_a_live_indexed_run(browser_context, module_catalog, tmp_path):
    indexer = Indexer("Si", BM32_CALIBRATION)
    resolved = resolve_indexing(IndexingRequest("Si", BM32_CALIBRATION.to_dict()))
    tables = [grain_spot_table([("Si", U[i % 2], STRAIN)], frame=i, rng=i) for i in range(4)]
    tables.append(grain_spot_table([("GaN", U[0], None)], frame=4, rng=4))  # GaN spots: no Si grain
    results = [indexer.index(t) for t in tables]
    assert [len(r.grains) for r in results] == [1, 1, 1, 1, 0]

    publisher = SpotPublisher("127.0.0.1:0")
    settings = DashboardSettings(port=0, stream=publisher.address, push_interval=0.2, latest_interval=0.5)
    with DashboardServer(settings, catalog_settings=module_catalog.settings) as server:
        page = browser_context.new_page()
        page_errors: list[str] = []
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        page.goto(server.url)
        assert publisher.wait_for_subscribers(1, 30), "the dashboard did not subscribe to the stream"
        writer = make_analysis_writer(module_catalog, max_delay_s=0.1)
        composer = AnalysisRunComposer([publisher, writer], RAW, {"method": "fit"},
                                       indexing=resolved.metadata())
        for i, table in enumerate(tables):
            composer.frame(i, table)
            composer.indexed(i, results[i])
        composer.frame(5, tables[0].assign(frame=5))
        composer.indexed(5, None, status="not_indexed", reason="dropped")  # on no grain map
        composer.stop("success")
        writer.close()
        uid = composer.uid
        page.wait_for_function("() => document.querySelector('#run-title').textContent"
                               f".includes('{uid[:8]}')", timeout=WAIT_MS)
        options = page.eval_on_selector_all("#map-value option", "os => os.map(o => o.value)")
        assert {"orientation", "misorientation", "strain_xx", "matched_fraction"} <= set(options)

        # strain: the indexer's values in 1e-3 on a scale centred on 0; no grain and not indexed: blank
        shown = _show(page, "strain_xx", "5 / 6 frames indexed")
        heat = shown["traces"][0]
        expected = [1e3 * r.grains[0].strain[0, 0] for r in results[:4]]
        assert heat["type"] == "heatmap"
        assert heat["z"][0] == pytest.approx(expected[:3], abs=1e-9) and heat["z"][1][0] == pytest.approx(
            expected[3], abs=1e-9)
        assert heat["z"][1][1:] == [None, None]
        assert heat["zmin"] == -heat["zmax"] == pytest.approx(-max(abs(v) for v in expected))

        # misorientation to the run's first grain: frames 0 and 2 are one grain, 1 and 3 the other
        heat = _show(page, "misorientation", "5 / 6 frames indexed")["traces"][0]
        far = misorientation_deg(results[1].grains[0].U, results[0].grains[0].U, indexer.rotations)
        assert heat["z"][0][0] == 0 and heat["z"][0][2] < 0.01
        assert heat["z"][0][1] == pytest.approx(far, abs=1e-6) and far > 1

        # orientation: IPF-z colours, black without a grain, transparent where not indexed; the key
        shown = _show(page, "orientation", "5 / 6 frames indexed")
        image = shown["traces"][0]
        assert image["type"] == "image"
        sector = ipf_sector("Si")
        for i, (r, c) in enumerate([(0, 0), (0, 1), (0, 2), (1, 0)]):
            expected = ipf_colors(results[i].grains[0].U, sector)
            assert np.allclose(np.array(image["z"][r][c][:3]) / 255, expected, atol=1e-6)
            assert image["z"][r][c][3] == 1
        assert image["z"][1][1] == [0, 0, 0, 1] and image["z"][1][2][3] == 0
        assert shown["images"] == 1 and {"[001]", "[101]", "[111]", "Si: IPF-z"} <= set(shown["notes"])
        shot = tmp_path / "grains.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000
        if os.environ.get("LAUE_LIVE_UPDATE_SCREENSHOTS"):
            shutil.copyfile(shot, REPO / "docs" / "images" / "dashboard_grains.png")
        assert not page_errors, page_errors

        # the page asks the server again (a reload): the same maps, built from the run held live
        page.reload()
        page.wait_for_function("() => document.querySelector('#run-title').textContent"
                               f".includes('{uid[:8]}')", timeout=WAIT_MS)
        again = _show(page, "orientation", "5 / 6 frames indexed")
        assert again["traces"][0]["z"] == image["z"]
        page.close()

        # read back from Tiled as a past run: the maps the live stream gave
        live = server.state.get(uid).grains.payload()
        past = server.reader.run(uid)["grains"]
    assert past["frames"] == live["frames"] == [0, 1, 2, 3, 4] and past["materials"] == ["Si"]
    assert past["rgb"][4] is None and np.allclose(past["rgb"][:4], live["rgb"][:4], atol=1e-9)
    for name, values in live["values"].items():
        assert np.allclose(np.array(past["values"][name], float), np.array(values, float), equal_nan=True,
                           atol=1e-9), name
    publisher.close()
