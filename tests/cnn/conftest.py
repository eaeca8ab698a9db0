import numpy as np
import pandas as pd
import pytest


def gaussian_cutouts(n: int, seed: int = 0, size: int = 32):
    """Synthetic axis-aligned Gaussian spots on a pedestal with their true descriptors."""
    rng = np.random.default_rng(seed)
    r = np.arange(size)[None, :, None]
    c = np.arange(size)[None, None, :]
    dr, dc = rng.uniform(-0.6, 0.6, n), rng.uniform(-0.6, 0.6, n)
    sr, sc = rng.uniform(0.7, 2.5, n), rng.uniform(0.7, 2.5, n)
    amp = rng.uniform(500, 20000, n)
    g = np.exp(
        -0.5
        * (
            ((r - 16 - dr[:, None, None]) / sr[:, None, None]) ** 2
            + ((c - 16 - dc[:, None, None]) / sc[:, None, None]) ** 2
        )
    )
    cut = 1000 + amp[:, None, None] * g + rng.normal(0, 5, (n, size, size))
    table = pd.DataFrame(
        {
            "sim": rng.uniform(0, 1, n),
            "d_row": dr,
            "d_col": dc,
            "asp": np.minimum(sr, sc) / np.maximum(sr, sc),
            "area": np.pi * sr * sc,
            "sigma_row": sr,
            "sigma_col": sc,
        }
    )
    return cut.astype(np.float32), table


@pytest.fixture(scope="session")
def toy_spots():
    return gaussian_cutouts(96)


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory, toy_spots):
    """A lean model trained for a few steps, saved once for the session."""
    from laue_live.cnn import SpotSet, save_model, train

    cut, table = toy_spots
    res = train(
        SpotSet(cut, table, "toy"), arch="lean", epochs=1, steps=3, val_size=16, progress=False, seed=1
    )
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, res.model, info={"version": "test"}, calibration=res.calibration)
    return path
