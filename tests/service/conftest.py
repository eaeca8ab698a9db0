"""Fixtures of the service tests: a small synthetic inline detector (Tiled: tests/conftest.py)."""

from __future__ import annotations

import itertools

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device
from ophyd.sim import SynSignal

SHAPE = (128, 160)
_SITES = [(30, 40), (30, 110), (90, 40), (90, 110), (60, 75)]


def n_spots(i: int) -> int:
    """Spots drawn in synthetic frame ``i``."""
    return 2 + i % 3


def synthetic_frame(i: int) -> np.ndarray:
    """Frame ``i``: pedestal 1000 ADU, read noise 5 ADU, ``n_spots(i)`` Gaussian spots with Poisson noise."""
    rng = np.random.default_rng(i)
    r, c = np.mgrid[: SHAPE[0], : SHAPE[1]]
    signal = np.zeros(SHAPE)
    for k in range(n_spots(i)):
        r0, c0 = _SITES[k]
        r0 += rng.uniform(-0.5, 0.5)
        c0 += rng.uniform(-0.5, 0.5)
        signal += 8000.0 * np.exp(-0.5 * (((r - r0) / 1.5) ** 2 + ((c - c0) / 1.8) ** 2))
    img = 1000.0 + rng.normal(0.0, 5.0, SHAPE) + rng.poisson(signal)
    return img.clip(0, 65535).astype(np.uint16)


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
