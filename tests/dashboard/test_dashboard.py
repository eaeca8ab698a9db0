"""The dashboard without a browser: geometry and values, pictures, the viewer key, coalesced updates, CLI."""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import re
import stat

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from laue_live import SettingsError
from laue_live.catalog import synthetic_analysis_documents
from laue_live.dashboard import (
    STATIC_DIR,
    DashboardServer,
    DashboardSettings,
    frame_values,
    make_viewer_key,
    map_geometry,
    render_frame,
    run_values,
)
from laue_live.stream import SpotPublisher

KEY = "0123456789abcdef0123456789abcdef"


# -- geometry and values ---------------------------------------------------------------------------
def test_scan_geometry_in_micrometres_from_the_raster_metadata():
    start = {"shape": [3, 4], "laue_live": {"scan_shape": [3, 4], "x_range": [0.0, 0.003],
                                            "y_range": [0.01, 0.0], "units": "mm", "snake": True,
                                            "x_motor": "sx", "y_motor": "sy"}}
    g = map_geometry(start)
    assert g["shape"] == (3, 4) and g["snake"] and g["unit"] == "µm" and g["known"]
    np.testing.assert_allclose(g["x"], [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(g["y"], [10.0, 5.0, 0.0])
    assert g["x_label"] == "sx (µm)" and g["y_label"] == "sy (µm)"


def test_scan_geometry_of_a_plain_grid_scan_and_of_an_unknown_raster():
    # bluesky's grid_scan records no unit: positions stay in motor units, and say so
    g = map_geometry({"shape": [2, 3], "extents": [[0, 1], [5, 7]], "motors": ["m2", "m1"],
                       "snaking": [False, True]})
    assert g["unit"] == "motor units" and g["snake"] and g["x_label"] == "m1 (motor units)"
    np.testing.assert_allclose(g["x"], [5, 6, 7])
    g = map_geometry({}, n_frames=7)
    assert g["shape"] == (1, 7) and g["unit"] == "point" and not g["known"]


def test_frame_values_and_run_values_agree():
    rng = np.random.default_rng(3)
    table = {"frame": np.full(5, 2), "intensity": rng.uniform(10, 100, 5).astype("f4"),
             "sigma_row": np.array([1, 2, 3, 4, 5], "f4"), "sigma_col": np.array([1, 2, 3, 4, 5], "f4"),
             "good": np.array([1, 1, 0, 1, 0], bool), "sim": np.linspace(0.2, 1, 5).astype("f4")}
    live = frame_values({"n_spots": 5, "n_good": 3, "mean_sim": 0.6, "seconds": 0.2, "failed": False}, table)
    assert live["good_fraction"] == 60.0 and live["median_width"] == 3.0 and live["failed"] == 0.0
    assert math.isclose(live["total_intensity"], float(table["intensity"].sum()), rel_tol=1e-6)
    failed = frame_values({"n_spots": 0, "failed": True, "seconds": 0.1})
    assert failed["failed"] == 1.0 and math.isnan(failed["n_good"]) and failed["seconds"] == 0.1
    summary = pd.DataFrame({"frame": [2, 3], "n_spots": [5, 0], "n_good": [3, 0], "mean_sim": [0.6, np.nan],
                            "seconds": [0.2, 0.1], "failed": [False, True],
                            "error": ["", "cannot read image"]})
    out = run_values(summary, pd.DataFrame(table))
    assert out["frames"] == [2, 3] and out["errors"] == {3: "cannot read image"}
    for name, value in live.items():
        assert math.isclose(out["values"][name][0], value, rel_tol=1e-6), name
    assert math.isnan(out["values"]["n_good"][1]) and out["values"]["failed"][1] == 1.0


# -- pictures ----------------------------------------------------------------------------------------
def _decode(picture) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(picture["src"].split(",", 1)[1]))))


def test_a_one_pixel_spot_survives_the_reduction_to_display_resolution():
    frame = np.full((2018, 2016), 1000, np.uint16)
    frame[1001, 1503] = 60000  # one hot pixel: a striding reduction would lose it 3 times in 4
    picture = render_frame(frame, max_px=1024)
    image = _decode(picture)
    assert picture["factor"] == 2 and image.shape == (1009, 1008)
    assert (picture["x0"], picture["y0"], picture["dx"]) == (0.5, 0.5, 2)
    # bright is black: the spot is the darkest picture pixel, where its frame pixel falls
    assert np.unravel_index(np.argmin(image), image.shape) == (500, 751)
    assert image[500, 751] == 0 and (image == 0).sum() == 1 and image.max() == 255
    crop = render_frame(frame, region=(990, 1010, 1490, 1520), max_px=1024)
    assert crop["factor"] == 1 and crop["region"] == [990, 1010, 1490, 1520] and crop["x0"] == 1490
    assert np.unravel_index(np.argmin(_decode(crop)), (20, 30)) == (11, 13)
    with pytest.raises(ValueError, match="empty region"):
        render_frame(frame, region=(5000, 5001, 0, 10))


