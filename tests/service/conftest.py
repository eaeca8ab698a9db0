"""Fixtures of the service tests: a small synthetic inline detector (Tiled: tests/conftest.py)."""

from __future__ import annotations

import itertools

from ophyd import Component as Cpt
from ophyd import Device
from ophyd.sim import SynSignal

# the frames themselves are shared with the other test areas
from laue_live.testing import SHAPE, n_spots, synthetic_frame  # noqa: F401


class SmallDetector(Device):
    """Inline frames, frame i of every run is synthetic_frame(i)."""

    image = Cpt(SynSignal, kind="hinted")

    def stage(self):
        counter = itertools.count()
        self.image.sim_set_func(lambda: synthetic_frame(next(counter)))
        return super().stage()

    def trigger(self):
        return self.image.trigger()  # a Device does not trigger its SynSignal by itself

    def describe(self):
        d = super().describe()
        for v in d.values():
            # SynSignal describes the value it holds before the first trigger (a scalar).
            v.update(dtype="array", shape=list(SHAPE), dtype_numpy="<u2")
        return d
