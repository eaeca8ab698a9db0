"""The science core: peak search, cutouts, exact Gaussian fit, the fit's descriptors, spot tables.

numpy / scipy / pandas (torch only when the fit is asked to run on it); no bluesky, tiled or zmq,
and nothing above it: the choice between the fit, the CNN and the double-spot model is made in
:mod:`laue_live.describe`. The paper's rules are in :mod:`laue_live._rules`, the conventions of the
spot table in :mod:`laue_live._schema` (0-based ``(row, col)``, pixel centres at integers).
"""

from laue_live.spots._corrections import FrameCorrections, auto_mask, correct_frame
from laue_live.spots._cutouts import check_peaks, cutout_edge_mask, cutout_pixel_mask, extract_cutouts
from laue_live.spots._fit import GaussFit, fit_gaussians, gaussian_model, moment_start
from laue_live.spots._fit_descriptors import (
    DESCRIPTOR_COLUMNS,
    FLAG_COLUMNS,
    check_cutouts,
    descriptor_table,
    fit_columns,
    fit_descriptors,
)
from laue_live.spots._lauetools import read_lauetools_dat, write_lauetools_cor, write_lauetools_dat
from laue_live.spots._merge import SAME_SPOT_RADIUS, merge_same_spot_rows, off_detector_rows
from laue_live.spots._peaks import (
    DEFAULT_PEAK_PARAMS,
    PEAK_PARAM_HELP,
    check_peak_params,
    estimate_background,
    find_peaks,
)
from laue_live.spots._prepare import PreparedFrame, prepare_frame
from laue_live.spots._table import spot_angles, spot_table_from_descriptors
from laue_live.spots._validate import validate_frame

__all__ = [
    "DEFAULT_PEAK_PARAMS",
    "DESCRIPTOR_COLUMNS",
    "FLAG_COLUMNS",
    "FrameCorrections",
    "GaussFit",
    "PEAK_PARAM_HELP",
    "PreparedFrame",
    "SAME_SPOT_RADIUS",
    "auto_mask",
    "check_cutouts",
    "check_peak_params",
    "check_peaks",
    "correct_frame",
    "cutout_edge_mask",
    "cutout_pixel_mask",
    "descriptor_table",
    "estimate_background",
    "extract_cutouts",
    "find_peaks",
    "fit_columns",
    "fit_descriptors",
    "fit_gaussians",
    "gaussian_model",
    "merge_same_spot_rows",
    "moment_start",
    "off_detector_rows",
    "prepare_frame",
    "read_lauetools_dat",
    "spot_angles",
    "spot_table_from_descriptors",
    "validate_frame",
    "write_lauetools_cor",
    "write_lauetools_dat",
]
