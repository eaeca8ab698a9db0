"""`laue-live serve --dashboard`: the dashboard runs beside the service, follows its runs and its health."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import psutil
import pytest
from bluesky import RunEngine
from bluesky.plans import grid_scan
from ophyd.sim import motor1, motor2

from laue_live.stream import DocumentPublisher, SafeProxy
from laue_live.testing import SHAPE, make_inline_detector, n_spots, read_line, synthetic_frame

WAIT = 120.0  # seconds: bound on the slowest wait (the service imports torch and tiled)


def _until(ws, want, what: str):
    """The first websocket message for which ``want(message)`` holds (each recv bounded)."""
    while True:
        try:
            message = json.loads(ws.recv(timeout=WAIT))
        except TimeoutError:
            raise AssertionError(f"no {what} within {WAIT} s") from None
        if want(message):
            return message


@pytest.mark.slow
def test_serve_dashboard_follows_the_services_runs_and_health(tmp_path):
    from websockets.sync.client import connect

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAUE_LIVE_", "TILED_"))}
    with SafeProxy() as proxy:
        proxy.start_in_thread()
        cmd = [sys.executable, "-c", "from laue_live.cli import main; main()", "serve", "--input",
               proxy.out_address, "--publish", "127.0.0.1:0", "--method", "fit", "--no-tiled", "--state-dir",
               str(tmp_path / "state"), "--status-interval", "0.5", "--drain-timeout", "30", "--dashboard",
               "--dashboard-bind", "127.0.0.1:0"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            read_line(proc, "spot tables on", WAIT)
            url = read_line(proc, "dashboard at", WAIT).split("dashboard at ")[1].strip()
            assert url.startswith("http://127.0.0.1:")
            with connect(url.replace("http://", "ws://") + "ws", open_timeout=WAIT) as ws:
                _until(ws, lambda m: m["type"] == "health" and m["status"].get("state") == "idle",
                       "service status")
                publisher = DocumentPublisher(proxy.in_address)
                assert publisher.wait_for_subscribers(1, WAIT)
                RE = RunEngine({})
                RE.subscribe(publisher)
                RE(grid_scan([make_inline_detector("laue", synthetic_frame, SHAPE)], motor1, 0, 1, 2,
                             motor2, 0, 1, 3))
                publisher.close()
                seen: dict[int, int] = {}

                def frames(message) -> bool:
                    if message["type"] == "frames":
                        seen.update(zip(message["frames"], message["values"]["n_spots"], strict=True))
                    return len(seen) == 6

                _until(ws, frames, "6 analysed frames")
                assert seen == {i: n_spots(i) for i in range(6)}
                def counted(m) -> bool:
                    return m["type"] == "health" and m["status"].get("frames_analysed") == 6

                health = _until(ws, counted, "the service's count of 6 frames")
                assert health["status"]["frames_acquired"] == 6 and health["status"]["frames_failed"] == 0
                assert health["status"]["sinks"]["zmq"]["subscribers"] >= 1
                assert health["status"]["sinks"]["tiled"] == {"state": "off"}
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err[-2000:]
    # the dashboard went with the service
    with pytest.raises(httpx.TransportError):
        httpx.get(url, timeout=5)


_PARENT = """
import sys
from laue_live.dashboard import DashboardProcess
dash = DashboardProcess(["--no-live", "--no-tiled", "--port", "0"], sys.argv[1])
print(dash.start(), dash.pid, flush=True)
sys.stdin.read()  # until the test kills this process
"""


@pytest.mark.slow
def test_dashboard_child_stops_when_its_parent_is_killed(tmp_path):
    # `serve --dashboard` SIGKILLed cannot stop its dashboard: the child must notice on its own.
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(tmp_path / "dash.log")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url, pid = read_line(parent, "http", WAIT).split()
        child = psutil.Process(int(pid))
        assert httpx.get(url, timeout=10).status_code in (200, 401)
        parent.send_signal(signal.SIGKILL)
        parent.wait(WAIT)
        child.wait(timeout=30)  # the child polls its parent every second
    finally:
        parent.kill()
    assert not psutil.pid_exists(int(pid)) or psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE
