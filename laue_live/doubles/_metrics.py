"""Scores of the double-spot model against known components."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["match_errors"]


def match_errors(pred: pd.DataFrame, truth: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Position errors (px) of components 1 and 2, the predicted pair matched to the true pair.

    The assignment (1-1, 2-2 or swapped) that gives the smaller summed error is used, so a swap of
    two nearly equal components is not counted as an error.
    """
    def d(a, b):
        return np.hypot(pred[f"row{a}"].to_numpy() - truth[f"row{b}"].to_numpy(),
                        pred[f"col{a}"].to_numpy() - truth[f"col{b}"].to_numpy())

    same = (d(1, 1), d(2, 2))
    swap = (d(2, 1), d(1, 2))
    use_swap = swap[0] + swap[1] < same[0] + same[1]
    return np.where(use_swap, swap[0], same[0]), np.where(use_swap, swap[1], same[1])
