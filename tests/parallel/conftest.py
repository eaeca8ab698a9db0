"""Fixtures of the reprocessing tests: raw runs of small frames written by a real RunEngine into Tiled."""

from __future__ import annotations

import numpy as np
import pytest

FRAME_SHAPE = (96, 112)
_SITES = [(24, 28), (24, 84), (70, 28), (70, 84)]


def n_spots(i: int) -> int:
    """Spots in frame ``i`` of every raw run."""
    return 2 + i % 3


def small_frame(i: int) -> np.ndarray:
    """Frame ``i``: 1000 ADU pedestal, 3 ADU read noise, ``n_spots(i)`` Gaussian spots with Poisson noise."""
    rng = np.random.default_rng(300 + i)
    r, c = np.mgrid[: FRAME_SHAPE[0], : FRAME_SHAPE[1]]
    signal = np.zeros(FRAME_SHAPE)
    for r0, c0 in _SITES[: n_spots(i)]:
        signal += 6000.0 * np.exp(
            -0.5
            * (
                ((r - r0 - rng.uniform(-0.4, 0.4)) / 1.4) ** 2
                + ((c - c0 - rng.uniform(-0.4, 0.4)) / 1.7) ** 2
            )
        )
    img = 1000.0 + rng.normal(0.0, 3.0, FRAME_SHAPE) + rng.poisson(signal)
    return img.clip(0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def write_raw_run():
    """``write_raw_run(container, n_frames) -> uid``: a real scan of small frames written by TiledWriter."""
    from bluesky import RunEngine
    from bluesky.plans import count
    from bluesky_tiled_plugins import TiledWriter

    from laue_live.testing import make_inline_detector

    det = make_inline_detector("det", small_frame, FRAME_SHAPE)

    def write(container, n_frames: int = 6) -> str:
        RE = RunEngine({}, call_returns_result=False)
        RE.subscribe(TiledWriter(container, batch_size=1))
        (uid,) = RE(count([det], n_frames), sample="campaign-test")
        return uid

    return write