# -- settings and the viewer key --------------------------------------------------------------------
def test_any_address_but_loopback_needs_a_viewer_key(tmp_path):
    with pytest.raises(SettingsError, match="needs a viewer key"):
        DashboardSettings(host="0.0.0.0", stream=None)
    assert not DashboardSettings(host="0.0.0.0", key=KEY, stream=None).loopback
    with pytest.raises(SettingsError) as err:
        DashboardSettings(key="short secret!")
    assert "short secret" not in str(err.value)
    path = make_viewer_key(tmp_path / "viewer.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_text().strip()) == 32
    with pytest.raises(SettingsError, match="exists already"):
        make_viewer_key(path)
    settings = DashboardSettings.from_env({"LAUE_LIVE_DASHBOARD_KEY_FILE": str(path)}, host="0.0.0.0")
    assert settings.key == path.read_text().strip() and KEY not in repr(settings)
    assert path.read_text().strip() not in repr(settings)


def test_the_viewer_key_guards_every_route_and_is_never_logged(caplog):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    caplog.set_level(logging.DEBUG)
    with DashboardServer(DashboardSettings(port=0, key=KEY, stream=None)) as server:
        base = server.url.rstrip("/")
        with httpx.Client(base_url=base, timeout=30) as anonymous:
            assert anonymous.get("/").status_code == 303
            assert anonymous.get("/").headers["location"] == "/login"
            assert anonymous.get("/api/health").status_code == 401
            assert anonymous.get("/static/vendor/plotly.min.js").status_code == 303
            assert anonymous.get("/login").status_code == 200
            refused = anonymous.post("/login", content="key=" + "x" * 32,
                                     headers={"content-type": "application/x-www-form-urlencoded"})
            assert refused.headers["location"] == "/login?refused=1" and not anonymous.cookies
        assert httpx.get(f"{base}/api/health", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        odd = {"Authorization": "Bearer é".encode()}  # non-ASCII: refused, not a server error
        assert httpx.get(f"{base}/api/health", headers=odd).status_code == 401
        with httpx.Client(base_url=base, timeout=30) as viewer:
            ok = viewer.post("/login", content=f"key={KEY}",
                             headers={"content-type": "application/x-www-form-urlencoded"})
            assert ok.headers["location"] == "/" and "laue_live_dashboard" in viewer.cookies
            assert KEY not in viewer.cookies["laue_live_dashboard"]
            page = viewer.get("/")
            assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
            assert viewer.get("/api/health").json()["stream"]["address"] is None
            cookie = f"laue_live_dashboard={viewer.cookies['laue_live_dashboard']}"
        ws_url = base.replace("http://", "ws://") + "/ws"
        with pytest.raises(InvalidStatus):
            connect(ws_url, open_timeout=30).close()
        with connect(ws_url, additional_headers={"Cookie": cookie}, open_timeout=30) as ws:
            types = [json.loads(ws.recv(timeout=30))["type"] for _ in range(2)]
            assert types == ["runs", "health"]
        with pytest.raises(InvalidStatus):  # another site's page may not use the viewer's cookie
            connect(ws_url, additional_headers={"Cookie": cookie, "Origin": "http://evil.example"},
                    open_timeout=30).close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused a login" in logged and KEY not in logged


def test_the_page_asks_nothing_of_another_origin():
    # no CDN: every script, style and request of the page is relative to the dashboard itself
    for name in ("index.html", "login.html", "dashboard.js", "dashboard.css"):
        text = (STATIC_DIR / name).read_text()
        assert not re.search(r"(src|href|url)\s*[=(]\s*['\"]?(https?:)?//", text), name
        assert "fetch(\"http" not in text and "fetch(`http" not in text, name


# -- live updates -------------------------------------------------------------------------------------
def test_live_updates_are_coalesced_and_complete():
    from websockets.sync.client import connect

    publisher = SpotPublisher("127.0.0.1:0")
    try:
        settings = DashboardSettings(port=0, stream=publisher.address, push_interval=0.5)
        with DashboardServer(settings) as server:
            assert publisher.wait_for_subscribers(1, 30)
            with connect(server.url.replace("http://", "ws://") + "ws", open_timeout=30) as ws:
                n = 60
                docs = list(synthetic_analysis_documents(
                    n, [3 + i % 4 for i in range(n)], shape=(6, 10),
                    metadata={"shape": [6, 10], "raw_scan_id": 5}))
                start = docs[0][1]
                for name, doc in docs:  # as fast as the publisher goes: far faster than 2 pushes/s
                    publisher(name, doc)
                seen: dict[int, float] = {}
                frame_messages = 0
                health = None
                while len(seen) < n:
                    message = json.loads(ws.recv(timeout=30))
                    if message["type"] == "frames" and message["uid"] == start["uid"]:
                        frame_messages += 1
                        seen.update(zip(message["frames"], message["values"]["n_spots"], strict=True))
                    elif message["type"] == "health":
                        health = message
                # every frame arrived, in a handful of updates rather than one per frame
                assert sorted(seen) == list(range(n))
                assert all(seen[i] == 3 + i % 4 for i in range(n))
                assert frame_messages <= 10, frame_messages
                while health is None or health.get("run", {}).get("frames") != n:
                    message = json.loads(ws.recv(timeout=30))
                    health = message if message["type"] == "health" else health
                assert health["stream"]["connected"] and health["stream"]["missed"] == 0
            # the page's JSON for the live run: map values and geometry, straight from memory
            run = httpx.get(f"{server.url}api/run/{start['uid']}", timeout=30).json()
            assert run["live"] and run["frames"] == list(range(n)) and run["geometry"]["shape"] == [6, 10]
            frame = httpx.get(f"{server.url}api/run/{start['uid']}/frame/7", timeout=30).json()
            assert frame["summary"]["n_spots"] == 3 + 7 % 4 == len(frame["columns"]["spot"])
            csv = httpx.get(f"{server.url}api/run/{start['uid']}/frame/7/spots.csv", timeout=30)
            assert len(csv.text.strip().splitlines()) == 1 + 3 + 7 % 4
            missing = httpx.get(f"{server.url}api/run/no-such-run", timeout=30)
            assert missing.status_code == 503 and "no catalog" in missing.json()["error"]
            for bad in ("a.b", "..%2F..%2Fraw", "x" * 100):  # only run uids reach the catalog
                assert httpx.get(f"{server.url}api/run/{bad}/frame/1", timeout=30).status_code == 404
    finally:
        publisher.close()


# -- command line -------------------------------------------------------------------------------------
def test_cli_refuses_a_public_address_without_a_key_in_one_line(tmp_path):
    from laue_live.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["dashboard", "--host", "0.0.0.0", "--no-live", "--no-tiled"], env={
        "LAUE_LIVE_DASHBOARD_KEY": "", "LAUE_LIVE_DASHBOARD_KEY_FILE": ""})
    assert r.exit_code == 2 and "needs a viewer key" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["dashboard", "--make-key", str(tmp_path / "k")])
    assert r.exit_code == 0 and (tmp_path / "k").exists()
    r = runner.invoke(app, ["dashboard", "--key-file", str(tmp_path / "missing"), "--no-tiled"])
    assert r.exit_code == 2 and "cannot read the dashboard key file" in r.output


