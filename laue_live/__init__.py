"""laue-live: live characterization of Laue microdiffraction spots.

The science API (plain numpy / torch, no bluesky, tiled or zmq) and the error classes are
re-exported here; the ecosystem adapters live in :mod:`laue_live.callbacks`,
:mod:`laue_live.catalog`, :mod:`laue_live.stream` and :mod:`laue_live.service`, the simulator in
:mod:`laue_live.sim`.

The error classes are imported at once (they need nothing); every other name is imported on first
use, so that ``import laue_live`` stays cheap and a command-line call pays only for what it uses.
"""

from __future__ import annotations

import importlib

from laue_live import _errors
from laue_live._errors import *  # noqa: F403  (the error classes, listed in laue_live._errors.__all__)

__version__ = "0.1.0"

# module -> the public names it defines, imported on first access
_LAZY: dict[str, tuple[str, ...]] = {
    "laue_live._schema": ("SCHEMA_VERSION", "SPOT_COLUMNS", "FRAME_COLUMNS", "empty_spot_table",
                          "conform_spot_table", "spot_arrow_schema"),
    "laue_live._rules": ("pos_star", "pos_from_star", "area_star", "area_from_star", "sim_from_sim0",
                         "sim0_from_fit", "is_good_spot"),
    "laue_live.spots": ("find_peaks", "extract_cutouts", "validate_frame", "fit_gaussians",
                        "write_lauetools_dat", "read_lauetools_dat"),
    "laue_live.describe": ("characterize", "analyze_frame", "analyze_frames"),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}

__all__ = ["__version__", *_errors.__all__, *_MODULE_OF]


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'laue_live' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
