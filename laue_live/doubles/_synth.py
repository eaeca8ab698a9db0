"""Synthetic double spots with known components, made from real and simulated single spots.

Two sources, mixed:

* **simulated**: two point-sampled axis-aligned Gaussians (the fit model) on a pedestal, with read
  and shot noise; the truth is exact.
* **real**: two good, isolated single spots of real BM32 frames (see :class:`RealSpotBank`), the
  second taken from its frame with an integer offset so that it lands at the wanted separation and
  direction, scaled to the wanted intensity ratio and added to the first (background removed).
  Its truth is the exact single-Gaussian fit of each real spot (positions to ~0.01-0.03 px).

Every example is composed on a 64 x 64 canvas, turned by a random element of the square's symmetry
group (90-degree rotations, reflections), and cut to 32 x 32 around its brightest pixel, exactly as
the peak search would cut it: the brightest pixel sits at cutout index (16, 16). Positions in the
truth table are cutout coordinates (0-based, pixel centres at integers); component 1 is the
brighter (larger integrated intensity).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from laue_live._rules import (
    CUTOUT_CENTRE,
    CUTOUT_SIZE,
    SATURATION,
    cosine_similarity,
    is_good_spot,
    sim_from_sim0,
)
from laue_live.doubles._fit import fit_one_gaussian

__all__ = ["RealSpotBank", "make_doubles", "TRUTH_COLUMNS"]

logger = logging.getLogger(__name__)

_CANVAS = 64
_C = _CANVAS // 2
# the brightest pixel of a canvas is sought where a whole cutout around it fits
_INSIDE = slice(CUTOUT_CENTRE, _CANVAS - CUTOUT_SIZE + CUTOUT_CENTRE + 1)

#: Columns of the truth table returned by :func:`make_doubles` (cutout coordinates, px; ADU px^2).
TRUTH_COLUMNS = ("n_spots", "row1", "col1", "sigma_row1", "sigma_col1", "amp1",
                 "row2", "col2", "sigma_row2", "sigma_col2", "amp2",
                 "separation", "ratio", "real")


@dataclass
class RealSpotBank:
    """Good, isolated single spots of real frames, with their exact single-Gaussian fits.

    Attributes
    ----------
    frames
        The frames (float32 arrays, ADU).
    spots
        One row per spot: ``frame`` (index into ``frames``), ``row0, col0`` (brightest pixel),
        ``row, col`` (fitted position, frame coordinates, 0-based), ``sigma_row, sigma_col`` (px),
        ``amp`` (integrated intensity, ADU px^2), ``background`` (ADU), ``noise`` (background
        standard deviation, ADU), ``sim0``.
    """

    frames: list[np.ndarray]
    spots: pd.DataFrame = field(repr=False)

    @classmethod
    def from_bm32(cls, data_dir, *, min_peak: float = 150.0, isolation: float = 20.0,
                  device="cpu") -> RealSpotBank:
        """Build the bank from the BM32 frames and LaueTools peak lists of ``data_dir``.

        Parameters
        ----------
        data_dir
            Folder with ``nw1_000*.tif`` and ``peaks_GaN_Si_nw1_000*_box16.csv`` (1-based, X = col).
        min_peak
            Smallest fitted peak height above background, ADU (dim spots carry little shape).
        isolation
            Minimum distance to any other listed peak, px (so that the window holds one spot).
        device
            Torch device of the single-Gaussian fits.
        """
        data_dir = Path(data_dir)
        frames, rows = [], []
        for fi, tif in enumerate(sorted(data_dir.glob("nw1_*.tif"))):
            frame = tifffile.imread(tif).astype(np.float32)
            frames.append(frame)
            csv = data_dir / f"peaks_GaN_Si_{tif.stem}_box16.csv"
            if not csv.exists():
                continue
            peaks = pd.read_csv(csv)
            pr = peaks["peak_Y"].to_numpy() - 1.0
            pc = peaks["peak_X"].to_numpy() - 1.0
            for r, c in zip(pr, pc, strict=True):
                dist = np.hypot(pr - r, pc - c)
                if np.sort(dist)[1:2].size and np.sort(dist)[1] < isolation:
                    continue
                ri, ci = int(round(r)), int(round(c))
                m = _CANVAS // 2 + 12
                if not (m <= ri < frame.shape[0] - m and m <= ci < frame.shape[1] - m):
                    continue
                win = frame[ri - 2:ri + 3, ci - 2:ci + 3]
                k = int(np.argmax(win))
                rows.append((fi, ri - 2 + k // 5, ci - 2 + k % 5))
        if not rows:
            return cls(frames, pd.DataFrame())
        idx = np.array(rows)
        lo, hi = CUTOUT_CENTRE, CUTOUT_SIZE - CUTOUT_CENTRE
        cut = np.stack([frames[f][r - lo:r + hi, c - lo:c + hi] for f, r, c in idx])
        fit = fit_one_gaussian(cut, device=device)
        p = fit.params
        model = _render(p[:, None, :5], (CUTOUT_SIZE, CUTOUT_SIZE))
        sim0 = cosine_similarity(cut - p[:, 5, None, None], model)  # SCIENCE.md's background-subtracted Sim0
        border = np.concatenate([cut[:, :3].reshape(len(cut), -1), cut[:, -3:].reshape(len(cut), -1)], 1)
        noise = 1.4826 * np.median(np.abs(border - np.median(border, 1, keepdims=True)), 1)
        height = p[:, 0] / (2 * np.pi * p[:, 3] * p[:, 4])
        df = pd.DataFrame({
            "frame": idx[:, 0], "row0": idx[:, 1], "col0": idx[:, 2],
            "row": idx[:, 1] - CUTOUT_CENTRE + p[:, 1], "col": idx[:, 2] - CUTOUT_CENTRE + p[:, 2],
            "sigma_row": p[:, 3], "sigma_col": p[:, 4], "amp": p[:, 0], "background": p[:, 5],
            "noise": np.maximum(noise, 1.0), "sim0": sim0, "height": height,
        })
        d_row, d_col = p[:, 1] - CUTOUT_CENTRE, p[:, 2] - CUTOUT_CENTRE
        good = (fit.converged & is_good_spot(sim_from_sim0(sim0), d_row, d_col) & (height >= min_peak)
                & (cut.max(axis=(1, 2)) < SATURATION) & (p[:, 3] < 4) & (p[:, 4] < 4))
        df = df[good].reset_index(drop=True)
        logger.info("real spot bank: %d good isolated spots of %d listed", len(df), len(idx))
        return cls(frames, df)

    def window(self, i: int, top: int, left: int) -> np.ndarray:
        """Return the ``_CANVAS``-square window of spot ``i``'s frame at (top, left), float64."""
        f = self.frames[int(self.spots["frame"].iat[i])]
        return f[top:top + _CANVAS, left:left + _CANVAS].astype(np.float64)


def _render(comp: np.ndarray, shape) -> np.ndarray:
    """Sum of point-sampled Gaussians (no background); ``comp`` (n, K, 5) = amp, row, col, s_r, s_c."""
    rr = np.arange(shape[0], dtype=np.float64)[None, None, :, None]
    cc = np.arange(shape[1], dtype=np.float64)[None, None, None, :]
    a, r, c, sr, sc = (comp[..., j][..., None, None] for j in range(5))
    g = a / (2 * np.pi * sr * sc) * np.exp(-0.5 * (((rr - r) / sr) ** 2 + ((cc - c) / sc) ** 2))
    return g.sum(axis=1)


def _d4(img: np.ndarray, pts: np.ndarray, k: int, flip: bool):
    """Apply rot90^k (then an up-down flip) to a square image and to (…, 2) row/col points on it."""
    n = img.shape[-1]
    pts = pts.copy()
    for _ in range(k):
        img = np.rot90(img)
        pts = np.stack([n - 1 - pts[..., 1], pts[..., 0]], axis=-1)
    if flip:
        img = img[::-1]
        pts = np.stack([n - 1 - pts[..., 0], pts[..., 1]], axis=-1)
    return np.ascontiguousarray(img), pts


def _sample_sizes(rng, n):
    s = np.exp(rng.uniform(np.log(0.6), np.log(2.0), size=(n, 2)))
    return s


