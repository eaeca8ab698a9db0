"""Tiny synthetic frames with a known number of well separated Gaussian spots."""

from __future__ import annotations

import numpy as np

__all__ = ["SHAPE", "SPOT_SITES", "n_spots", "synthetic_frame"]

#: (rows, cols) of a synthetic frame.
SHAPE = (128, 160)
#: Centres (row, col) of the spots, used in this order.
SPOT_SITES = [(30, 40), (30, 110), (90, 40), (90, 110), (60, 75)]


def n_spots(i: int) -> int:
    """Return the number of spots drawn in synthetic frame ``i`` (2, 3 or 4)."""
    return 2 + i % 3


def synthetic_frame(i: int) -> np.ndarray:
    """Return frame ``i``: 1000 ADU pedestal, 5 ADU read noise, ``n_spots(i)`` Poisson Gaussian spots.

    The spots (peak ~8000 ADU above the pedestal, sigmas 1.5 x 1.8 px) sit within 0.5 px of
    :data:`SPOT_SITES`; the frame is uint16 of :data:`SHAPE` and the same for the same ``i``.
    """
    rng = np.random.default_rng(i)
    r, c = np.mgrid[: SHAPE[0], : SHAPE[1]]
    signal = np.zeros(SHAPE)
    for k in range(n_spots(i)):
        r0, c0 = SPOT_SITES[k]
        r0 += rng.uniform(-0.5, 0.5)
        c0 += rng.uniform(-0.5, 0.5)
        signal += 8000.0 * np.exp(-0.5 * (((r - r0) / 1.5) ** 2 + ((c - c0) / 1.8) ** 2))
    img = 1000.0 + rng.normal(0.0, 5.0, SHAPE) + rng.poisson(signal)
    return img.clip(0, 65535).astype(np.uint16)
