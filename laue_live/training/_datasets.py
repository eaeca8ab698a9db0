"""The five evaluation datasets (like the paper's D1-D5): simulated frames and the real BM32 frames.

Each dataset is a set of whole frames run through the same pipeline as live data
(:func:`laue_live.spots.prepare_frame`: automatic mask, peak search, 32 x 32 cutouts with masked
pixels filled by the local median -> exact Gaussian fit with the pixel mask = ground truth);
simulated frames also give the true spot centres (``true_d_row``, ``true_d_col``: truth position
minus initial peak, px). They differ as the paper's do: material, strain and spot-shape mix, and D2
is nearly all bad spots.

The simulator is used here, in :mod:`laue_live.training`, and never by the live path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from laue_live._rules import is_good_spot
from laue_live.cnn import SpotSet, collect
from laue_live.io import read_frame
from laue_live.sim import BM32_CALIBRATION, RenderConfig, random_rotation, render_frame, simulate_spots
from laue_live.spots import fit_descriptors, prepare_frame

__all__ = [
    "DatasetSpec", "DATASETS", "SimFrameSource", "RealFrameSource", "build_dataset", "build_datasets",
    "frame_cutouts",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetSpec:
    """Recipe of one dataset.

    Parameters
    ----------
    name
        Short label (``D1`` ...).
    description
        What it mimics.
    material
        Simulator material name.
    shape_mix
        Simulator shape-mix preset or ``{class: weight}``.
    grains_per_frame
        Random orientations superposed per frame (polycrystal footprint; more overlaps).
    strain
        Standard deviation of random deviatoric strain components per grain.
    n_spots
        Target number of spot candidates.
    real_frames
        Paths of real frames to include (their spots count towards ``n_spots``).
    sigma_median
        Median base spot width, px.
    peak_max
        Peak height of a spot of relative intensity 1, ADU (lower: fainter, noisier spots).
    seed
        Seed of the dataset's random generator.
    """

    name: str
    description: str
    material: str
    shape_mix: str | tuple = "bm32"
    grains_per_frame: int = 1
    strain: float = 0.0
    n_spots: int = 5000
    real_frames: tuple[str, ...] = ()
    sigma_median: float = 1.1
    peak_max: float = 45000.0
    seed: int = 0


_D2_MIX = (("split", 0.5), ("elongated", 0.5))


def _bm32(name: str) -> str:
    return str(Path(__file__).resolve().parents[3] / "shared" / "data" / "bm32" / name)


#: The five datasets of the evaluation (see docs/report/REPORT.md).
DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        "D1",
        "Si single crystals, clean Gaussian-like spots (Sim skewed to 1)",
        "Si",
        "clean",
        grains_per_frame=2,
        strain=1e-5,
        seed=101,
    ),
    DatasetSpec(
        "D2",
        "deformed Cu polycrystal: split/streaked/asymmetric spots, many overlaps (nearly all bad)",
        "Cu",
        _D2_MIX,
        grains_per_frame=8,
        strain=2e-3,
        sigma_median=1.0,
        peak_max=150.0,
        seed=102,
    ),
    DatasetSpec(
        "D3", "strained Ge, BM32-like shape mix", "Ge", "bm32", grains_per_frame=2, strain=1e-3, seed=103
    ),
    DatasetSpec(
        "D4",
        "real BM32 frames (GaN nanowires on Si) + simulated Si, broad shape mix",
        "Si",
        "broad",
        grains_per_frame=2,
        strain=5e-4,
        seed=104,
        real_frames=("nw1_0000.tif", "nw1_0001.tif"),
    ),
    DatasetSpec(
        "D5",
        "thick Al2O3 crystal: depth streaks and elongated spots",
        "Al2O3",
        "thick",
        grains_per_frame=1,
        strain=2e-4,
        sigma_median=1.3,
        seed=105,
    ),
)


def _match_truth(
    peaks: np.ndarray, truth: pd.DataFrame, radius: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """Find offsets (truth centre - initial peak) of the nearest truth spot within ``radius``; NaN if none."""
    if len(truth) == 0 or len(peaks) == 0:
        nan = np.full(len(peaks), np.nan)
        return nan, nan.copy()
    tr = truth[["row", "col"]].to_numpy(np.float64)
    d = peaks[:, None, :].astype(np.float64) - tr[None]
    dist = np.hypot(d[..., 0], d[..., 1])
    j = dist.argmin(axis=1)
    ok = dist[np.arange(len(peaks)), j] <= radius
    dr = np.where(ok, tr[j, 0] - peaks[:, 0], np.nan)
    dc = np.where(ok, tr[j, 1] - peaks[:, 1], np.nan)
    return dr, dc


@dataclass
class SimFrameSource:
    """A :class:`~laue_live.cnn.CutoutSource` of simulated frames for a :class:`DatasetSpec`."""

    spec: DatasetSpec
    n_spots: int | None = None
    max_frames: int = 400
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.spec.name

    def chunks(self) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        """Render frames until ``n_spots`` candidates were found; yield cutouts + fit + truth per frame."""
        spec = self.spec
        target = self.n_spots or spec.n_spots
        rng = np.random.default_rng(spec.seed)
        mix = dict(spec.shape_mix) if isinstance(spec.shape_mix, tuple) else spec.shape_mix
        cfg = RenderConfig(shape_mix=mix, sigma_median=spec.sigma_median, peak_max=spec.peak_max)
        found = 0
        for _ in range(self.max_frames):
            if found >= target:
                break
            parts = []
            for g in range(spec.grains_per_frame):
                e = rng.normal(0, spec.strain, (3, 3)) if spec.strain > 0 else None
                if e is not None:
                    e = 0.5 * (e + e.T)
                    e -= np.trace(e) / 3 * np.eye(3)
                df = simulate_spots(spec.material, random_rotation(rng), BM32_CALIBRATION, strain=e)
                df["intensity"] *= rng.uniform(0.3, 1.0)
                df["grain"] = g
                parts.append(df)
            rf = render_frame(pd.concat(parts, ignore_index=True), cfg, rng, BM32_CALIBRATION.frame_shape)
            peaks, cut, table = frame_cutouts(rf.frame)
            if len(peaks) == 0:
                continue
            table["true_d_row"], table["true_d_col"] = _match_truth(peaks, rf.truth)
            table["real"] = False
            found += len(cut)
            yield cut, table


def frame_cutouts(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Return the cutouts the live path hands over for ``frame``, and the exact fit of each.

    :func:`laue_live.spots.prepare_frame` with its defaults (automatic mask of saturated pixels,
    local background/noise peak search, masked pixels filled with the local median), then
    :func:`laue_live.spots.fit_descriptors` with the cutouts' pixel mask. Returns ``(peaks (N, 2)
    int64, cutouts (N, 32, 32) float32 ADU, fit table)``.
    """
    prep = prepare_frame(frame)
    return prep.peaks, prep.cutouts, fit_descriptors(prep.cutouts, mask=prep.pixel_mask)


