"""Training data: spot sets (cutouts + fit descriptors), replaceable sources, Sim resampling.

A :class:`CutoutSource` is anything that yields chunks of raw cutouts with the exact fit's
descriptors; the trainer only ever sees :class:`SpotSet`. Sources here: in-memory arrays and real
frames (peak search + exact fit of ``laue_live.spots``). The simulator's sources live in
:mod:`laue_live.training` (the live path never imports the simulator);
``laue_live.catalog.CatalogCutoutSource`` (historical runs in Tiled) plugs in the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
import tifffile

from laue_live.cnn._descriptors import desc_from_table
from laue_live.spots import extract_cutouts, find_peaks, fit_descriptors

__all__ = [
    "TARGET_COLUMNS",
    "SpotSet",
    "CutoutSource",
    "ArraySource",
    "FrameCutoutSource",
    "collect",
    "resample_uniform",
]

logger = logging.getLogger(__name__)

#: Columns a source must provide for every cutout (the exact fit's, see ``laue_live._schema``).
TARGET_COLUMNS = ("sim", "d_row", "d_col", "asp", "area", "sigma_row", "sigma_col")


@dataclass
class SpotSet:
    """Raw cutouts and their ground-truth descriptors.

    Parameters
    ----------
    cutouts
        ``(N, 32, 32)`` float32, ADU, initial peak at index (16, 16).
    table
        One row per cutout with at least :data:`TARGET_COLUMNS`; optional ``true_d_row`` and
        ``true_d_col`` (simulator truth, px) and ``sim0``.
    name
        Label used in reports.
    """

    cutouts: np.ndarray
    table: pd.DataFrame
    name: str = "spots"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cutouts = np.asarray(self.cutouts, dtype=np.float32)
        if self.cutouts.ndim != 3 or len(self.cutouts) != len(self.table):
            raise ValueError(f"cutouts {self.cutouts.shape} and table ({len(self.table)} rows) do not match")
        missing = [c for c in TARGET_COLUMNS if c not in self.table.columns]
        if missing:
            raise ValueError(f"spot set {self.name!r} lacks column(s) {missing}")
        self.table = self.table.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.cutouts)

    @property
    def desc(self) -> np.ndarray:
        """Targets ``(N, 5)``: ``(Sim, Pos*_row, Pos*_col, Asp, Area*)``."""
        return desc_from_table(self.table)

    def valid(self) -> SpotSet:
        """Keep the rows whose fit gave finite descriptors and whose cutout is finite."""
        ok = np.isfinite(self.table[list(TARGET_COLUMNS)].to_numpy(np.float64)).all(axis=1)
        ok &= np.isfinite(self.cutouts).all(axis=(1, 2))
        if "converged" in self.table:
            ok &= self.table["converged"].to_numpy(bool)
        return self.subset(np.flatnonzero(ok))

    def subset(self, idx: np.ndarray) -> SpotSet:
        """Rows ``idx`` as a new set."""
        return SpotSet(self.cutouts[idx], self.table.iloc[idx], self.name, dict(self.meta))

    @staticmethod
    def concat(sets: Sequence[SpotSet], name: str | None = None) -> SpotSet:
        """Concatenate sets (columns: those common to all)."""
        cols = [c for c in sets[0].table.columns if all(c in s.table.columns for s in sets)]
        return SpotSet(
            np.concatenate([s.cutouts for s in sets]),
            pd.concat([s.table[cols] for s in sets], ignore_index=True),
            name or "+".join(s.name for s in sets),
        )

    def save(self, path: str | Path) -> Path:
        """Write to a ``.npz`` (numeric columns only; no pickle)."""
        cols = {
            f"col_{c}": self.table[c].to_numpy()
            for c in self.table.columns
            if self.table[c].dtype.kind in "biuf"
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, cutouts=self.cutouts, name=np.array(self.name), **cols)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SpotSet:
        """Read a set written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            table = pd.DataFrame({k[4:]: z[k] for k in z.files if k.startswith("col_")})
            return cls(z["cutouts"], table, str(z["name"]))


@runtime_checkable
class CutoutSource(Protocol):
    """Where training cutouts come from: yields ``(cutouts (N, 32, 32), table)`` chunks.

    ``table`` holds the exact fit's descriptors (:data:`TARGET_COLUMNS`) of each cutout.
    """

    name: str

    def chunks(self) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        """Yield chunks of cutouts and their fit descriptors."""
        ...


def collect(source: CutoutSource | SpotSet, *, drop_invalid: bool = True) -> SpotSet:
    """Read a whole source into one :class:`SpotSet` (failed fits dropped unless told otherwise)."""
    if isinstance(source, SpotSet):
        return source.valid() if drop_invalid else source
    parts = [SpotSet(c, t, source.name) for c, t in source.chunks() if len(c)]
    if not parts:
        raise ValueError(f"source {source.name!r} yielded no cutouts")
    out = SpotSet.concat(parts, name=source.name)
    return out.valid() if drop_invalid else out


@dataclass
class ArraySource:
    """A source over arrays already in memory (tests, cached data sets)."""

    cutouts: np.ndarray
    table: pd.DataFrame
    name: str = "arrays"

    def chunks(self) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        """Yield the arrays as one chunk."""
        yield np.asarray(self.cutouts, dtype=np.float32), self.table


@dataclass
class FrameCutoutSource:
    """Cutouts of whole frames (real or simulated): peak search, cutouts, exact fit.

    Parameters
    ----------
    frames
        Iterable of 2D frames (arrays) or paths of TIFF files.
    name
        Label.
    find_peaks_kwargs
        Keyword arguments of ``laue_live.spots.find_peaks``.
    """

    frames: Iterable
    name: str = "frames"
    find_peaks_kwargs: dict = field(default_factory=dict)
    truth: Iterable | None = None

    def chunks(self) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        """One chunk per frame."""
        for frame in self.frames:
            if isinstance(frame, (str, Path)):
                frame = tifffile.imread(frame)
            peaks = _peaks_array(find_peaks(frame, **self.find_peaks_kwargs))
            if len(peaks) == 0:
                continue
            cutouts = extract_cutouts(frame, peaks)
            table = fit_descriptors(cutouts)
            table["row0"] = peaks[:, 0]
            table["col0"] = peaks[:, 1]
            yield cutouts, table


def _peaks_array(peaks) -> np.ndarray:
    """``find_peaks`` may return an (N, 2) array or a table with row0/col0 (or row/col) columns."""
    if isinstance(peaks, pd.DataFrame):
        for r, c in (("row0", "col0"), ("row", "col")):
            if r in peaks and c in peaks:
                return peaks[[r, c]].to_numpy(np.int64)
        raise ValueError(f"find_peaks table without row0/col0 columns: {list(peaks.columns)}")
    return np.asarray(peaks, dtype=np.int64).reshape(-1, 2)


def resample_uniform(
    sim: np.ndarray, *, bins: int = 12, per_bin: int = 2000, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Pick indices of a subset whose Sim is ~uniform (paper section 2.3.4).

    ``[0, 1]`` is cut into ``bins`` equal bins; each receives up to ``per_bin`` spots drawn at random
    from those whose Sim falls in it (all of them if fewer).
    """
    rng = rng or np.random.default_rng(0)
    b = np.clip((np.asarray(sim, dtype=np.float64) * bins).astype(np.int64), 0, bins - 1)
    keep = []
    for i in range(bins):
        idx = np.flatnonzero(b == i)
        if len(idx) > per_bin:
            idx = rng.choice(idx, per_bin, replace=False)
        keep.append(np.sort(idx))
    return np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
