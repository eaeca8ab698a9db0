"""The IPython profile's startup gives a working session: RunEngine, simulated devices, analysis, views."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, runpy, sys
ns = runpy.run_path(sys.argv[1])
RE, scan = ns["RE"], ns["raster_scan"]
RE(scan([ns["laue_detector"]], ns["stage_x"], 0, 10, 2, ns["stage_y"], 0, 10, 1))
assert ns["analysis"].wait(240), "analysis did not finish"
ns["live_map"].flush(); ns["live_frame"].flush(); ns["grain_map"].flush()
m, f, g = ns["live_map"], ns["live_frame"], ns["grain_map"]
print("RESULT " + json.dumps({
    "session": ns["laue_session"], "map_updates": m.n_updates, "map_shape": list(m.shape),
    "map_values": [None if v != v else v for v in m.data.ravel().tolist()],
    "frame_updates": f.n_updates, "frame_image": list(f.latest["image"].shape),
    "n_good": int(f.latest["summary"]["n_good"]), "title": f.ax.get_title(),
    "grain_updates": g.n_updates, "indexed": g.indexed,
    "package": sys.modules["laue_live"].__file__}))
"""


@pytest.mark.slow
def test_ipython_profile_startup_gives_a_working_session_from_any_folder(tmp_path):
    # Started from a temporary folder, not the repository root: the profile must not put profiles/
    # on sys.path, where profiles/laue_live/ would shadow the installed package.
    env = {**os.environ, "MPLBACKEND": "Agg", "LAUE_LIVE_VIEWS": "1", "LAUE_LIVE_METHOD": "fit",
           "LAUE_LIVE_DATA_DIR": str(tmp_path / "no-server")}
    for name in ("LAUE_LIVE_TILED_URI", "LAUE_LIVE_MODE", "LAUE_LIVE_DEVICES"):
        env.pop(name, None)
    startup = REPO / "profiles" / "laue_live" / "startup" / "00-laue-live.py"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(startup)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "laue-live session:" in proc.stdout
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert result["session"] == {"mode": "local", "method": "fit", "tiled": False, "devices": "sim",
                                 "views": True}
    assert result["map_updates"] == 2 and result["map_shape"] == [1, 2]
    assert all(v is not None and v > 0 for v in result["map_values"])  # n_good of each frame
    assert result["frame_updates"] == 2 and result["frame_image"] == [2018, 2016]
    assert f"{result['n_good']} good" in result["title"]
    assert result["indexed"] and result["grain_updates"] == 2  # the sim sample's run is indexed live
    assert result["package"] == str(REPO / "laue_live" / "__init__.py")


@pytest.mark.slow
def test_session_without_plots_prints_a_table_row_per_frame(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("laue_live_session_under_test",
                                                  REPO / "profiles" / "laue_live_session.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ns = module.make_session({"LAUE_LIVE_VIEWS": "0", "LAUE_LIVE_METHOD": "fit",
                              "LAUE_LIVE_DATA_DIR": str(tmp_path / "no-server")})
    assert "live_map" not in ns and ns["laue_session"]["views"] is False
    ns["RE"](ns["raster_scan"]([ns["laue_detector"]], ns["stage_x"], 0, 10, 2, ns["stage_y"], 0, 10, 1))
    assert ns["analysis"].wait(240), "analysis did not finish"
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line.startswith("| ") and not line.startswith("|  frame")]
    assert [r.split("|")[1].strip() for r in rows] == ["0", "1"]
    assert "positions in µm" in next(line for line in out if line.startswith("analysis run "))
    assert ": 2 frames, " in out[-1] and out[-1].endswith(" 0 failed")  # the totals line
