"""Fixtures of the fast-path tests: simulated frames (small, dense) and a CNN model file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


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
