"""Spot tables as a peak search would report them, straight from the forward model (no rendering).

For indexing tests and benchmarks: the truth (orientation, strain, Miller indices) is known, the
positions carry a chosen noise, the weakest spots are missed and spurious spots can be added.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from laue_live.geometry import BM32_CALIBRATION, Calibration, simulate_spots

__all__ = ["simulated_spot_table"]


def simulated_spot_table(
    grains,
    calibration: Calibration = BM32_CALIBRATION,
    rng=None,
    position_noise_px: float = 0.1,
    min_intensity: float = 1e-3,
    n_spurious: int = 0,
    energy_range: tuple[float, float] = (5.0, 23.0),
) -> pd.DataFrame:
    """Spot table of one frame of one or several grains.

    Parameters
    ----------
    grains
        ``[(material, orientation, strain or None), ...]`` (orientation in the LaueTools frame,
        strain in the crystal frame, as :func:`laue_live.geometry.simulate_spots` takes them).
    calibration
        Detector geometry.
    rng
        ``numpy.random.Generator`` or seed.
    position_noise_px
        Standard deviation of the Gaussian noise added to ``row`` and ``col``, px.
    min_intensity
        Spots of relative intensity below this (per grain, 1 = its brightest) are not detected.
    n_spurious
        Spurious spots (uniform on the frame, low intensity) added.
    energy_range
        Beam band, keV.

    Returns
    -------
    pandas.DataFrame
        ``row, col, intensity`` and the truth: ``grain`` (-1 for spurious spots), ``h, k, l``,
        ``row_true, col_true``; rows shuffled.
    """
    rng = np.random.default_rng(rng)
    parts = []
    for gi, (material, orientation, strain) in enumerate(grains):
        df = simulate_spots(material, orientation, calibration, energy_range, strain)
        df = df[df["intensity"] >= min_intensity]
        parts.append(pd.DataFrame({
            "row_true": df["row"].to_numpy(), "col_true": df["col"].to_numpy(),
            "intensity": df["intensity"].to_numpy() * rng.uniform(0.5, 1.5, len(df)),
            "grain": gi, "h": df["h"].to_numpy(), "k": df["k"].to_numpy(), "l": df["l"].to_numpy(),
        }))
    rows, cols = calibration.frame_shape
    if n_spurious:
        parts.append(pd.DataFrame({
            "row_true": rng.uniform(0, rows - 1, n_spurious),
            "col_true": rng.uniform(0, cols - 1, n_spurious),
            "intensity": rng.uniform(0, 2 * min_intensity, n_spurious), "grain": -1, "h": 0, "k": 0, "l": 0,
        }))
    table = pd.concat(parts, ignore_index=True)
    table["row"] = table["row_true"] + rng.normal(0, position_noise_px, len(table))
    table["col"] = table["col_true"] + rng.normal(0, position_noise_px, len(table))
    table = table.sample(frac=1.0, random_state=rng.integers(2**31)).reset_index(drop=True)
    return table[["row", "col", "intensity", "grain", "h", "k", "l", "row_true", "col_true"]]