# -- joining a run already under way ------------------------------------------------------------------
def test_a_dashboard_started_mid_run_reads_the_frames_it_missed_from_tiled(tiled_client):
    from websockets.sync.client import connect

    from laue_live.callbacks import serialize_tiled_writes
    from laue_live.catalog import make_analysis_writer

    serialize_tiled_writes()
    n = 20
    docs = list(synthetic_analysis_documents(n, [2 + i % 3 for i in range(n)], shape=(4, 5),
                                             metadata={"shape": [4, 5], "raw_scan_id": 9}))
    uid = docs[0][1]["uid"]
    halfway = next(i for i, (name, doc) in enumerate(docs) if name == "event" and doc["data"]["frame"] == 9)
    writer = make_analysis_writer(tiled_client, max_delay_s=0.05)
    publisher = SpotPublisher("127.0.0.1:0")
    try:
        for name, doc in docs[:halfway + 1]:  # frames 0-9 analysed before the dashboard starts
            writer(name, doc)
            publisher(name, doc)
        writer.flush(timeout=60)
        settings = DashboardSettings(port=0, stream=publisher.address, push_interval=0.2)
        with DashboardServer(settings, catalog_settings=tiled_client.settings) as server:
            assert publisher.wait_for_subscribers(1, 30)
            with connect(server.url.replace("http://", "ws://") + "ws", open_timeout=30) as ws:
                for name, doc in docs[halfway + 1:]:
                    writer(name, doc)
                    publisher(name, doc)
                seen: set[int] = set()
                while len(seen) < n:  # 10-19 from the stream, 0-9 read back from Tiled
                    message = json.loads(ws.recv(timeout=60))
                    if message["type"] == "frames" and message["uid"] == uid:
                        seen.update(message["frames"])
            run = httpx.get(f"{server.url}api/run/{uid}", timeout=30).json()
            assert sorted(run["frames"]) == list(range(n)) and run["start"]["raw_scan_id"] == 9
            by_frame = dict(zip(run["frames"], run["values"]["n_spots"], strict=True))
            assert by_frame == {i: 2 + i % 3 for i in range(n)}
            # the run picker lists it from Tiled, and finds it by scan id
            listed = httpx.get(f"{server.url}api/runs", params={"scan_id": 9}, timeout=30).json()
            assert [r["uid"] for r in listed["runs"]] == [uid] and listed["runs"][0]["live"]
    finally:
        writer.close()
        publisher.close()
