"""Small real parts for the fault tests: synthetic frames with a known spot count, ophyd detectors."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.sim import SynSignal
from ophyd.status import StatusBase

# the frames themselves are shared with the other test areas
from laue_live.testing import SHAPE, n_spots, synthetic_frame  # noqa: F401


class InlineDetector(Device):
    """Frames inline in the events; ``on_trigger(i)`` runs before frame ``i`` (fault injection)."""

    image = Cpt(SynSignal, kind="hinted")

    def __init__(
        self,
        *args,
        on_trigger: Callable[[int], None] | None = None,
        frame: Callable[[int], np.ndarray] = synthetic_frame,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self._counter = itertools.count()
        self.on_trigger = on_trigger
        self._frame = frame
        self.image.sim_set_func(self._next)
        self.image.trigger()
        self._counter = itertools.count()

    def _next(self):
        i = next(self._counter)
        if self.on_trigger is not None:
            self.on_trigger(i)
        return self._frame(i)

    def stage(self):
        self._counter = itertools.count()
        return super().stage()

    def trigger(self):
        return self.image.trigger()

    def describe(self):
        d = super().describe()
        for v in d.values():
            v["dtype_numpy"] = "<u2"
        return d


class HDF5Detector(Device):
    """Writes each frame to an HDF5 file and announces it with StreamResource/StreamDatum."""

    count = Cpt(Signal, value=0, kind="omitted")

    def __init__(self, *args, directory: str | os.PathLike, **kwargs):
        super().__init__(*args, **kwargs)
        self.directory = Path(directory)
        self.path: Path | None = None
        self._asset_docs: list = []
        self._file = None
        self._index = 0

    @property
    def key(self) -> str:
        return f"{self.name}_image"

    def stage(self):
        import h5py
        from event_model import compose_stream_resource

        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"{self.name}_{os.urandom(4).hex()}.h5"
        self._file = h5py.File(self.path, "w", libver="latest")
        self._ds = self._file.create_dataset(
            "/entry/data/data", shape=(0, *SHAPE), maxshape=(None, *SHAPE), dtype="<u2", chunks=(1, *SHAPE)
        )
        self._file.swmr_mode = True
        self._index = 0
        self._sres = compose_stream_resource(
            mimetype="application/x-hdf5",
            uri=f"file://localhost{self.path}",
            data_key=self.key,
            parameters={"dataset": "/entry/data/data"},
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
        self._ds[i] = synthetic_frame(i)
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
                "shape": [1, *SHAPE],
                "external": "STREAM:",
            }
        }

    def collect_asset_docs(self, index=None):
        docs, self._asset_docs = self._asset_docs, []
        yield from docs


class Collect:
    """A document sink that keeps everything (the analysis run as emitted)."""

    def __init__(self):
        self.docs: list[tuple[str, dict]] = []

    def __call__(self, name, doc):
        self.docs.append((name, doc))

    def of(self, name):
        return [d for n, d in self.docs if n == name]

    def frames(self) -> dict[int, dict]:
        """Frame number -> its ``frames`` event data (the frames stream)."""
        desc = {d["uid"]: d["name"] for d in self.of("descriptor")}
        return {e["data"]["frame"]: e["data"] for e in self.of("event") if desc[e["descriptor"]] == "frames"}

    def spot_rows(self) -> dict[int, int]:
        """Frame number -> spot rows emitted."""
        desc = {d["uid"]: d["name"] for d in self.of("descriptor")}
        out: dict[int, int] = {}
        for p in self.of("event_page"):
            if desc[p["descriptor"]] == "spots":
                for f in p["data"]["frame"]:
                    out[int(f)] = out.get(int(f), 0) + 1
        return out
