"""Small real parts for the fault tests: synthetic frames with a known spot count, ophyd detectors."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device
from ophyd.sim import SynSignal

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
