"""Pixel masks, dark frames and flat fields from files.

Mask files: ``.npy``, any image fabio reads (``.tif``, ``.edf``, pyFAI's and Fit2D's ``.msk``,
...) and NeXus ``pixel_mask`` datasets (``file.nxs::/entry/instrument/detector/pixel_mask``, or
found by that name). Convention (pyFAI's, NeXus'): a non-zero value marks a pixel not to use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from laue_live._errors import FrameFileError
from laue_live.io._frames import HDF5_SUFFIXES, _find_dataset, _h5py, read_frame, split_dataset_path

__all__ = ["read_mask", "read_image"]

_PIXEL_MASK_NAMES = ("/entry/instrument/detector/pixel_mask", "/entry/detector/pixel_mask",
                     "/entry/instrument/detector/detectorSpecific/pixel_mask")


def read_image(path: str | Path) -> np.ndarray:
    """Read a dark frame or a flat field (any frame file, first frame of a stack), as float32."""
    return read_frame(path).astype(np.float32)


def read_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a pixel mask: True where a pixel must not be used.

    Parameters
    ----------
    path
        ``.npy``, an image file (``.tif``, ``.edf``, ``.msk``, ...) or an HDF5/NeXus file (its
        ``pixel_mask``, or ``file::/dataset``).
    shape
        Expected ``(rows, cols)``; a mask of another shape is refused.

    Returns
    -------
    numpy.ndarray
        bool, 2D.

    Raises
    ------
    FrameFileError
        Unreadable file, not 2D, or of the wrong shape.
    """
    file, dataset = split_dataset_path(path)
    if file.suffix.lower() in HDF5_SUFFIXES and dataset is None and file.is_file():
        try:
            with _h5py().File(file, "r") as f:
                for name in _PIXEL_MASK_NAMES:
                    if name in f:
                        dataset = name
                        break
                else:
                    named = [n for n in _all_names(f) if n.endswith("pixel_mask")]
                    dataset = "/" + named[0] if named else _find_dataset(f, file, None).name
        except OSError as exc:
            raise FrameFileError(f"cannot read mask {file}: {exc}") from None
        path = f"{file}::{dataset}"
    m = read_frame(path)
    mask = np.asarray(m) != 0
    if shape is not None and mask.shape != tuple(shape):
        raise FrameFileError(f"mask {file} has shape {mask.shape} but the frames are {tuple(shape)}")
    return mask


def _all_names(f) -> list[str]:
    names: list[str] = []
    f.visit(names.append)
    return names
