"""Analysis runs: frames in, an event_model analysis run (``frames`` + ``spots`` streams) out.

Shared by the live callback (:mod:`laue_live.callbacks`), reprocessing from Tiled
(:func:`laue_live.catalog.reprocess_run`) and the standalone service: :class:`FrameAnalyzer`
(frames -> spot tables), :class:`AnalysisWorker` (bounded queue + worker thread, documented
queue-full policy), :class:`AnalysisRunComposer` (event_model documents to any number of sinks) and
the live indexing stage (:class:`IndexingStage`: spot tables -> grains on a thread of its own, set
up by :class:`IndexingSetup` from the raw run's start document and the user's :class:`IndexingConfig`).
This package knows no Tiled: the run contract it writes is :mod:`laue_live._run`, and what is done
with the documents is up to the sinks.
"""

from laue_live.analysis._analyzer import FrameAnalyzer, default_method, make_analyzer
from laue_live.analysis._composer import AnalysisRunComposer, analysis_data_keys
from laue_live.analysis._frames import (
    RESOURCE_HANDLERS,
    FrameTask,
    HDF5FrameLoader,
    NpyFrameLoader,
    loader_from_resource,
    loader_from_stream_resource,
    path_from_stream_resource,
)
from laue_live.analysis._indexing import (
    IndexerCache,
    IndexingConfig,
    IndexingSetup,
    IndexingStage,
    IndexingStats,
    ResolvedIndexing,
    resolve_indexing,
)
from laue_live.analysis._oom import OOMFallbackAnalyzer, is_out_of_memory, runs_on_cuda
from laue_live.analysis._queue import QUEUE_POLICIES, PolicyQueue
from laue_live.analysis._worker import AnalysisWorker, WorkerStats

__all__ = [
    "QUEUE_POLICIES",
    "AnalysisRunComposer",
    "AnalysisWorker",
    "WorkerStats",
    "PolicyQueue",
    "IndexerCache",
    "IndexingConfig",
    "IndexingSetup",
    "IndexingStage",
    "IndexingStats",
    "ResolvedIndexing",
    "resolve_indexing",
    "analysis_data_keys",
    "FrameAnalyzer",
    "OOMFallbackAnalyzer",
    "runs_on_cuda",
    "is_out_of_memory",
    "FrameTask",
    "HDF5FrameLoader",
    "NpyFrameLoader",
    "RESOURCE_HANDLERS",
    "default_method",
    "loader_from_resource",
    "loader_from_stream_resource",
    "make_analyzer",
    "path_from_stream_resource",
]
