"""An ophyd detector that puts small synthetic uint16 frames inline in the events."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

__all__ = ["make_inline_detector"]


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
