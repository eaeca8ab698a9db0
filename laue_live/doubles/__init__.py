"""Overlapping and double spots: described as two components instead of being discarded.

Science only (numpy / torch / pandas). See ``docs/doubles.md``.
"""

from laue_live.doubles._fit import (
    PARAM_NAMES,
    TwoGaussianFit,
    fit_one_gaussian,
    fit_two_gaussians,
    gaussian_model,
)
from laue_live.doubles._synth import TRUTH_COLUMNS, RealSpotBank, make_doubles

__all__ = [
    "PARAM_NAMES",
    "TwoGaussianFit",
    "fit_one_gaussian",
    "fit_two_gaussians",
    "gaussian_model",
    "TRUTH_COLUMNS",
    "RealSpotBank",
    "make_doubles",
]
