"""Reading the field's detector files: frames (fabio, h5py, numpy), stacks, masks, darks, flats.

No science here and no ecosystem imports: these functions turn file names into numpy arrays and the
objects the analysis takes (:func:`load_corrections`, :func:`load_calibration`), with one clear
:class:`laue_live._errors.FrameFileError` line for a missing, unknown or truncated file. Layer:
above ``geometry`` and ``spots`` (it builds their objects), below everything that reads files.
"""

from laue_live.io._frames import (
    FRAME_SUFFIXES,
    HDF5_SUFFIXES,
    FrameSource,
    frame_sources,
    iter_frames,
    read_frame,
    split_dataset_path,
)
from laue_live.io._masks import read_image, read_mask
from laue_live.io._setup import load_calibration, load_corrections, parse_beamstop

__all__ = [
    "FRAME_SUFFIXES",
    "HDF5_SUFFIXES",
    "FrameSource",
    "frame_sources",
    "iter_frames",
    "load_calibration",
    "load_corrections",
    "parse_beamstop",
    "read_frame",
    "read_image",
    "read_mask",
    "split_dataset_path",
]
