"""``laue-live bench --quick`` runs end to end on the CPU and writes every number it prints."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner


@pytest.mark.slow
def test_bench_quick_cli_writes_json(tmp_path):
    from laue_live.cli._app import _register, app

    _register()
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(
        app,
        [
            "bench",
            "--quick",
            "--device",
            "cpu",
            "--lauetools",
            "off",
            "--frames",
            "1",
            "--spots",
            "120",
            "--repeats",
            "1",
            "--json",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["environment"]["device"] == "cpu" and data["environment"]["torch"]
    for key in ("fit/dense", "cnn/dense", "cnn_fp32/dense"):
        e2e = data["end_to_end"][key]
        assert e2e["frames_per_s"] > 0 and e2e["p99_ms"] >= e2e["p50_ms"] > 0
        assert e2e["spots_per_frame"] > 50
    assert set(data["stages"]["fit"]) >= {"peaks", "cutouts", "describe", "table"}
    assert data["paper_table5_ms_per_spot"] == {
        "cnn_gpu_rtx2080s": 0.027,
        "cnn_cpu_one_core": 0.647,
        "lauetools_fit_one_core": 2.089,
    }
    assert data["same_cutouts"]["lauetools_fit"]["measured"] is False
    ceil = data["h100_ceilings"]
    assert ceil["measured"] is False and ceil["bm32"]["pcie_ms"] > 0.1
    assert "| end to end fit/dense" in res.output and "H100: NOT MEASURED" in res.output
