"""`laue-live demo` end to end, as a user runs it: a tiny scan, a real server, then cleanup."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_end_to_end_tiny_scan(tmp_path):
    data = tmp_path / "demo-data"
    exe = Path(sys.executable).with_name("laue-live")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from laue_live.cli import main; main()"]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("LAUE_LIVE_TILED_URI", None)
    args = ["demo", "--nx", "2", "--ny", "2", "--method", "fit", "--data-dir", str(data)]
    proc = subprocess.run([*cmd, *args],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, f"demo failed:\n{out}\n{proc.stderr[-3000:]}"
    assert "4 frames analysed, 0 failed" in out
    uid = re.search(r"analysis run\s+analysis/([0-9a-f-]{36})", out).group(1)
    # the read-back query ran and printed spots of the analysis run
    assert re.search(r"-> \d+ good spots", out) and "per-frame summary (4 frames)" in out
    assert not re.search(r"-> 0 good spots", out), "a tiny Cu scan has good spots"
    assert "Traceback" not in proc.stderr and " ERROR " not in proc.stderr, proc.stderr[-3000:]
    pngs = sorted(p.name for p in (data / "pictures").glob("*.png"))
    assert pngs == [f"frame_{uid[:8]}.png", f"quality_map_{uid[:8]}.png"]
    assert all((data / "pictures" / p).stat().st_size > 10_000 for p in pngs)
    # the HDF5 detector files are where the raw run points, and the server it started is gone
    assert list((data / "detector").glob("*.h5"))
    assert "Tiled server stopped." in out and not (data / "server.json").exists()
    # the web dashboard followed the scan on 127.0.0.1 and was stopped with the rest
    assert re.search(r"dashboard at http://127\.0\.0\.1:\d+/ ", out) and "dashboard stopped." in out


@pytest.mark.slow
def test_demo_writes_into_a_catalog_server_already_running_on_its_data(tiled_server):
    """`laue-live catalog serve` on the data directory, then the demo: it uses that server, leaves it on."""
    import httpx
    from typer.testing import CliRunner

    from laue_live.cli import app

    data = tiled_server.data_dir  # the session's server runs there (its server.json)
    env = {"MPLBACKEND": "Agg", "LAUE_LIVE_TILED_URI": None, "LAUE_LIVE_DATA_DIR": None}
    r = CliRunner().invoke(app, ["demo", "--nx", "2", "--ny", "1", "--method", "fit", "--no-dashboard",
                                 "--data-dir", str(data)], env=env)
    assert r.exit_code == 0, r.output
    assert f"using the Tiled server that already runs on {data}: {tiled_server.uri}" in r.stdout
    assert "2 frames analysed, 0 failed" in r.stdout
    assert f"the Tiled server of `laue-live catalog serve` keeps running at {tiled_server.uri}" in r.stdout
    assert httpx.get(f"{tiled_server.uri}/healthz", timeout=10).status_code == 200