@dataclass
class RealFrameSource:
    """A :class:`~laue_live.cnn.CutoutSource` of real frames: no truth, the exact fit as ground truth.

    ``paths``: any frame file :func:`laue_live.io.read_frame` reads.
    """

    paths: tuple[str, ...]
    name: str = "real"

    def chunks(self) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        """One chunk per frame."""
        for p in self.paths:
            _, cut, table = frame_cutouts(read_frame(p))
            table["true_d_row"] = np.nan
            table["true_d_col"] = np.nan
            table["real"] = True
            yield cut, table


def build_dataset(
    spec: DatasetSpec, *, n_spots: int | None = None, bm32_dir: str | Path | None = None
) -> SpotSet:
    """Render, peak-search and fit one dataset (failed fits dropped)."""
    parts = []
    if spec.real_frames:
        root = Path(bm32_dir) if bm32_dir else Path(_bm32("x")).parent
        paths = tuple(str(root / f) for f in spec.real_frames)
        if all(Path(p).is_file() for p in paths):
            parts.append(collect(RealFrameSource(paths, spec.name)))
        else:
            logger.warning("real frames for %s not found under %s: dataset without them", spec.name, root)
    n_real = sum(len(p) for p in parts)
    target = (n_spots or spec.n_spots) - n_real
    parts.append(collect(SimFrameSource(spec, n_spots=max(target, 1))))
    out = SpotSet.concat(parts, name=spec.name)
    out.meta = {"description": spec.description, "n_real": n_real}
    return out


def build_datasets(
    out_dir: str | Path,
    *,
    n_spots: int | None = None,
    specs=DATASETS,
    bm32_dir: str | Path | None = None,
    progress: bool = True,
) -> list[SpotSet]:
    """Build (or load if cached in ``out_dir``) every dataset; cached as ``<name>.npz``."""
    out_dir = Path(out_dir)
    sets = []
    for spec in tqdm(specs, desc="datasets", disable=not progress):
        path = out_dir / f"{spec.name}.npz"
        if path.is_file():
            s = SpotSet.load(path)
            n_real = int(s.table["real"].sum()) if "real" in s.table else 0
            s.meta = {"description": spec.description, "n_real": n_real}
        else:
            s = build_dataset(spec, n_spots=n_spots, bm32_dir=bm32_dir)
            s.save(path)
        sets.append(s)
        logger.info(
            "%s: %d spots, %.0f%% good",
            spec.name,
            len(s),
            100 * is_good_spot(s.table["sim"], s.table["d_row"], s.table["d_col"]).mean(),
        )
    return sets
