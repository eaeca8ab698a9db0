"""Small real parts for the fault tests: a detector with a fault hook, a sink that keeps everything."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# the frames and the detector are shared with the other test areas
from laue_live.testing import SHAPE, make_inline_detector, n_spots, synthetic_frame  # noqa: F401


def InlineDetector(  # noqa: N802 - used like the device class it stands for
    name: str,
    *,
    on_trigger: Callable[[int], None] | None = None,
    frame: Callable[[int], np.ndarray] = synthetic_frame,
):
    """Frames inline in the events; ``on_trigger(i)`` runs before frame ``i`` is taken (fault injection)."""

    def hooked(i: int) -> np.ndarray:
        if on_trigger is not None:
            on_trigger(i)
        return frame(i)

    return make_inline_detector(name, hooked, SHAPE)


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
