"""Overlapping and double spots: described as two components instead of being discarded.

Science only (numpy / torch / pandas). See ``docs/doubles.md``.

* :func:`fit_two_gaussians`: exact batched two-Gaussian + background least-squares fit (torch).
* :func:`make_doubles`: synthetic doubles from real BM32 and simulated single spots, truth known.
* :class:`DoublePredictor`: the double-spot network (one or two spots, both components).
* :func:`describe_doubles`: a spot table whose double spots become two component rows.
"""

from laue_live.doubles._describe import component_descriptors, describe_doubles
from laue_live.doubles._fit import (
    PARAM_NAMES,
    TwoGaussianFit,
    fit_one_gaussian,
    fit_two_gaussians,
    gaussian_model,
)
from laue_live.doubles._network import DoubleArchitecture, DoubleNet, load_double_model, save_double_model
from laue_live.doubles._predict import (
    COMPONENT_COLUMNS,
    DoublePredictor,
    decode_outputs,
    default_double_model_path,
    get_double_predictor,
    linear_amplitudes,
)
from laue_live.doubles._synth import TRUTH_COLUMNS, RealSpotBank, make_doubles

__all__ = [
    "COMPONENT_COLUMNS",
    "DoubleArchitecture",
    "DoubleNet",
    "DoublePredictor",
    "PARAM_NAMES",
    "TRUTH_COLUMNS",
    "RealSpotBank",
    "TwoGaussianFit",
    "component_descriptors",
    "decode_outputs",
    "default_double_model_path",
    "describe_doubles",
    "fit_one_gaussian",
    "fit_two_gaussians",
    "gaussian_model",
    "get_double_predictor",
    "linear_amplitudes",
    "load_double_model",
    "make_doubles",
    "save_double_model",
]
