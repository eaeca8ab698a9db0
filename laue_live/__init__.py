"""laue-live: live characterization of Laue microdiffraction spots.

The science API (plain numpy / torch, no bluesky, tiled or zmq) is re-exported here; the
ecosystem adapters live in :mod:`laue_live.callbacks`, :mod:`laue_live.catalog`,
:mod:`laue_live.zmq` and :mod:`laue_live.service`, the simulator in :mod:`laue_live.sim`.

Names are imported lazily so that ``import laue_live`` stays cheap and a command-line call pays
only for what it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "SCHEMA_VERSION": "laue_live._schema",
    "SPOT_COLUMNS": "laue_live._schema",
    "FRAME_COLUMNS": "laue_live._schema",
    "empty_spot_table": "laue_live._schema",
    "conform_spot_table": "laue_live._schema",
    "spot_arrow_schema": "laue_live._schema",
    "find_peaks": "laue_live.spots",
    "extract_cutouts": "laue_live.spots",
    "characterize": "laue_live.spots",
    "analyze_frame": "laue_live.spots",
    "validate_frame": "laue_live.spots",
    "fit_gaussians": "laue_live.spots",
    "pos_star": "laue_live.spots",
    "pos_from_star": "laue_live.spots",
    "area_star": "laue_live.spots",
    "area_from_star": "laue_live.spots",
    "sim_from_sim0": "laue_live.spots",
    "is_good_spot": "laue_live.spots",
    "write_lauetools_dat": "laue_live.spots",
    "read_lauetools_dat": "laue_live.spots",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'laue_live' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from laue_live._schema import (  # noqa: F401
        FRAME_COLUMNS,
        SCHEMA_VERSION,
        SPOT_COLUMNS,
        conform_spot_table,
        empty_spot_table,
        spot_arrow_schema,
    )
    from laue_live.spots import (  # noqa: F401
        analyze_frame,
        area_from_star,
        area_star,
        characterize,
        extract_cutouts,
        find_peaks,
        fit_gaussians,
        is_good_spot,
        pos_from_star,
        pos_star,
        read_lauetools_dat,
        sim_from_sim0,
        validate_frame,
        write_lauetools_dat,
    )
