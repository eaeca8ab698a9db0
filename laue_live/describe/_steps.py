"""The steps frame analysis is made of, as plain callables: descriptors of cutouts, double spots.

Frame analysis (:func:`laue_live.describe.describe_frames`) knows only these two protocols; the
exact fit (:func:`laue_live.spots.fit_descriptors`), the spot CNN (:mod:`laue_live.cnn`) and the
double-spot model (:mod:`laue_live.doubles`) each supply one, and a user may pass their own.
"""

from __future__ import annotations

import functools
from typing import Protocol

import numpy as np
import pandas as pd

from laue_live._errors import ModelError

__all__ = ["Describer", "DoublesStep", "cnn_describer", "doubles_step"]


class Describer(Protocol):
    """Cutouts -> descriptors: ``(N, S, S)`` cutouts (ADU, initial peak at ``S // 2``) in, one row each out.

    The table holds :data:`laue_live.spots.DESCRIPTOR_COLUMNS` (float32 descriptors, bool
    ``converged`` and ``saturated``), as :func:`laue_live.characterize` returns it.
    """

    def __call__(self, cutouts: np.ndarray) -> pd.DataFrame:
        """Describe every cutout."""
        ...


class DoublesStep(Protocol):
    """(cutouts, spot table of one frame) -> the table with its double spots split into components.

    Row ``i`` of the table came from cutout ``i``; see :func:`laue_live.doubles.describe_doubles`.
    """

    def __call__(self, cutouts: np.ndarray, table: pd.DataFrame) -> pd.DataFrame:
        """Describe the double spots of one frame's table."""
        ...


def cnn_describer(model=None, device=None, polish: int | None = None) -> Describer:
    """Return the spot CNN as a :class:`Describer` (loaded once per model and device: ``get_predictor``).

    ``polish``: iterations of the exact fit started at the network's prediction (default: the
    model's recommendation; 0: the network's descriptors alone).

    Raises
    ------
    ModelError
        ``laue_live.cnn`` cannot be imported, or the model cannot be loaded.
    """
    try:
        from laue_live.cnn import get_predictor  # why: torch and the network load only for method="cnn"
    except ImportError as exc:
        raise ModelError(f"method='cnn' needs laue_live.cnn, which cannot be imported: {exc}") from exc
    return get_predictor(model=model, device=device or "auto", polish=polish).predict


def doubles_step(model=None, device=None) -> DoublesStep:
    """Return the double-spot model as a :class:`DoublesStep` (``model``: its weights; default shipped)."""
    from laue_live.doubles import describe_doubles  # why: torch and the network load only for doubles=True

    return functools.partial(describe_doubles, model=model, device=device or "cpu")
