"""Fixtures of the reprocessing tests: raw runs of small frames written by a real RunEngine into Tiled."""

from __future__ import annotations

import pytest

# the frames are the small synthetic ones shared by every test area
from laue_live.testing import SHAPE, make_inline_detector, n_spots, synthetic_frame  # noqa: F401


@pytest.fixture(scope="module")
def write_raw_run():
    """``write_raw_run(container, n_frames) -> uid``: a real scan of small frames written by TiledWriter."""
    from bluesky import RunEngine
    from bluesky.plans import count
    from bluesky_tiled_plugins import TiledWriter

    det = make_inline_detector("det", synthetic_frame, SHAPE)

    def write(container, n_frames: int = 6) -> str:
        RE = RunEngine({}, call_returns_result=False)
        RE.subscribe(TiledWriter(container, batch_size=1))
        (uid,) = RE(count([det], n_frames), sample="campaign-test")
        return uid

    return write
