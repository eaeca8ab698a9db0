"""Training and evaluation data of the networks that need the simulator or whole-frame analysis.

The only science package that imports :mod:`laue_live.sim`; nothing on the live path (spots, cnn,
doubles, pipeline, describe) imports it or this package. It sits on top of the science:

* :class:`SimulatorCutoutSource`: simulated spot cutouts with the exact fit as ground truth (a
  :class:`laue_live.cnn.CutoutSource`);
* :data:`DATASETS`, :func:`build_datasets`: the five evaluation datasets D1-D5 of the spot CNN
  (simulated frames and the real BM32 frames through the live pipeline);
* :class:`SceneStream`, :func:`train_stream`: the spot CNN's training stream (simulated scenes
  labelled by the exact fit, rendered by worker processes) and its trainer;
* ``python -m laue_live.training._doubles_evaluate``: the double-spot model's report
  (``docs/report/doubles/``), synthetic doubles and the real frames through
  :func:`laue_live.analyze_frame`.
"""

from laue_live.training._datasets import (
    DATASETS,
    DatasetSpec,
    RealFrameSource,
    SimFrameSource,
    build_dataset,
    build_datasets,
    frame_cutouts,
)
from laue_live.training._doubles_evaluate import real_frame_evaluation, synthetic_evaluation
from laue_live.training._scene_stream import STREAM_VERSION, SceneStream, render_chunk
from laue_live.training._sim_source import SimulatorCutoutSource
from laue_live.training._train_stream import SHIPPED_STREAM_CONFIG, StreamConfig, train_stream

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "RealFrameSource",
    "SimFrameSource",
    "SHIPPED_STREAM_CONFIG",
    "STREAM_VERSION",
    "SceneStream",
    "SimulatorCutoutSource",
    "StreamConfig",
    "frame_cutouts",
    "render_chunk",
    "train_stream",
    "build_dataset",
    "build_datasets",
    "real_frame_evaluation",
    "synthetic_evaluation",
]
