"""The end-to-end benchmark behind ``laue-live bench``: every stage, the sinks, and the baselines.

It drives the simulator, the pipeline, the catalog and the 0MQ publisher together, so it lives
outside the science subpackages (which import none of those).
"""

from laue_live.bench._pipeline_bench import (
    H100,
    PAPER_TABLE5_MS,
    BenchConfig,
    format_report,
    run_benchmark,
    write_json,
)

__all__ = ["BenchConfig", "H100", "PAPER_TABLE5_MS", "format_report", "run_benchmark", "write_json"]