def make_doubles(n: int, *, rng: np.random.Generator, bank: RealSpotBank | None = None,
                 real_fraction: float = 0.5, double_fraction: float = 1.0,
                 sep_range: tuple[float, float] = (0.5, 10.0), ratio_range: tuple[float, float] = (1.0, 20.0),
                 sep: np.ndarray | None = None, ratio: np.ndarray | None = None,
                 ) -> tuple[np.ndarray, pd.DataFrame]:
    """Make ``n`` cutouts, each holding one or two spots whose components are known.

    Parameters
    ----------
    n
        Number of cutouts.
    rng
        Random generator (all randomness comes from it).
    bank
        Real single spots; without it (or if empty) every example is simulated.
    real_fraction
        Fraction of examples built from real spots.
    double_fraction
        Fraction of examples that hold two spots (the rest hold one).
    sep_range, ratio_range
        Separation (px, uniform) and intensity ratio (strong / weak integrated intensity,
        log-uniform) ranges of the doubles; any direction (uniform angle).
    sep, ratio
        Optional (n,) fixed separations and ratios (override the ranges).

    Returns
    -------
    cutouts
        (n, 32, 32) float32, ADU, background included, brightest pixel at (16, 16).
    truth
        DataFrame with :data:`TRUTH_COLUMNS`: cutout-coordinate positions, widths and integrated
        intensities of component 1 (brighter) and 2 (NaN for singles), the actual ``separation``
        (px) and ``ratio`` (amp1 / amp2), and whether the example is ``real``.
    """
    use_real = bank is not None and len(bank.spots) >= 2
    is_double = rng.random(n) < double_fraction
    is_real = (rng.random(n) < real_fraction) & use_real
    seps = sep if sep is not None else rng.uniform(*sep_range, size=n)
    ratios = ratio if ratio is not None else np.exp(rng.uniform(*np.log(ratio_range), size=n))
    theta = rng.uniform(0, 2 * np.pi, size=n)
    out = np.empty((n, CUTOUT_SIZE, CUTOUT_SIZE), np.float32)
    truth = np.full((n, len(TRUTH_COLUMNS)), np.nan)
    for i in range(n):
        if is_real[i]:
            canvas, comps = _real_canvas(rng, bank, bool(is_double[i]), seps[i], ratios[i], theta[i])
        else:
            canvas, comps = _sim_canvas(rng, bool(is_double[i]), seps[i], ratios[i], theta[i])
        k = int(rng.integers(4))
        canvas, pts = _d4(canvas, comps[:, 1:3], k, bool(rng.integers(2)))
        comps = comps.copy()
        comps[:, 1:3] = pts
        if k % 2:  # an odd number of quarter turns swaps the row and column widths
            comps[:, [3, 4]] = comps[:, [4, 3]]
        centre = canvas[_INSIDE, _INSIDE]
        j = int(np.argmax(centre))
        pr, pc = _INSIDE.start + j // centre.shape[1], _INSIDE.start + j % centre.shape[1]
        top, left = pr - CUTOUT_CENTRE, pc - CUTOUT_CENTRE
        out[i] = canvas[top:top + CUTOUT_SIZE, left:left + CUTOUT_SIZE]
        comps[:, 1] -= top
        comps[:, 2] -= left
        order = np.argsort(-comps[:, 0])
        comps = comps[order]
        row = truth[i]
        row[0] = len(comps)
        row[1:6] = comps[0, [1, 2, 3, 4, 0]]
        if len(comps) == 2:
            row[6:11] = comps[1, [1, 2, 3, 4, 0]]
            row[11] = np.hypot(*(comps[0, 1:3] - comps[1, 1:3]))
            row[12] = comps[0, 0] / comps[1, 0]
        row[13] = float(is_real[i])
    df = pd.DataFrame(truth, columns=list(TRUTH_COLUMNS))
    df["n_spots"] = df["n_spots"].astype(np.int64)
    df["real"] = df["real"].astype(bool)
    return out, df


