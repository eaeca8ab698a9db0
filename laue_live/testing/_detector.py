"""An ophyd detector that puts small synthetic uint16 frames inline in the events."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["make_hdf5_detector", "make_inline_detector"]


def make_inline_detector(name: str, frame: Callable[[int], np.ndarray], shape: tuple[int, int]):
    """Return an ophyd detector whose ``image`` is ``frame(i)`` at the i-th trigger of each run.

    Parameters
    ----------
    name
        Device name; the image data key is ``f"{name}_image"``.
    frame
        ``frame(i) -> uint16 array`` of ``shape``; the counter restarts at 0 when the device is staged.
    shape
        (rows, cols) declared in ``describe()``.

    Notes
    -----
    ``describe()`` declares ``dtype_numpy="<u2"`` and the 2-D shape: without them TiledWriter stores
    the frames as float64 (ECOSYSTEM.md section 2) and SynSignal describes the scalar it holds before
    its first trigger.
    """
    # the ecosystem only where documents are made: the module stays importable without it
    from ophyd import Component as Cpt
    from ophyd import Device
    from ophyd.sim import SynSignal

    class InlineFrameDetector(Device):
        image = Cpt(SynSignal, kind="hinted")

        def stage(self):
            counter = itertools.count()
            self.image.sim_set_func(lambda: frame(next(counter)))
            return super().stage()

        def trigger(self):
            return self.image.trigger()  # Device.trigger does not trigger a SynSignal child

        def describe(self):
            d = super().describe()
            for v in d.values():
                v.update(dtype="array", shape=list(shape), dtype_numpy="<u2")
            return d

    return InlineFrameDetector(name=name)


def make_hdf5_detector(
    name: str,
    directory: str | os.PathLike,
    frame: Callable[[int], np.ndarray] | None = None,
    shape: tuple[int, int] | None = None,
):
    """Return an ophyd detector that writes each frame to an HDF5 file, as an area detector does.

    Each run (stage) opens a new file ``<directory>/<name>_<random>.h5`` in SWMR mode with the
    dataset ``/entry/data/data`` (one chunk per frame); each trigger appends ``frame(i)`` and emits a
    ``StreamDatum``; the run's ``StreamResource`` is emitted at the first trigger. The events carry
    no image: readers (TiledWriter, the analysis callback) read the file.

    Parameters
    ----------
    name
        Device name; the data key is ``f"{name}_image"``.
    directory
        Folder of the files (created if needed).
    frame
        ``frame(i) -> uint16 array``; default :func:`laue_live.testing.synthetic_frame`.
    shape
        (rows, cols) of the frames; default :data:`laue_live.testing.SHAPE`.

    Returns
    -------
    ophyd.Device
        With ``key`` (the data key) and ``path`` (the file of the current run, None before).
    """
    # the ecosystem only where documents are made: the module stays importable without it
    from event_model import compose_stream_resource
    from ophyd import Component as Cpt
    from ophyd import Device, Signal
    from ophyd.status import StatusBase

    from laue_live.testing._frames import SHAPE, synthetic_frame

    frame = frame or synthetic_frame
    shape = tuple(shape or SHAPE)

    class HDF5FrameDetector(Device):
        count = Cpt(Signal, value=0, kind="omitted")

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.directory = Path(directory)
            self.path: Path | None = None
            self._asset_docs: list = []
            self._file = None
            self._ds = None
            self._sres = None
            self._index = 0

        @property
        def key(self) -> str:
            return f"{self.name}_image"

        def stage(self):
            # h5py only for HDF5 files
            import h5py

            self.directory.mkdir(parents=True, exist_ok=True)
            self.path = self.directory / f"{self.name}_{os.urandom(4).hex()}.h5"
            self._file = h5py.File(self.path, "w", libver="latest")
            self._ds = self._file.create_dataset(
                "/entry/data/data", shape=(0, *shape), maxshape=(None, *shape), dtype="<u2",
                chunks=(1, *shape),
            )
            self._file.swmr_mode = True  # readers open it while it grows
            self._index = 0
            self._sres = compose_stream_resource(
                mimetype="application/x-hdf5",
                uri=f"file://localhost{self.path}",
                data_key=self.key,
                parameters={"dataset": "/entry/data/data", "chunk_shape": [1, *shape]},
            )
            self._asset_docs = [("stream_resource", self._sres.stream_resource_doc)]
            return super().stage()

        def unstage(self):
            if self._file is not None:
                self._file.close()
                self._file = None
            return super().unstage()

        def trigger(self):
            i = self._index
            self._ds.resize(i + 1, axis=0)
            self._ds[i] = frame(i)
            self._ds.flush()
            self._asset_docs.append(
                ("stream_datum", self._sres.compose_stream_datum(indices={"start": i, "stop": i + 1}))
            )
            self._index += 1
            st = StatusBase()
            st.set_finished()
            return st

        def read(self):
            return {}

        def describe(self):
            return {
                self.key: {
                    "source": "sim-hdf5",
                    "dtype": "array",
                    "dtype_numpy": "<u2",
                    "shape": [1, *shape],
                    "external": "STREAM:",
                }
            }

        def collect_asset_docs(self, index=None):
            docs, self._asset_docs = self._asset_docs, []
            yield from docs

    return HDF5FrameDetector(name=name)
