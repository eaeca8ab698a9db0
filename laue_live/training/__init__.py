"""Training and evaluation data of the networks that need the simulator or whole-frame analysis.

The only science package that imports :mod:`laue_live.sim`; nothing on the live path (spots, cnn,
doubles, pipeline, describe) imports it or this package. It sits on top of the science:

* :class:`SimulatorCutoutSource`: simulated spot cutouts with the exact fit as ground truth (a
  :class:`laue_live.cnn.CutoutSource`);
* :data:`DATASETS`, :func:`build_datasets`: the five evaluation datasets D1-D5 of the spot CNN
  (simulated frames and the real BM32 frames through the live pipeline);
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
)
from laue_live.training._doubles_evaluate import real_frame_evaluation, synthetic_evaluation
from laue_live.training._sim_source import SimulatorCutoutSource

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "RealFrameSource",
    "SimFrameSource",
    "SimulatorCutoutSource",
    "build_dataset",
    "build_datasets",
    "real_frame_evaluation",
    "synthetic_evaluation",
]
