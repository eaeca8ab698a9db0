"""The standalone analysis service (``laue-live serve``): how a beamline deploys laue-live.

A RunEngine publishes its documents through a 0MQ proxy; :class:`AnalysisService` subscribes
(safe codec, bounded backlog), analyses every run with frames, writes analysis runs to Tiled,
publishes spot tables, and reports its state.
"""

from laue_live.service._service import RUN_JOURNAL, AnalysisService, open_runs
from laue_live.service._settings import DEFAULT_INPUT, DEFAULT_PUBLISH, ServiceSettings

__all__ = ["AnalysisService", "ServiceSettings", "DEFAULT_INPUT", "DEFAULT_PUBLISH", "RUN_JOURNAL",
           "open_runs"]
