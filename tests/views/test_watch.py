"""`laue-live watch` prints one line per frame and warns on poor frames, from a real 0MQ stream."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from laue_live import SPOT_COLUMNS
from laue_live.cli import app
from laue_live.stream import SpotPublisher


def _table(frame: int, n: int, n_good: int, sim: float) -> pd.DataFrame:
    t = {c.name: np.zeros(n, dtype=c.dtype) for c in SPOT_COLUMNS}
    t["frame"][:] = frame
    t["good"][:n_good] = True
    t["sim"][:] = sim
    return pd.DataFrame(t)


def test_watch_prints_frames_and_warnings():
    frames = [(0, 20, 12, 0.8), (1, 25, 15, 0.7), (212, 10, 3, 0.12)]
    with SpotPublisher() as pub:
        def feed():
            assert pub.wait_for_subscribers(1, 30)
            run = {"uid": "analysis-1", "raw_uid": "raw-1", "shape": [1, 3], "method": "fit"}
            for frame, n, good, sim in frames:
                pub.publish_table(_table(frame, n, good, sim), frame=frame, run=run,
                                  summary={"n_spots": n, "n_good": good, "mean_sim": sim, "failed": False})

        thread = threading.Thread(target=feed, daemon=True)
        thread.start()
        result = CliRunner().invoke(app, ["watch", pub.address, "--frames", "3", "--idle-exit", "30",
                                          "--min-good", "5"])
        thread.join(30)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("== analysis run analysis") for line in lines)
    first = next(line for line in lines if line.startswith("frame      0:"))
    assert "12 good /    20 spots, mean Sim 0.80" in first
    assert "WARNING frame 212: 3 good spots, mean Sim 0.12" in lines
    assert lines[-1] == "3 frames, 1 warnings, 0 missed, 0 rejected messages"


def test_watch_writes_the_live_map_png(tmp_path):
    """Fed by the analysis documents on the stream, watch --map-png writes the raster map."""
    from laue_live.analysis import AnalysisRunComposer

    png = tmp_path / "map.png"
    raw = {"uid": "raw-2", "shape": [2, 2], "time": 0.0}
    with SpotPublisher() as pub:
        def feed():
            assert pub.wait_for_subscribers(1, 30)
            composer = AnalysisRunComposer([pub], raw, {"method": "fit", "model": {"name": "fit"}})
            for i in range(4):
                composer.frame(i, _table(i, 8, 2 + i, 0.7))
            composer.stop("success")

        thread = threading.Thread(target=feed, daemon=True)
        thread.start()
        result = CliRunner().invoke(app, ["watch", pub.address, "--runs", "1", "--idle-exit", "30",
                                          "--map-png", str(png), "--png-every", "2"])
        thread.join(30)
    assert result.exit_code == 0, result.output
    assert f"map written to {png}" in result.output
    assert "ended: success (4 frames analysed, 0 failed)" in result.output
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
