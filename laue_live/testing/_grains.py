"""Spot tables of known grains in the project's schema, without rendering frames (indexing tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from laue_live._schema import SPOT_COLUMNS
from laue_live.sim import BM32_CALIBRATION, simulated_spot_table

__all__ = ["grain_spot_table"]


def grain_spot_table(grains, *, frame: int = 0, rng=None, position_noise_px: float = 0.05,
                     n_spurious: int = 10, calibration=None):
    """Return a full-schema spot table of one frame of the given grains (forward model, no rendering).

    Parameters
    ----------
    grains
        ``[(material, orientation U, strain or None), ...]``, as :func:`laue_live.sim.simulated_spot_table`.
    frame
        The ``frame`` column.
    rng
        Generator or seed of the position noise and the spurious spots.
    position_noise_px
        Gaussian noise on ``row, col`` (0.05 px: the exact fit's error on good spots).
    n_spurious
        Spurious spots added (no grain).
    calibration
        Detector geometry (BM32's by default).

    Returns
    -------
    pandas.DataFrame
        Schema columns (:data:`laue_live._schema.SPOT_COLUMNS`), every spot ``good``, ``intensity`` the
        simulated one, plus the truth: ``true_grain`` (-1 spurious), ``true_h, true_k, true_l``.
    """
    table = simulated_spot_table(grains, calibration or BM32_CALIBRATION, rng=rng,
                                 position_noise_px=position_noise_px, n_spurious=n_spurious)
    n = len(table)
    out = {c.name: np.zeros(n, dtype=c.dtype) for c in SPOT_COLUMNS}
    out.update(frame=np.full(n, frame, np.int64), spot=np.arange(n, dtype=np.int32),
               row=table["row"].to_numpy(float), col=table["col"].to_numpy(float),
               row0=np.rint(table["row"]).astype(np.int32), col0=np.rint(table["col"]).astype(np.int32),
               intensity=(1e4 * table["intensity"]).astype(np.float32), good=np.ones(n, bool),
               sim=np.full(n, 0.9, np.float32), asp=np.ones(n, np.float32), converged=np.ones(n, bool),
               parent=np.full(n, -1, np.int32))
    df = pd.DataFrame(out)
    df["true_grain"] = table["grain"].to_numpy()
    for k in "hkl":
        df[f"true_{k}"] = table[k].to_numpy()
    return df
