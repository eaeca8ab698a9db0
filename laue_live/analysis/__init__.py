"""Analysis runs: frames in, an event_model analysis run (``frames`` + ``spots`` streams) out.

Shared by the live callback (:mod:`laue_live.callbacks`), reprocessing (``laue-live reprocess``)
and the standalone service: :class:`FrameAnalyzer` (frames -> spot tables), :class:`AnalysisWorker`
(bounded queue + worker thread, documented queue-full policy) and :class:`AnalysisRunComposer`
(event_model documents to any number of sinks).
"""

from laue_live.analysis._analyzer import FrameAnalyzer, default_method, make_analyzer
from laue_live.analysis._composer import ANALYSIS_KIND, RAW_KEYS_COPIED, AnalysisRunComposer
from laue_live.analysis._frames import (
    RESOURCE_HANDLERS,
    FrameTask,
    HDF5FrameLoader,
    NpyFrameLoader,
    TiledFrameLoader,
    find_image_field,
    loader_from_resource,
    loader_from_stream_resource,
    path_from_stream_resource,
    scan_axes,
)
from laue_live.analysis._oom import OOMFallbackAnalyzer, is_out_of_memory, runs_on_cuda
from laue_live.analysis._reprocess import (
    ReprocessResult,
    find_analysis_runs,
    reprocess_run,
    resolve_raw_run,
    run_finished,
)
from laue_live.analysis._resume import ResumeSink, read_stream_table, written_frames
from laue_live.analysis._worker import QUEUE_POLICIES, AnalysisWorker, WorkerStats

__all__ = [
    "ANALYSIS_KIND",
    "RAW_KEYS_COPIED",
    "QUEUE_POLICIES",
    "AnalysisRunComposer",
    "AnalysisWorker",
    "WorkerStats",
    "ReprocessResult",
    "ResumeSink",
    "find_analysis_runs",
    "read_stream_table",
    "reprocess_run",
    "run_finished",
    "resolve_raw_run",
    "written_frames",
    "FrameAnalyzer",
    "OOMFallbackAnalyzer",
    "runs_on_cuda",
    "is_out_of_memory",
    "FrameTask",
    "HDF5FrameLoader",
    "NpyFrameLoader",
    "TiledFrameLoader",
    "RESOURCE_HANDLERS",
    "default_method",
    "find_image_field",
    "loader_from_resource",
    "loader_from_stream_resource",
    "make_analyzer",
    "path_from_stream_resource",
    "scan_axes",
]
