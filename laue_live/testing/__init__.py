"""Small, fast test inputs shared by laue-live's tests and by anyone testing code built on it.

The physical simulator (:mod:`laue_live.sim`) renders realistic full frames; these are tiny frames
whose spot count is known exactly, so that a test of the live path can check row counts, and spot
tables of known grains (:func:`grain_spot_table`) for the indexing stage.
"""

from laue_live.testing._detector import make_hdf5_detector, make_inline_detector
from laue_live.testing._frames import SHAPE, SPOT_SITES, n_spots, synthetic_frame
from laue_live.testing._grains import grain_spot_table
from laue_live.testing._process import read_line

__all__ = ["SHAPE", "SPOT_SITES", "make_hdf5_detector", "make_inline_detector", "n_spots", "read_line",
           "synthetic_frame", "grain_spot_table"]
