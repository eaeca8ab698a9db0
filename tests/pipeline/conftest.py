"""Fixtures of the fast-path tests: simulated frames (small, dense), a CNN model file, the devices.

``device`` runs a test on every torch device here: "cpu" always, "cuda" when a GPU is present
(skipped with the reason otherwise), so that ``pytest tests/pipeline`` on a GPU machine checks the
CUDA path's tables against the numpy reference too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

_NO_CUDA = "no CUDA device (torch.cuda.is_available() is False): the CUDA path is checked on a GPU machine"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=_NO_CUDA)

#: Parameters of the ``device`` fixture, for tests that parametrize by hand.
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Each torch device of this machine in turn ("cpu"; "cuda" when there is a GPU)."""
    return request.param


def to_device(arr: np.ndarray, device: str) -> torch.Tensor:
    """A numpy frame (or stack) on ``device``; uint16 travels as int16 words, as the pipeline moves it."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype == np.uint16 and device != "cpu":
        return torch.from_numpy(arr.view(np.int16)).to(device).view(torch.uint16)
    return torch.from_numpy(arr).to(device)


def dense_spot_list(n: int, shape: tuple[int, int], rng: np.random.Generator) -> pd.DataFrame:
    """``n`` spots at random positions (some at the frame edges), intensities over three decades."""
    rows = rng.uniform(-2, shape[0] + 1, n)
    cols = rng.uniform(-2, shape[1] + 1, n)
    return pd.DataFrame({"row": rows, "col": cols, "intensity": np.exp(rng.uniform(np.log(1e-3), 0, n))})


@pytest.fixture(scope="session")
def sim_frames() -> list[np.ndarray]:
    """Three rendered frames of different sizes (not multiples of the 16-px block), ~150-400 spots."""
    from laue_live.sim import RenderConfig, render_frame

    rng = np.random.default_rng(7)
    out = []
    for shape, n, mix in (
        ((500, 470), 150, "bm32"),
        ((301, 333), 120, "deformed"),
        ((640, 512), 400, "bm32"),
    ):
        out.append(
            render_frame(
                dense_spot_list(n, shape, rng), RenderConfig(shape_mix=mix), rng=rng, frame_shape=shape
            ).frame
        )
    return out


@pytest.fixture(scope="session")
def cnn_model_file(tmp_path_factory):
    """A paper-architecture CNN with seeded random weights and non-trivial batch-norm statistics."""
    import torch

    from laue_live.cnn import SpotCNN, save_model

    torch.manual_seed(0)
    net = SpotCNN()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return save_model(
        tmp_path_factory.mktemp("cnn") / "random.safetensors", net.eval(), info={"version": "test-random"}
    )
