"""Reading the field's detector files: frames (fabio, h5py, numpy), stacks, masks, darks, flats.

No science here and no ecosystem imports: these functions turn file names into numpy arrays, with
one clear :class:`laue_live.FrameFileError` line for a missing, unknown or truncated file.
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

__all__ = [
    "FRAME_SUFFIXES",
    "HDF5_SUFFIXES",
    "FrameSource",
    "frame_sources",
    "iter_frames",
    "read_frame",
    "read_image",
    "read_mask",
    "split_dataset_path",
]
