"""Fixtures of the live-analysis tests: a real local Tiled server, small simulated detectors, frames.

Frames are small (128 x 160) so that the real analysis runs fast: frame ``i`` holds
``n_spots(i) = 2 + i % 3`` bright, well separated Gaussian spots on a ~1000 ADU pedestal, so that
every test knows how many spot rows each frame must produce.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.sim import SynSignal
from ophyd.status import StatusBase

# the frames themselves are shared with the other test areas
from laue_live.testing import SHAPE, n_spots, synthetic_frame  # noqa: F401


def _uint16_describe(d: dict) -> dict:
    for v in d.values():
        v["dtype_numpy"] = "<u2"  # else TiledWriter's normalizer stores float64 (ECOSYSTEM.md §2)
    return d


class InlineDetector(Device):
    """Frames inline in the events (ophyd v1); frame ``i`` of every run is ``synthetic_frame(i)``."""

    image = Cpt(SynSignal, kind="hinted")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._counter = itertools.count()
        self.image.sim_set_func(lambda: synthetic_frame(next(self._counter)))
        self.image.trigger()  # SynSignal describes the value it holds: make it a frame

    def stage(self):
        self._counter = itertools.count()
        return super().stage()

    def trigger(self):
        return self.image.trigger()  # ophyd's Device.trigger does not trigger a SynSignal child

    def describe(self):
        return _uint16_describe(super().describe())


class HDF5Detector(Device):
    """Writes each frame to an HDF5 file and emits StreamResource/StreamDatum, like an area detector."""

    count = Cpt(Signal, value=0, kind="omitted")

    def __init__(self, *args, directory: str | os.PathLike, **kwargs):
        super().__init__(*args, **kwargs)
        self.directory = Path(directory)
        self._asset_docs: list = []
        self._file = None
        self._ds = None
        self._index = 0
        self._sres = None

    @property
    def key(self) -> str:
        return f"{self.name}_image"

    def stage(self):
        import h5py
        from event_model import compose_stream_resource

        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.name}_{os.urandom(4).hex()}.h5"
        self._file = h5py.File(path, "w", libver="latest")
        self._ds = self._file.create_dataset("/entry/data/data", shape=(0, *SHAPE), maxshape=(None, *SHAPE),
                                             dtype="<u2", chunks=(1, *SHAPE))
        self._file.swmr_mode = True
        self._index = 0
        bundle = compose_stream_resource(mimetype="application/x-hdf5", uri=f"file://localhost{path}",
                                         data_key=self.key,
                                         parameters={"dataset": "/entry/data/data",
                                                     "chunk_shape": [1, *SHAPE]})
        self._sres = bundle
        self._asset_docs = [("stream_resource", bundle.stream_resource_doc)]
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
        self._asset_docs.append(("stream_datum", self._sres.compose_stream_datum(
            indices={"start": i, "stop": i + 1})))
        self._index += 1
        st = StatusBase()
        st.set_finished()
        return st

    def read(self):
        return {}

    def describe(self):
        return {self.key: {"source": "sim-hdf5", "dtype": "array", "dtype_numpy": "<u2",
                           "shape": [1, *SHAPE], "external": "STREAM:"}}

    def collect_asset_docs(self, index=None):
        docs, self._asset_docs = self._asset_docs, []
        yield from docs


@pytest.fixture
def inline_det():
    return InlineDetector(name="laue")


@pytest.fixture
def hdf5_det(tmp_path):
    return HDF5Detector(name="laueh5", directory=tmp_path / "detector")


@pytest.fixture(scope="session")
def analyzer():
    """The real analysis (exact fit) of laue_live.spots, one shared instance."""
    from laue_live.analysis import FrameAnalyzer

    return FrameAnalyzer("fit")


@pytest.fixture
def catalog(tiled_client):
    """Empty raw/analysis containers of their own on the session's real Tiled server (tests/conftest.py).

    Table requests are serialised, as the demo does (Tiled 0.2.20 DuckDB race, docs/live.md).
    """
    from laue_live.callbacks import serialize_tiled_writes

    serialize_tiled_writes()
    return tiled_client


@pytest.fixture
def RE():
    from bluesky import RunEngine

    re = RunEngine({}, call_returns_result=False)
    yield re
    if re.state != "idle":
        re.halt()
