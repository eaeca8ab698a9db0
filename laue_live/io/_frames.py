"""Detector frame files: TIFF, MarCCD, EDF, CBF, JPEG 2000, ``.npy`` and HDF5/NeXus stacks.

Images are read by fabio (the ESRF library that knows the field's detector formats), HDF5/NeXus by
h5py (with hdf5plugin's compression filters when installed: BLISS and Eiger files use them), and
``.npy`` by numpy. Nothing is parsed by hand.

An HDF5 path names its dataset after ``::`` (``scan.h5::/entry/data/data``); without one, the
NeXus default signal (``/entry/data/data``, ``/entry/instrument/detector/data``, or the first
image-shaped dataset found) is used. A 3D dataset is a stack of frames.
"""

from __future__ import annotations

import contextlib
import glob
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laue_live._errors import FrameFileError

__all__ = ["FrameSource", "read_frame", "iter_frames", "frame_sources", "FRAME_SUFFIXES", "HDF5_SUFFIXES",
           "split_dataset_path"]

log = logging.getLogger(__name__)

#: Suffixes of single-image (or multi-image) files read by fabio.
IMAGE_SUFFIXES = (".tif", ".tiff", ".mccd", ".edf", ".cbf", ".jp2", ".j2k", ".img", ".mar3450", ".sfrm")
#: Suffixes of HDF5/NeXus files.
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5")
#: Every suffix a folder or a glob is searched for.
FRAME_SUFFIXES = IMAGE_SUFFIXES + HDF5_SUFFIXES + (".npy",)
#: Where NeXus / BLISS / area-detector files keep their frames, tried in order.
_DEFAULT_DATASETS = ("/entry/data/data", "/entry/instrument/detector/data", "/entry_0000/measurement/data")


def split_dataset_path(path: str | Path) -> tuple[Path, str | None]:
    """Split ``file.h5::/entry/data/data`` into the file and the dataset (None without ``::``)."""
    text = str(path)
    if "::" in text:
        f, ds = text.split("::", 1)
        return Path(f), (ds if ds.startswith("/") else "/" + ds)
    return Path(text), None


@contextlib.contextmanager
def _quiet_fabio():
    # fabio logs every reader it tries on a bad file at ERROR level: our one-line error says it all
    lg = logging.getLogger("fabio")
    old = lg.level
    lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        lg.setLevel(old)


def _h5py():
    import h5py  # imported on use: reading a TIFF should not pay for HDF5

    with contextlib.suppress(ImportError):
        import hdf5plugin  # noqa: F401 - registers the bitshuffle/LZ4/Blosc filters of BLISS and Eiger files
    return h5py


def _find_dataset(f, path: Path, dataset: str | None):
    h5py = _h5py()
    if dataset is not None:
        obj = f.get(dataset)
        if not isinstance(obj, h5py.Dataset):
            raise FrameFileError(f"{path}: no dataset {dataset!r} in this HDF5 file")
        return obj
    for name in _DEFAULT_DATASETS:
        obj = f.get(name)
        if isinstance(obj, h5py.Dataset) and obj.ndim in (2, 3):
            return obj
    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim in (2, 3) and min(obj.shape[-2:]) >= 32 and \
                obj.dtype.kind in "iuf":
            found.append(obj)
            return True
        return None

    f.visititems(visit)
    if not found:
        raise FrameFileError(f"{path}: no image dataset found; name one as {path}::/entry/data/data")
    return found[0]


@dataclass(frozen=True)
class FrameSource:
    """One frame in a file: a path, and for stacks the dataset and the index.

    Attributes
    ----------
    path
        The file.
    dataset
        HDF5 dataset path, or None.
    index
        Frame index within a stack, or None for a single-frame file.
    """

    path: Path
    dataset: str | None = None
    index: int | None = None

    @property
    def label(self) -> str:
        """Short name of the frame for tables and messages (``file`` or ``file[3]``)."""
        return self.path.name + ("" if self.index is None else f"[{self.index}]")

    def read(self) -> np.ndarray:
        """Read the frame (:func:`read_frame`)."""
        return read_frame(self.path if self.dataset is None else f"{self.path}::{self.dataset}",
                          index=self.index)


def read_frame(path: str | Path, index: int | None = None) -> np.ndarray:
    """Read one 2D detector frame.

    Parameters
    ----------
    path
        An image file (``.tif``, ``.mccd``, ``.edf``, ``.cbf``, ``.jp2``, ...), a ``.npy`` file or an
        HDF5/NeXus file, optionally ``file.h5::/dataset``.
    index
        Frame of a stack (a 3D dataset or a multi-frame image); default 0 for a stack.

    Returns
    -------
    numpy.ndarray
        2D array in the file's dtype (uint16 for most detectors), ADU.

    Raises
    ------
    FrameFileError
        Missing file, unknown or corrupt format, truncated data, no such dataset or frame, not 2D.
    """
    file, dataset = split_dataset_path(path)
    if not file.is_file():
        raise FrameFileError(f"no such frame file: {file}")
    suffix = file.suffix.lower()
    try:
        if suffix in HDF5_SUFFIXES or dataset is not None:
            arr = _read_h5(file, dataset, index)
        elif suffix == ".npy":
            arr = np.load(file, allow_pickle=False, mmap_mode="r")
            if arr.ndim == 3:
                arr = arr[_check_index(file, index or 0, arr.shape[0])]
            arr = np.array(arr)
        else:
            arr = _read_image(file, index)
    except FrameFileError:
        raise
    except (OSError, ValueError, KeyError, AttributeError, EOFError, IndexError, TypeError) as exc:
        raise FrameFileError(f"cannot read {file}: {_why(exc)}") from None
    if arr.ndim != 2:
        raise FrameFileError(f"{file}: expected a 2D frame, got shape {arr.shape}")
    return arr


