"""Laue indexing: grains' orientations and deviatoric strains from a frame's spot table.

Pure numpy/scipy science on top of :mod:`laue_live.geometry` (no bluesky, tiled or zmq, no simulator).
Build an :class:`Indexer` once per material and calibration and call :meth:`Indexer.index` per
frame (thread-safe); :func:`index_spots` is the one-call form. LaueTools ``.fit`` files are written
and read by :func:`write_fit` and :func:`read_fit`. :func:`ipf_colors` colours orientations for maps
(inverse pole figure of a sample direction, :class:`IPFSector` for the colour key);
:func:`grain_values` and :func:`orientation_colors` give the per-frame values of a scan's grains table
that every map (catalog, live views, dashboard) shows.
"""

from laue_live.indexing._fitfile import FitGrain, read_fit, write_fit
from laue_live.indexing._grainmaps import (
    GRAIN_MAP_VALUES,
    grain_map_table,
    grain_values,
    material_from_metadata,
    materials_from_indexing,
    orientation_colors,
    select_grains,
    u_matrices,
)
from laue_live.indexing._indexer import (
    GRAIN_COLUMNS,
    INTENSITY_COLUMNS,
    CandidateStats,
    Grain,
    Indexer,
    IndexerSettings,
    IndexResult,
    index_materials,
    index_spots,
)
from laue_live.indexing._ipf import (
    SAMPLE_DIRECTIONS,
    IPFSector,
    draw_ipf_key,
    ipf_colors,
    ipf_sector,
    mathtext_label,
)
from laue_live.indexing._spotfiles import SPOT_FILE_SUFFIXES, calibration_from_file_keys, read_spot_file
from laue_live.indexing._symmetry import misorientation_deg, pattern_rotations

__all__ = [
    "SPOT_FILE_SUFFIXES",
    "calibration_from_file_keys",
    "read_spot_file",
    "GRAIN_COLUMNS",
    "INTENSITY_COLUMNS",
    "CandidateStats",
    "FitGrain",
    "Grain",
    "Indexer",
    "IndexerSettings",
    "IndexResult",
    "index_materials",
    "index_spots",
    "misorientation_deg",
    "IPFSector",
    "SAMPLE_DIRECTIONS",
    "ipf_colors",
    "ipf_sector",
    "mathtext_label",
    "draw_ipf_key",
    "GRAIN_MAP_VALUES",
    "grain_values",
    "grain_map_table",
    "material_from_metadata",
    "materials_from_indexing",
    "orientation_colors",
    "select_grains",
    "u_matrices",
    "pattern_rotations",
    "read_fit",
    "write_fit",
]
