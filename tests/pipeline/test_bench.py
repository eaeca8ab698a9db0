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
    assert "| batch-1 latency fit/dense" in res.output and "vendor peak numbers" in res.output

    # sustained rows: a stream of frames with the pipeline's batching (1 frame per batch on the CPU)
    for key in ("fit/dense", "cnn/dense"):
        s = data["sustained"][key]
        assert s["batch_frames"] == 1 and s["n"] >= 2
        assert s["frames_per_s"] > 0 and s["spots_per_s"] > 0 and s["p99_ms"] >= s["p50_ms"] > 0
        assert s["spots_per_frame"] == pytest.approx(data["end_to_end"][key]["spots_per_frame"])
    assert "| sustained cnn/dense" in res.output
    # the batched fit on many cutouts
    fit = data["fit_throughput"]["float64"]
    assert fit["n"] == 300 and fit["spots_per_s"] > 0 and fit["converged"] > 0.9

    # the device's ceilings, measured on this device (the CPU: no host -> device copy)
    dev = data["device_ceilings"]
    assert dev["measured"] is True and dev["device"] == "cpu"
    rates = dev["rates"]
    assert rates["errors"] == {}
    assert rates["h2d_bytes_per_s"] is None and rates["mem_bytes_per_s"] > 1e8
    assert rates["matmul_flops"]["fp64"] > 1e8 and rates["cnn_flops"] > 1e8
    assert dev["bm32"]["pcie_ms"] is None and dev["bm32"]["flops_cnn_ms"] > 0
    assert dev["bm32"]["cnn_frames_per_s_ceiling"] > 0

    # the targets: GPU targets not measured on a CPU run, CPU targets not for 768 px frames
    targets = {t["id"]: t for t in data["targets"]}
    assert targets["bm32_sustained_cnn"]["status"] == "not measured: no GPU in this run"
    assert targets["bm32_sustained_cnn"]["measured"] == data["sustained"]["cnn/dense"]["frames_per_s"]
    assert targets["fit_spots_per_s"]["status"] == "not measured: no GPU in this run"
    assert targets["cpu_fit_ms"]["status"].startswith("not applicable: frames are 768 x 768")
    assert targets["service_frames_lost_cnn"]["status"].startswith("not measured")
    assert {t["status"].split(":")[0] for t in data["targets"]} <= {"met", "NOT met", "not measured",
                                                                   "not applicable"}
    assert "| target (issue 8)" in res.output
