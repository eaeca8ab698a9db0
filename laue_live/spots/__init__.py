"""The science core: peak search, cutouts, exact Gaussian fit, descriptors, spot tables.

numpy / scipy / torch / pandas only (no bluesky, tiled or zmq). Conventions of the spot table are in
:mod:`laue_live._schema` (0-based ``(row, col)``, pixel centres at integers).
"""

from laue_live.spots._characterize import DESCRIPTOR_COLUMNS, characterize
from laue_live.spots._corrections import FrameCorrections, auto_mask, correct_frame
from laue_live.spots._cutouts import CUTOUT_SIZE, cutout_edge_mask, cutout_pixel_mask, extract_cutouts
from laue_live.spots._descriptors import (
    area_from_star,
    area_star,
    is_good_spot,
    pos_from_star,
    pos_star,
    sim0_from_fit,
    sim_from_sim0,
)
from laue_live.spots._fit import GaussFit, fit_gaussians, gaussian_model, moment_start
from laue_live.spots._frame import analyze_frame, analyze_frames, spot_table_from_descriptors
from laue_live.spots._lauetools import read_lauetools_dat, write_lauetools_cor, write_lauetools_dat
from laue_live.spots._peaks import (
    DEFAULT_PEAK_PARAMS,
    PEAK_PARAM_HELP,
    check_peak_params,
    estimate_background,
    find_peaks,
)
from laue_live.spots._prepare import PreparedFrame, prepare_frame
from laue_live.spots._table import SAME_SPOT_RADIUS, merge_same_spot_rows, spot_angles
from laue_live.spots._validate import validate_frame

__all__ = [
    "CUTOUT_SIZE",
    "DEFAULT_PEAK_PARAMS",
    "DESCRIPTOR_COLUMNS",
    "FrameCorrections",
    "GaussFit",
    "PEAK_PARAM_HELP",
    "PreparedFrame",
    "SAME_SPOT_RADIUS",
    "analyze_frame",
    "analyze_frames",
    "area_from_star",
    "area_star",
    "auto_mask",
    "characterize",
    "check_peak_params",
    "correct_frame",
    "cutout_edge_mask",
    "cutout_pixel_mask",
    "estimate_background",
    "extract_cutouts",
    "find_peaks",
    "fit_gaussians",
    "gaussian_model",
    "is_good_spot",
    "merge_same_spot_rows",
    "moment_start",
    "pos_from_star",
    "pos_star",
    "prepare_frame",
    "read_lauetools_dat",
    "sim0_from_fit",
    "sim_from_sim0",
    "spot_angles",
    "spot_table_from_descriptors",
    "validate_frame",
    "write_lauetools_cor",
    "write_lauetools_dat",
]
