"""The end-to-end benchmark behind ``laue-live bench``: every stage, the sinks, and the baselines.

It drives the simulator, the pipeline, the catalog and the 0MQ publisher together, so it lives
outside the science subpackages (which import none of those).
"""

from laue_live.bench._device import H100, measure_device, work_ceilings
from laue_live.bench._pipeline_bench import PAPER_TABLE5_MS, BenchConfig, run_benchmark
from laue_live.bench._report import format_report, write_json
from laue_live.bench._service import measure_service
from laue_live.bench._targets import evaluate_targets

__all__ = [
    "BenchConfig",
    "H100",
    "PAPER_TABLE5_MS",
    "evaluate_targets",
    "format_report",
    "measure_device",
    "measure_service",
    "run_benchmark",
    "work_ceilings",
    "write_json",
]
