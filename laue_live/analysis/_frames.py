"""Where a frame comes from: inline in an event, or in a detector file named by the run's documents.

A :class:`FrameTask` carries either the array itself or a small *loader* (path, dataset, index) so
that the RunEngine thread never touches the disk: files are opened by the analysis worker.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

import h5py
import numpy as np

from laue_live._errors import DocumentError, FrameError

__all__ = [
    "FrameTask",
    "HDF5FrameLoader",
    "NpyFrameLoader",
    "path_from_stream_resource",
    "loader_from_stream_resource",
    "loader_from_resource",
    "RESOURCE_HANDLERS",
]

logger = logging.getLogger(__name__)

#: Default HDF5 dataset of areaDetector / ophyd-async files.
DEFAULT_HDF5_DATASET = "/entry/data/data"


@dataclass(slots=True)
class FrameTask:
    """One frame waiting for analysis.

    Parameters
    ----------
    frame
        Frame number within the raw run, 0-based (event ``seq_num - 1``).
    x, y
        Stage position of the first and second scan axis (motor units; NaN if unknown).
    source
        The frame as a 2-D array, or a callable returning it (read in the worker thread).
    error
        If set, the frame is recorded as failed with this reason without being analysed
        (a frame dropped by the queue policy, an unresolvable datum).
    received
        ``time.monotonic()`` when the RunEngine handed the frame over (for latency figures).
    """

    frame: int
    x: float = math.nan
    y: float = math.nan
    source: np.ndarray | Callable[[], np.ndarray] | None = None
    error: str = ""
    received: float = field(default_factory=time.monotonic)

    def load(self) -> np.ndarray:
        """Return the frame as a 2-D array.

        Raises
        ------
        FrameError
            If the source is missing, cannot be read or is not a 2-D image.
        """
        src = self.source
        if src is None:
            raise FrameError(f"frame {self.frame}: no image data")
        try:
            arr = src() if callable(src) else src
        except FrameError:
            raise
        except Exception as exc:  # a file that vanished, a truncated dataset, ...
            raise FrameError(f"frame {self.frame}: cannot read image: {type(exc).__name__}: {exc}") from exc
        arr = np.asarray(arr)
        while arr.ndim > 2 and arr.shape[0] == 1:  # (1, H, W) from one-frame-per-point detectors
            arr = arr[0]
        if arr.ndim != 2:
            raise FrameError(f"frame {self.frame}: expected a 2-D image, got shape {arr.shape}")
        return arr


def _retrying(read: Callable[[], np.ndarray], what: str, timeout: float) -> np.ndarray:
    # A detector may have announced a frame a few ms before its file is flushed: retry briefly.
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            return read()
        except (OSError, KeyError, IndexError, ValueError) as exc:
            if time.monotonic() >= deadline:
                raise FrameError(f"cannot read {what}: {type(exc).__name__}: {exc}") from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _check_stored(ds, index: int, path: str) -> None:
    """Raise OSError unless frame ``index`` of ``ds`` lies wholly inside the file on disk.

    In SWMR mode HDF5 does not check the file against its recorded end (the file may grow), so a
    truncated file reads as zeros past its end: a silently wrong frame. Check the chunks instead.
    """
    chunks = ds.chunks
    if chunks is None:
        offset = ds.id.get_offset()
        end = None if offset is None else offset + ds.id.get_storage_size()
        ends = [end]
    else:
        first = (index // chunks[0]) * chunks[0]
        ends = []
        for coord in itertools.product([first], *(range(0, n, c) for n, c in zip(ds.shape[1:], chunks[1:],
                                                                                  strict=True))):
            info = ds.id.get_chunk_info_by_coord(coord)
            ends.append(None if info.byte_offset is None else info.byte_offset + info.size)
    if any(e is None for e in ends):
        raise OSError(f"frame {index} of {ds.name} is not written in the file yet")
    size = os.path.getsize(path)
    if max(ends, default=0) > size:
        raise OSError(f"file truncated: frame {index} ends at byte {max(ends)}, the file has {size} bytes")


_H5_OPEN_VARIANTS = ({"swmr": True}, {"swmr": True, "locking": False}, {}, {"locking": False})


@dataclass(frozen=True, slots=True)
class HDF5FrameLoader:
    """Read frame ``index`` of an HDF5 dataset (opened read-only, in SWMR mode when possible).

    Parameters
    ----------
    path
        Absolute file path.
    dataset
        Dataset path inside the file, e.g. ``/entry/data/data``.
    index
        Position along the first axis.
    timeout
        Seconds to keep retrying while the file or the frame is not readable yet.
    """

    path: str
    dataset: str = DEFAULT_HDF5_DATASET
    index: int = 0
    timeout: float = 2.0

    def _read(self) -> np.ndarray:
        f = None
        # SWMR read when the writer allows it; the file-locking mode must match a writer that has
        # the file open in this same process (HDF5 refuses mismatched flags), so try both.
        for kw in _H5_OPEN_VARIANTS:
            try:
                f = h5py.File(self.path, "r", **kw)
                break
            except OSError as exc:
                error = exc
        if f is None:
            raise error
        with f:
            ds = f[self.dataset]
            if hasattr(ds, "refresh"):
                try:
                    ds.refresh()
                except Exception:  # refresh only works in SWMR mode
                    pass
            if self.index >= ds.shape[0]:
                raise IndexError(f"index {self.index} >= {ds.shape[0]} frames in {self.dataset}")
            _check_stored(ds, self.index, self.path)
            return ds[self.index]

    def __call__(self) -> np.ndarray:
        # The file may appear a moment after its frame is announced; _retrying bounds the wait.
        return _retrying(self._read, f"{self.path}:{self.dataset}[{self.index}]", self.timeout)


@dataclass(frozen=True, slots=True)
class NpyFrameLoader:
    """Read a frame saved with ``numpy.save`` (ophyd.sim's ``NPY_SEQ``); pickles are refused."""

    path: str
    timeout: float = 2.0

    def __call__(self) -> np.ndarray:
        return _retrying(lambda: np.load(self.path, allow_pickle=False), self.path, self.timeout)


def _path_from_uri(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise DocumentError(f"unsupported resource URI scheme {parsed.scheme!r} in {uri!r}")
    return unquote(parsed.path)


def path_from_stream_resource(doc: Mapping[str, Any]) -> str:
    """Return the file path of a StreamResource document (``uri``, or older ``root`` + ``resource_path``)."""
    if doc.get("uri"):
        return _path_from_uri(doc["uri"])
    if "resource_path" in doc:
        return os.path.join(doc.get("root", "") or "/", doc["resource_path"])
    raise DocumentError(f"stream_resource {doc.get('uid')!r} names no file (no uri)")


def loader_from_stream_resource(doc: Mapping[str, Any], index: int, timeout: float = 2.0):
    """Loader of frame ``index`` of the file a StreamResource document points at.

    Raises
    ------
    DocumentError
        If the mimetype is not HDF5 or no file is named.
    """
    mimetype = doc.get("mimetype") or doc.get("spec") or ""
    path = path_from_stream_resource(doc)
    params = doc.get("parameters") or doc.get("resource_kwargs") or {}
    if "hdf5" not in mimetype.lower() and not path.endswith((".h5", ".hdf5", ".hdf", ".nxs")):
        raise DocumentError(f"stream_resource mimetype {mimetype!r} is not supported (HDF5 only)")
    return HDF5FrameLoader(path, params.get("dataset", DEFAULT_HDF5_DATASET), int(index), timeout)


def _resource_path(resource: Mapping[str, Any]) -> str:
    if resource.get("uri"):
        return _path_from_uri(resource["uri"])
    return os.path.join(resource.get("root", "") or "", resource.get("resource_path", ""))


def _ad_hdf5(resource: Mapping[str, Any], datum_kwargs: Mapping[str, Any]):
    rk = resource.get("resource_kwargs") or {}
    fpp = int(rk.get("frame_per_point", 1))
    point = int(datum_kwargs.get("point_number", datum_kwargs.get("index", 0)))
    return HDF5FrameLoader(_resource_path(resource), rk.get("dataset", DEFAULT_HDF5_DATASET), point * fpp)


def _npy_seq(resource: Mapping[str, Any], datum_kwargs: Mapping[str, Any]):
    return NpyFrameLoader(f"{_resource_path(resource)}_{int(datum_kwargs['index'])}.npy")


#: Legacy Resource ``spec`` -> function(resource, datum_kwargs) returning a frame loader.
RESOURCE_HANDLERS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], Callable[[], np.ndarray]]] = {
    "AD_HDF5": _ad_hdf5,
    "AD_HDF5_SWMR": _ad_hdf5,
    "HDF5": _ad_hdf5,
    "NPY_SEQ": _npy_seq,
}


def loader_from_resource(resource: Mapping[str, Any], datum: Mapping[str, Any], handlers=None):
    """Loader for a legacy Resource/Datum pair.

    Raises
    ------
    DocumentError
        If no handler is registered for the resource's ``spec``.
    """
    table = {**RESOURCE_HANDLERS, **(handlers or {})}
    spec = resource.get("spec", "")
    handler = table.get(spec)
    if handler is None:
        raise DocumentError(f"no frame handler for resource spec {spec!r} (known: {sorted(table)})")
    return handler(resource, datum.get("datum_kwargs") or {})
