"""Simulated spot cutouts as a training source, with the exact fit as ground truth."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from laue_live.sim import render_spot_cutouts
from laue_live.spots import fit_descriptors

__all__ = ["SimulatorCutoutSource"]


@dataclass
class SimulatorCutoutSource:
    """Simulated spot cutouts (``laue_live.sim.render_spot_cutouts``) with the exact fit as truth.

    A :class:`~laue_live.cnn.CutoutSource`. The simulator's true offsets are kept as
    ``true_d_row`` / ``true_d_col`` when it returns them.

    Parameters
    ----------
    n
        Number of cutouts.
    shape_mix
        Passed to ``render_spot_cutouts`` (which kinds of spot shapes, in what proportions).
    seed
        Seed of the simulator's random generator.
    chunk
        Cutouts rendered and fitted per chunk.
    kwargs
        Further keyword arguments of ``render_spot_cutouts`` (material, strain, ...).
    """

    n: int
    shape_mix: object = None
    seed: int = 0
    name: str = "sim"
    chunk: int = 2000
    kwargs: dict = field(default_factory=dict)

    def chunks(self) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        """Render, fit, yield."""
        rng = np.random.default_rng(self.seed)
        done = 0
        while done < self.n:
            m = min(self.chunk, self.n - done)
            kw = dict(self.kwargs)
            if self.shape_mix is not None:
                kw["shape_mix"] = self.shape_mix
            res = render_spot_cutouts(m, rng=rng, **kw)
            cutouts, truth = _split_sim_result(res)
            table = fit_descriptors(cutouts)
            if truth is not None:
                for src, dst in (("d_row", "true_d_row"), ("d_col", "true_d_col")):
                    if src in truth:
                        table[dst] = np.asarray(truth[src], dtype=np.float64)
            done += m
            yield cutouts, table


def _split_sim_result(res) -> tuple[np.ndarray, pd.DataFrame | None]:
    """``render_spot_cutouts`` may return the cutouts alone or ``(cutouts, truth table)``."""
    if isinstance(res, tuple):
        cutouts, truth = res[0], res[1]
        return np.asarray(cutouts, dtype=np.float32), pd.DataFrame(truth) if truth is not None else None
    if hasattr(res, "cutouts"):
        truth = getattr(res, "truth", None)
        return np.asarray(res.cutouts, dtype=np.float32), pd.DataFrame(truth) if truth is not None else None
    return np.asarray(res, dtype=np.float32), None
