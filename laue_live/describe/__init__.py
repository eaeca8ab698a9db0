"""Frame-level description: the choice between the exact fit, the spot CNN and the double-spot model.

The top of the science (above :mod:`laue_live.pipeline`, :mod:`laue_live.doubles`,
:mod:`laue_live.cnn` and :mod:`laue_live.spots`): frames -> spot tables on the CPU. Frame analysis
(:func:`describe_frames`) receives its steps as plain callables (:class:`Describer`,
:class:`DoublesStep`); :func:`analyze_frames` and :func:`characterize` pick them by name.
"""

from laue_live.describe._characterize import METHODS, characterize, check_method, choose_method
from laue_live.describe._frames import analyze_frame, analyze_frames, describe_frames
from laue_live.describe._steps import Describer, DoublesStep, cnn_describer, doubles_step

__all__ = [
    "METHODS",
    "Describer",
    "DoublesStep",
    "analyze_frame",
    "analyze_frames",
    "characterize",
    "check_method",
    "choose_method",
    "cnn_describer",
    "describe_frames",
    "doubles_step",
]
