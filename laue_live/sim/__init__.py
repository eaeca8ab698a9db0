"""The Laue frame simulator.

Physics-based spot lists, rendered frames with ground truth, sample models for raster scans, and a
simulated ophyd detector and stage. The geometry and the forward model it renders from live in
:mod:`laue_live.geometry` (re-exported here).

Used by the tests, the demo and CNN training; the service code never imports it. The ophyd
pieces (:class:`SimLaueDetector`, :func:`make_sim_stage`) are imported lazily so that the science
part stays free of ecosystem imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from laue_live.geometry import (
    BM32_CALIBRATION,
    MATERIALS,
    Calibration,
    Material,
    bm32_spectrum,
    get_material,
    pixel_to_angles,
    project_to_detector,
    random_rotation,
    read_det,
    rotation_matrix,
    simulate_spots,
)
from laue_live.sim._cutouts import render_spot_cutouts
from laue_live.sim._figure import compare_figure, sim_histogram_figure
from laue_live.sim._render import SATURATION, RenderConfig, RenderedFrame, render_frame
from laue_live.sim._samples import BentCrystal, Grain, Polycrystal, Sample, SingleCrystal
from laue_live.sim._scenes import SceneConfig, render_spot_scenes
from laue_live.sim._shapes import SHAPE_MIX_PRESETS, SHAPES
from laue_live.sim._spot_tables import simulated_spot_table
from laue_live.sim._truth import STORED_TRUTH_COLUMNS, H5TruthWriter, conform_truth, read_ground_truth

__all__ = [
    "H5TruthWriter",
    "conform_truth",
    "compare_figure",
    "sim_histogram_figure",
    "BM32_CALIBRATION",
    "Calibration",
    "read_det",
    "MATERIALS",
    "Material",
    "get_material",
    "simulate_spots",
    "simulated_spot_table",
    "bm32_spectrum",
    "project_to_detector",
    "pixel_to_angles",
    "rotation_matrix",
    "random_rotation",
    "SHAPES",
    "SHAPE_MIX_PRESETS",
    "RenderConfig",
    "RenderedFrame",
    "render_frame",
    "SATURATION",
    "render_spot_cutouts",
    "render_spot_scenes",
    "SceneConfig",
    "Sample",
    "Grain",
    "SingleCrystal",
    "BentCrystal",
    "Polycrystal",
    "STORED_TRUTH_COLUMNS",
    "read_ground_truth",
    "SimLaueDetector",
    "make_sim_stage",
]

_LAZY = {"SimLaueDetector": "laue_live.sim._detector", "make_sim_stage": "laue_live.sim._detector"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'laue_live.sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from laue_live.sim._detector import SimLaueDetector, make_sim_stage  # noqa: F401