def _noise(rng, clean: np.ndarray, read: float, gain: float) -> np.ndarray:
    var = read ** 2 + gain * np.maximum(clean, 0.0)
    return clean + rng.normal(size=clean.shape) * np.sqrt(var)


def _sim_canvas(rng, double: bool, sep: float, ratio: float, theta: float):
    """Simulate one or two Gaussians on a pedestal: canvas and (K, 5) amp, row, col, s_r, s_c."""
    sizes = _sample_sizes(rng, 2)
    height = np.exp(rng.uniform(np.log(300.0), np.log(30000.0)))
    amp1 = height * 2 * np.pi * sizes[0, 0] * sizes[0, 1]
    r1, c1 = _C + rng.uniform(-0.5, 0.5, size=2)
    comps = [[amp1, r1, c1, sizes[0, 0], sizes[0, 1]]]
    if double:
        amp2 = amp1 / ratio
        comps.append([amp2, r1 + sep * np.sin(theta), c1 + sep * np.cos(theta), sizes[1, 0], sizes[1, 1]])
    comps = np.array(comps)
    pedestal = rng.uniform(1000.0, 1100.0)
    signal = _render(comps[None], (_CANVAS, _CANVAS))[0]
    canvas = pedestal + _noise(rng, signal, rng.uniform(2.5, 5.0), rng.uniform(0.5, 2.0))
    return np.minimum(canvas, SATURATION), comps


def _real_canvas(rng, bank: RealSpotBank, double: bool, sep: float, ratio: float, theta: float):
    """One or two real spots composed on a canvas; returns canvas and (K, 5) amp, row, col, s_r, s_c."""
    spots = bank.spots
    a = int(rng.integers(len(spots)))
    sa = spots.iloc[a]
    top, left = int(sa.row0) - _C, int(sa.col0) - _C
    base = bank.window(a, top, left)
    pa = np.array([sa.amp, sa.row - top, sa.col - left, sa.sigma_row, sa.sigma_col])
    if not double:
        return base, pa[None]
    b = int(rng.integers(len(spots) - 1))
    b += b >= a
    sb = spots.iloc[b]
    # strong (a) and weak (b) scaled down (never up: that would amplify their noise) to the ratio
    strong = min(sa.amp, ratio * sb.amp)
    ka, kb = strong / sa.amp, strong / (ratio * sb.amp)
    want_r, want_c = pa[1] + sep * np.sin(theta), pa[2] + sep * np.cos(theta)
    tb, lb = int(round(sb.row - want_r)), int(round(sb.col - want_c))
    frame_b = bank.frames[int(sb.frame)]
    tb = int(np.clip(tb, 0, frame_b.shape[0] - _CANVAS))
    lb = int(np.clip(lb, 0, frame_b.shape[1] - _CANVAS))
    other = bank.window(b, tb, lb)
    pb = np.array([sb.amp * kb, sb.row - tb, sb.col - lb, sb.sigma_row, sb.sigma_col])
    pa = pa.copy()
    pa[0] *= ka
    canvas = sa.background + ka * (base - sa.background) + kb * (other - sb.background)
    # keep at least one real background's noise after the scaling
    left_var = sa.noise ** 2 - (ka * sa.noise) ** 2 - (kb * sb.noise) ** 2
    if left_var > 0:
        canvas = canvas + rng.normal(size=canvas.shape) * np.sqrt(left_var)
    return np.minimum(canvas, SATURATION), np.stack([pa, pb])
