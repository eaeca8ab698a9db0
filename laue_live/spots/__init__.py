"""The science core: peak search, cutouts, exact Gaussian fit, the fit's descriptors, spot tables.

numpy / scipy / pandas (torch only when the fit is asked to run on it); no bluesky, tiled or zmq,
and nothing above it: the choice between the fit, the CNN and the double-spot model is made in
:mod:`laue_live.describe`. The paper's rules are in :mod:`laue_live._rules`, the conventions of the
spot table in :mod:`laue_live._schema` (0-based ``(row, col)``, pixel centres at integers).
"""

from laue_live.spots._cutouts import check_peaks, cutout_edge_mask, extract_cutouts
from laue_live.spots._fit import GaussFit, fit_gaussians, gaussian_model, moment_start
from laue_live.spots._fit_descriptors import (
    DESCRIPTOR_COLUMNS,
    FLAG_COLUMNS,
    check_cutouts,
    descriptor_table,
    fit_columns,
    fit_descriptors,
)
from laue_live.spots._frame import frame_peaks
from laue_live.spots._lauetools import read_lauetools_dat, write_lauetools_dat
from laue_live.spots._peaks import DEFAULT_PEAK_PARAMS, estimate_background, find_peaks
from laue_live.spots._table import spot_table_from_descriptors
from laue_live.spots._validate import validate_frame

__all__ = [
    "DEFAULT_PEAK_PARAMS",
    "DESCRIPTOR_COLUMNS",
    "FLAG_COLUMNS",
    "GaussFit",
    "check_cutouts",
    "check_peaks",
    "cutout_edge_mask",
    "descriptor_table",
    "estimate_background",
    "extract_cutouts",
    "find_peaks",
    "fit_columns",
    "fit_descriptors",
    "fit_gaussians",
    "frame_peaks",
    "gaussian_model",
    "moment_start",
    "read_lauetools_dat",
    "spot_table_from_descriptors",
    "validate_frame",
    "write_lauetools_dat",
]
