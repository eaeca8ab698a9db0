"""Fixtures of the live-analysis tests: a real local Tiled server, small simulated detectors, frames.

Frames are small (128 x 160) so that the real analysis runs fast: frame ``i`` holds
``n_spots(i) = 2 + i % 3`` bright, well separated Gaussian spots on a ~1000 ADU pedestal, so that
every test knows how many spot rows each frame must produce.
"""

from __future__ import annotations

import itertools

import pytest
from ophyd import Component as Cpt
from ophyd import Device
from ophyd.sim import SynSignal

# the frames themselves are shared with the other test areas
from laue_live.testing import SHAPE, make_hdf5_detector, n_spots, synthetic_frame  # noqa: F401


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


@pytest.fixture
def inline_det():
    return InlineDetector(name="laue")


@pytest.fixture
def hdf5_det(tmp_path):
    return make_hdf5_detector("laueh5", tmp_path / "detector")


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
