"""Overlapping and double spots: described as two components instead of being discarded.

Science only (numpy / torch / pandas), above :mod:`laue_live.cnn` (whose trunk it shares) and
:mod:`laue_live.spots`. See ``docs/doubles.md``.

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
from laue_live.doubles._metrics import match_errors
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
from laue_live.doubles._train import DoubleTrainConfig, split_bank, train_double_net

__all__ = [
    "COMPONENT_COLUMNS",
    "DoubleArchitecture",
    "DoubleTrainConfig",
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
    "match_errors",
    "save_double_model",
    "split_bank",
    "train_double_net",
]
