"""``laue-live bench --quick`` runs end to end on the CPU and writes every number it prints."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner


@pytest.mark.slow
def test_bench_quick_cli_writes_json(tmp_path):
    from laue_live.cli import app

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

    # a GPU run's result, with the failures it may record, still prints (the CUDA paths cannot run here)
    from laue_live.bench import evaluate_targets, format_report

    data["environment"].update(device="cuda:0", gpu="a GPU")
    data["device_ceilings"]["device"] = "cuda:0"
    data["device_ceilings"]["rates"].update(
        h2d_bytes_per_s=None, h2d_frame_ms=None, threads=None, matmul_flops={"fp16": 7e14},
        errors={"h2d": "RuntimeError: no pinned memory"})
    data["sustained"]["cnn/dense@batch4"] = {"error": "OutOfMemoryError: CUDA out of memory"}
    data["fit_throughput"]["float32"] = {"error": "OutOfMemoryError: CUDA out of memory"}
    data["sinks"] = {"cnn": {"error": "TimeoutError: not confirmed in Tiled"}}
    data["targets"] = evaluate_targets(data)
    text = format_report(data)
    assert "| h2d | | failed: RuntimeError: no pinned memory |" in text
    assert "| sustained cnn/dense@batch4 | failed: OutOfMemoryError" in text
    assert "| cnn | failed: TimeoutError: not confirmed in Tiled |" in text
    assert "not measured: TimeoutError: not confirmed in Tiled" in text


def _gpu_result(**over):
    """A benchmark result as a CUDA run on BM32 frames would record it (figures chosen per test)."""
    res = {
        "environment": {"device": "cuda:0"},
        "config": {"frame_shape": [2018, 2016], "large_shape": [6000, 6000], "latency_batch": 4},
        "sustained": {
            "cnn/dense": {"frames_per_s": 2500.0, "p99_ms": 4.0},
            "fit/dense": {"frames_per_s": 900.0, "p99_ms": 30.0},
            "cnn/36mpx": {"error": "OutOfMemoryError: CUDA out of memory"},
            "fit/36mpx": {"frames_per_s": 150.0, "p99_ms": 200.0},
            "cnn/dense@batch4": {"frames_per_s": 1500.0, "p99_ms": 3.0},
        },
        "fit_throughput": {"float64": {"spots_per_s": 2.5e6}},
        "end_to_end": {"fit/dense": {"p50_ms": 3.0}, "cnn/dense": {"p50_ms": 2.0}},
        "sinks": {"cnn": {"analysis_and_sinks_frames_per_s": 320.0, "frames_lost": 0, "limit": "sinks"},
                  "fit": {"analysis_and_sinks_frames_per_s": 120.0, "frames_lost": 2, "limit": "analysis"}},
    }
    res.update(over)
    return res


def test_targets_verdicts_on_a_gpu_result():
    from laue_live.bench import evaluate_targets

    t = {r["id"]: r for r in evaluate_targets(_gpu_result())}
    assert t["bm32_sustained_cnn"]["status"] == "met" and t["bm32_sustained_cnn"]["measured"] == 2500.0
    assert t["bm32_sustained_fit"]["status"] == "NOT met"
    assert t["bm32_p99_cnn"]["status"] == "met" and t["bm32_p99_fit"]["status"] == "NOT met"
    assert t["large_sustained_cnn"]["status"] == "not measured: OutOfMemoryError: CUDA out of memory"
    assert t["large_sustained_fit"]["status"] == "NOT met"
    assert t["fit_spots_per_s"]["status"] == "met"
    # the small-batch rows: the latency side of the trade-off
    assert t["bm32_p99_cnn_batch4"]["status"] == "met"
    assert t["bm32_sustained_cnn_batch4"]["status"] == "NOT met"
    assert t["bm32_p99_fit_batch4"]["status"] == "not measured: this run skipped it"
    assert t["service_cnn"]["status"] == "met" and t["service_fit"]["status"] == "NOT met"
    assert t["service_frames_lost_cnn"]["status"] == "met"
    assert t["service_frames_lost_fit"]["status"] == "NOT met"
    # CPU targets do not apply to a GPU run, whatever its figures
    assert t["cpu_fit_ms"]["status"].startswith("not applicable: CPU target")
    assert t["cpu_service_limit"]["status"].startswith("not applicable: CPU target")


def test_targets_need_the_frame_sizes_they_are_stated_for():
    from laue_live.bench import evaluate_targets

    res = _gpu_result(config={"frame_shape": [768, 768], "large_shape": [1536, 1536]})
    t = {r["id"]: r for r in evaluate_targets(res)}
    assert t["bm32_sustained_cnn"]["status"].startswith("not applicable: frames are 768 x 768")
    assert t["service_cnn"]["status"].startswith("not applicable: frames are 768 x 768")
    assert t["large_sustained_fit"]["status"].startswith("not applicable: large frames are 1536 x 1536")
    # frames lost is a verdict on any frame size
    assert t["service_frames_lost_fit"]["status"] == "NOT met"


@pytest.mark.slow
def test_service_bench_finds_every_frame_in_tiled(tmp_path):
    """The benchmark's service path: AnalysisWorker -> spooled Tiled writer + 0MQ, rows counted in Tiled."""
    import numpy as np
    import pandas as pd

    from laue_live.analysis import FrameAnalyzer
    from laue_live.bench import measure_service
    from laue_live.sim import RenderConfig, render_frame

    rng = np.random.default_rng(3)
    frames = []
    for _ in range(2):
        spots = pd.DataFrame({"row": rng.uniform(0, 383, 40), "col": rng.uniform(0, 383, 40),
                              "intensity": np.exp(rng.uniform(np.log(1e-2), 0, 40))})
        frames.append(render_frame(spots, RenderConfig(), rng=rng, frame_shape=(384, 384)).frame)
    analyzer = FrameAnalyzer("fit", device="cpu", pipeline="torch")
    expected_rows = sum(len(analyzer([f])[0]) for f in frames) * 5
    out = measure_service(analyzer, frames, 10, tmp_path, worker_batch=4, timeout_s=120.0)
    assert out["rows"] == expected_rows > 0
    for mode in ("sinks_only", "analysis_and_sinks"):
        assert out[f"{mode}_synced"] is True
        assert out[f"{mode}_frames_in_tiled"] == 10 and out[f"{mode}_frames_lost"] == 0
        assert out[f"{mode}_spot_rows_in_tiled"] == expected_rows
        assert out[f"{mode}_frames_per_s"] > 0
    assert out["frames_lost"] == 0 and out["spot_rows_missing"] == 0
    assert out["worker"]["analysed"] == 10 and out["worker"]["batches"] >= 3  # batches of <= 4 frames
    assert out["worker"]["latency_p99_ms"] >= out["worker"]["latency_p50_ms"] > 0
    assert out["analysis_frames_per_s"] > 0 and out["limit"] in ("analysis", "sinks")