def _why(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "truncat" in text or "reshape" in text or "NoneType" in text:
        return "truncated or corrupt file"
    if "could not identify" in text:
        return "not a detector image format fabio knows (TIFF, MarCCD, EDF, CBF, JPEG 2000, ...)"
    return text


def _check_index(file: Path, index: int, n: int) -> int:
    if not -n <= int(index) < n:
        raise FrameFileError(f"{file}: frame index {index} out of range (the file holds {n} frame(s))")
    return int(index)


def _read_image(file: Path, index: int | None) -> np.ndarray:
    import fabio  # imported on use: fabio's import costs ~0.3 s

    with _quiet_fabio():
        img = fabio.open(str(file))
        try:
            n = int(getattr(img, "nframes", 1) or 1)
            if index is None or (n == 1 and int(index) == 0):
                data = img.data
            else:
                data = img.getframe(_check_index(file, index, n)).data
        finally:
            with contextlib.suppress(Exception):
                img.close()
    if data is None:
        raise FrameFileError(f"cannot read {file}: truncated or corrupt file")
    return np.asarray(data)


def _read_h5(file: Path, dataset: str | None, index: int | None) -> np.ndarray:
    h5py = _h5py()
    with h5py.File(file, "r") as f:
        ds = _find_dataset(f, file, dataset)
        if ds.ndim == 3:
            return ds[_check_index(file, 0 if index is None else index, ds.shape[0])]
        if index not in (None, 0):
            raise FrameFileError(f"{file}::{ds.name} holds one frame; index {index} out of range")
        return ds[()]


def _count(file: Path, dataset: str | None) -> tuple[str | None, int | None]:
    """Dataset name and number of frames of a stack file (None for a single frame)."""
    suffix = file.suffix.lower()
    if suffix in HDF5_SUFFIXES or dataset is not None:
        try:
            with _h5py().File(file, "r") as f:
                ds = _find_dataset(f, file, dataset)
                return ds.name, (ds.shape[0] if ds.ndim == 3 else None)
        except OSError as exc:
            raise FrameFileError(f"cannot read {file}: {_why(exc)}") from None
    if suffix == ".npy":
        try:
            arr = np.load(file, allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise FrameFileError(f"cannot read {file}: {_why(exc)}") from None
        return None, (arr.shape[0] if arr.ndim == 3 else None)
    if suffix in (".edf", ".tif", ".tiff"):
        import fabio

        try:
            with _quiet_fabio():
                img = fabio.open(str(file))
                n = int(getattr(img, "nframes", 1) or 1)
                img.close()
        except (OSError, ValueError, AttributeError) as exc:
            raise FrameFileError(f"cannot read {file}: {_why(exc)}") from None
        return None, (n if n > 1 else None)
    return None, None


def frame_sources(inputs, *, recursive: bool = False) -> list[FrameSource]:
    """Every frame named by files, globs, folders and HDF5 stacks, in order.

    Parameters
    ----------
    inputs
        Paths (str or Path): a file, ``file.h5::/dataset``, a glob (``scan/*.tif``) or a folder
        (its frame files, sorted by name). Stacks expand to one source per frame.
    recursive
        Search folders recursively.

    Returns
    -------
    list of FrameSource

    Raises
    ------
    FrameFileError
        An input that matches nothing, or a stack file that cannot be opened.
    """
    if isinstance(inputs, str | Path):
        inputs = [inputs]
    out: list[FrameSource] = []
    for item in inputs:
        file, dataset = split_dataset_path(item)
        text = str(file)
        if dataset is None and any(ch in text for ch in "*?["):
            files = sorted(Path(p) for p in glob.glob(text, recursive=recursive) if Path(p).is_file())
            files = [p for p in files if p.suffix.lower() in FRAME_SUFFIXES]
            if not files:
                raise FrameFileError(f"no frame file matches {text!r}")
        elif file.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in file.glob(pattern)
                           if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES)
            if not files:
                raise FrameFileError(f"no frame file ({', '.join(FRAME_SUFFIXES)}) in folder {file}")
        elif file.is_file():
            files = [file]
        else:
            raise FrameFileError(f"no such frame file or folder: {file}")
        for f in files:
            name, n = _count(f, dataset)
            if n is None:
                out.append(FrameSource(f, name))
            else:
                out.extend(FrameSource(f, name, i) for i in range(n))
    return out


def iter_frames(inputs, *, recursive: bool = False) -> Iterator[tuple[FrameSource, np.ndarray]]:
    """Yield ``(source, frame)`` for every frame of :func:`frame_sources` (read one at a time)."""
    for src in frame_sources(inputs, recursive=recursive):
        yield src, src.read()
