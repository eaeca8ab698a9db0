"""Bluesky document callbacks: live spot analysis of every frame of a run.

``make_run_router(sinks, method=...)`` is what a RunEngine subscribes; it makes one
:class:`LaueSpotCallback` per run, which queues frames to a worker thread and emits an analysis run
(``frames`` and ``spots`` streams) to the sinks (Tiled writer, 0MQ publisher, live views).
"""

from laue_live.callbacks._callback import LaueSpotCallback
from laue_live.callbacks._router import (
    LaueRunRouter,
    LaueSpotCallbackFactory,
    laue_spot_callback_factory,
    make_run_router,
)
from laue_live.catalog import TILED_TABLE_LOCK, serialize_tiled_writes

__all__ = [
    "LaueSpotCallback",
    "LaueSpotCallbackFactory",
    "LaueRunRouter",
    "laue_spot_callback_factory",
    "make_run_router",
    "serialize_tiled_writes",
    "TILED_TABLE_LOCK",
]
