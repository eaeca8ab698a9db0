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
    pngs = sorted(p.name for p in (data / "pictures").glob("*.png"))
    assert pngs == [f"frame_{uid[:8]}.png", f"quality_map_{uid[:8]}.png"]
    assert all((data / "pictures" / p).stat().st_size > 10_000 for p in pngs)
    # the HDF5 detector files are where the raw run points, and the server it started is gone
    assert list((data / "detector").glob("*.h5"))
    assert "Tiled server stopped." in out and not (data / "server.json").exists()
    # the web dashboard followed the scan on 127.0.0.1 and was stopped with the rest
    assert re.search(r"dashboard at http://127\.0\.0\.1:\d+/ ", out) and "dashboard stopped." in out
