"""Laue geometry: calibration, pixels <-> scattering angles, crystal lattices, strain, the forward model.

Plain numpy. Everything that turns a crystal orientation into detector pixels, or a pixel into
``(2theta, chi)``, lives here, below the simulator (:mod:`laue_live.sim`, which renders frames from it)
and the indexer, so that the live service can use the geometry without the simulator.

Conventions are LaueTools': ``Calibration`` holds ``dd, xcen, ycen, xbet, xgam`` as a ``.det`` file
writes them (X = column, Y = row, 1-based); spot positions in the project are 0-based ``(row, col)``.
"""

from laue_live.geometry._calibration import BM32_CALIBRATION, Calibration, read_det
from laue_live.geometry._cif import read_cif
from laue_live.geometry._detectors import DETECTORS, Detector, get_detector, nominal_calibration
from laue_live.geometry._laue import SPOT_LIST_COLUMNS, bm32_spectrum, simulate_spots
from laue_live.geometry._materials import (
    ALLOWED_F2_FRACTION,
    MATERIALS,
    Material,
    get_material,
    reciprocal_basis,
)
from laue_live.geometry._projection import (
    HC_KEV_ANGSTROM,
    detector_pixels,
    kf_unit_vectors,
    pixel_to_angles,
    pixel_to_kf,
    project_to_detector,
    random_rotation,
    rotation_matrix,
)
from laue_live.geometry._strain import decompose_ub, deviatoric, strained_ub

__all__ = [
    "BM32_CALIBRATION",
    "Calibration",
    "read_det",
    "DETECTORS",
    "Detector",
    "get_detector",
    "nominal_calibration",
    "read_cif",
    "ALLOWED_F2_FRACTION",
    "MATERIALS",
    "Material",
    "get_material",
    "reciprocal_basis",
    "HC_KEV_ANGSTROM",
    "detector_pixels",
    "kf_unit_vectors",
    "pixel_to_angles",
    "pixel_to_kf",
    "project_to_detector",
    "random_rotation",
    "rotation_matrix",
    "SPOT_LIST_COLUMNS",
    "bm32_spectrum",
    "simulate_spots",
    "strained_ub",
    "decompose_ub",
    "deviatoric",
]
