"""Fixtures of the service tests: a small synthetic inline detector (Tiled: tests/conftest.py)."""

from __future__ import annotations

# the frames themselves are shared with the other test areas
from laue_live.testing import SHAPE, make_inline_detector, n_spots, synthetic_frame  # noqa: F401


def SmallDetector(name: str):  # noqa: N802 - used like the device class it stands for
    """Inline frames, frame i of every run is synthetic_frame(i)."""
    return make_inline_detector(name, synthetic_frame, SHAPE)
