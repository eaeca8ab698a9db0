"""Spot cutouts as the peak search hands them over: one spot in its neighbourhood, for CNN training.

:func:`render_spot_cutouts` renders one clean spot on a flat pedestal. Real cutouts hold more:
:func:`render_spot_scenes` adds what the exact fit (the CNN's label) and the network meet on real
detectors, each with its own probability so that a training stream covers every case:

* every shape class of :data:`laue_live.sim.SHAPES`, base widths 0.2-6 px: a third log-uniform
  over 0.5-6 px, 15% pixel-sharp (log-uniform 0.2-0.6 px: a quarter of the good spots of the BM32
  sCMOS frame ``AH12_CMT_r14_0200`` fit to sigma < 0.5 px), the rest log-normal around 1.2 px;
* the initial peak ``s`` off the brightest pixel by one pixel now and then (a plateau, a merged
  component, a noisy maximum), so that ``Pos - s`` reaches +-1.5 px;
* backgrounds: flat, sloped, or humped (a broad Gaussian: diffuse scattering, a nearby streak),
  on pedestals from ~10 ADU (MarCCD) to ~1500 ADU (sCMOS);
* Poisson noise (0.1-2 ADU per photon) and Gaussian read noise (0.5-6 ADU), saturation at 65535;
* neighbour spots entering the cutout (1-3, 4-22 px away, 0.05-3 times as bright);
* masked pixels: a dead region (zeros beyond a straight edge: a MarCCD's active-area edge, a
  module gap), the frame edge (pixels beyond it set to the median of the rest, as
  :func:`laue_live.spots.extract_cutouts` pads), isolated dead or hot pixels.

The truth is the main spot's: its position relative to ``s`` and its widths along rows and columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from laue_live._errors import SettingsError
from laue_live.sim._render import SATURATION, _sigma_rowcol
from laue_live.sim._shapes import SHAPES, components_of, render_components, sample_shape_params

__all__ = ["SceneConfig", "render_spot_scenes"]

_CANVAS = 40  # the cutout, the +-1 px jitter of s and room for s to move; neighbours are clipped to it


class SceneConfig:
    """Probabilities and ranges of :func:`render_spot_scenes` (defaults: the CNN training stream).

    Parameters
    ----------
    shape_mix
        Shape classes and weights (default: every class equally likely).
    width_range
        Range of the base width, px (of the wide and the typical spots).
    p_wide
        Fraction of base widths drawn log-uniform over ``width_range``.
    sharp_range, p_sharp
        Range (px) and fraction of pixel-sharp spots, widths log-uniform; the rest are log-normal
        around 1.2 px with spread 0.4, clipped to ``width_range``.
    peak_range
        Peak heights above the background are log-uniform in this range, ADU.
    pedestal_range
        Pedestal, log-uniform, ADU.
    p_slope, p_hump
        Probability of a sloped background, of a broad hump.
    gain_range, read_noise_range
        ADU per photon (log-uniform) and read noise (uniform), ADU.
    p_neighbours
        Probability that 1-3 other spots lie 4-22 px from the main one.
    p_jitter
        Probability that ``s`` is one pixel off the brightest pixel.
    p_dead_edge, p_frame_edge, p_bad_pixels
        Probability of a dead region, of the frame edge, of isolated dead or hot pixels.
    """

    def __init__(
        self,
        *,
        shape_mix=None,
        width_range: tuple[float, float] = (0.5, 6.0),
        p_wide: float = 1 / 3,
        sharp_range: tuple[float, float] = (0.2, 0.6),
        p_sharp: float = 0.15,
        peak_range: tuple[float, float] = (40.0, 60000.0),
        pedestal_range: tuple[float, float] = (10.0, 1500.0),
        p_slope: float = 0.3,
        p_hump: float = 0.25,
        gain_range: tuple[float, float] = (0.1, 2.0),
        read_noise_range: tuple[float, float] = (0.5, 6.0),
        p_neighbours: float = 0.35,
        p_jitter: float = 0.2,
        p_dead_edge: float = 0.04,
        p_frame_edge: float = 0.03,
        p_bad_pixels: float = 0.04,
    ) -> None:
        self.shape_mix = shape_mix if shape_mix is not None else {s: 1.0 for s in SHAPES}
        self.width_range = tuple(float(v) for v in width_range)
        self.p_wide = float(p_wide)
        self.sharp_range = tuple(float(v) for v in sharp_range)
        self.p_sharp = float(p_sharp)
        self.peak_range = tuple(float(v) for v in peak_range)
        self.pedestal_range = tuple(float(v) for v in pedestal_range)
        self.p_slope, self.p_hump = float(p_slope), float(p_hump)
        self.gain_range = tuple(float(v) for v in gain_range)
        self.read_noise_range = tuple(float(v) for v in read_noise_range)
        self.p_neighbours, self.p_jitter = float(p_neighbours), float(p_jitter)
        self.p_dead_edge, self.p_frame_edge = float(p_dead_edge), float(p_frame_edge)
        self.p_bad_pixels = float(p_bad_pixels)
        probs = (
            self.p_wide,
            self.p_sharp,
            self.p_wide + self.p_sharp,
            self.p_slope,
            self.p_hump,
            self.p_neighbours,
            self.p_jitter,
            self.p_dead_edge,
            self.p_frame_edge,
            self.p_bad_pixels,
        )
        if not all(0.0 <= p <= 1.0 for p in probs):
            raise SettingsError(f"probabilities must be in [0, 1], got {probs}")
        for name, (lo, hi) in (
            ("width_range", self.width_range),
            ("sharp_range", self.sharp_range),
            ("peak_range", self.peak_range),
            ("pedestal_range", self.pedestal_range),
            ("gain_range", self.gain_range),
        ):
            if not 0 < lo <= hi:
                raise SettingsError(f"{name} must be 0 < min <= max, got {(lo, hi)}")
        if not 0 <= self.read_noise_range[0] <= self.read_noise_range[1]:
            raise SettingsError(f"read_noise_range must be 0 <= min <= max, got {self.read_noise_range}")

    def to_dict(self) -> dict:
        """JSON-friendly form (stored with a model trained on the stream)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()}


def _log_uniform(rng, lo, hi, n):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


def _base_widths(rng, cfg: SceneConfig, n: int) -> np.ndarray:
    lo, hi = cfg.width_range
    w = np.clip(1.2 * np.exp(0.4 * rng.standard_normal(n)), lo, hi)
    u = rng.random(n)
    wide = u < cfg.p_wide
    w[wide] = _log_uniform(rng, lo, hi, wide.sum())
    sharp = (u >= cfg.p_wide) & (u < cfg.p_wide + cfg.p_sharp)
    w[sharp] = _log_uniform(rng, *cfg.sharp_range, sharp.sum())
    return w


def _paint(canvas: np.ndarray, comp: dict, spot_of: np.ndarray) -> None:
    """Add rendered components to ``canvas`` (n, C, C) in place (windows clipped to the canvas)."""
    size = canvas.shape[1]
    wide = (comp["w_major"] * (1 + np.abs(comp["skew"])) > 2.2) | (comp["eta"] > 0)
    for sel, half, ss in ((~wide, 10, 3), (wide, 20, 2)):
        if not sel.any():
            continue
        part = {k: v[sel] for k, v in comp.items()}
        win, r0, c0 = render_components(part, half=half, ss=ss)
        w = win.shape[1]
        rr = r0[:, None, None] + np.arange(w)[None, :, None]
        cc = c0[:, None, None] + np.arange(w)[None, None, :]
        ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
        flat = (spot_of[sel][:, None, None] * size + rr) * size + cc
        canvas.reshape(-1)[:] += np.bincount(flat[ok], weights=win[ok], minlength=canvas.size).astype(
            np.float32
        )


def _neighbours(rng, n: int, cfg: SceneConfig, row, col, peak) -> tuple[dict, np.ndarray]:
    """Components of neighbour spots (gaussian-like, 1-3 per chosen spot) and the spot of each."""
    has = rng.random(n) < cfg.p_neighbours
    k = np.where(has, rng.integers(1, 4, n), 0)
    owner = np.repeat(np.arange(n), k)
    m = len(owner)
    if m == 0:
        return {}, owner
    params = sample_shape_params(m, rng, {"gaussian": 0.6, "pseudo_voigt": 0.2, "elongated": 0.2})
    scale = _base_widths(rng, cfg, m) / np.sqrt(params["w_major"] * params["w_minor"]).to_numpy()
    params["w_major"] *= scale
    params["w_minor"] *= scale
    dist = rng.uniform(4.0, 22.0, m)
    phi = rng.uniform(0, 2 * np.pi, m)
    nrow, ncol = row[owner] + dist * np.sin(phi), col[owner] + dist * np.cos(phi)
    npeak = peak[owner] * _log_uniform(rng, 0.05, 3.0, m)
    amp = npeak * 2 * np.pi * params["w_major"].to_numpy() * params["w_minor"].to_numpy()
    return components_of(nrow, ncol, amp, params), owner


def _background(rng, n: int, cfg: SceneConfig, peak) -> np.ndarray:
    """Structured background above the pedestal (n, C, C), ADU: slopes and humps."""
    c = _CANVAS
    x = np.arange(c, dtype=np.float32) - c / 2
    bg = np.zeros((n, c, c), np.float32)
    slope = rng.random(n) < cfg.p_slope
    if slope.any():
        g = rng.normal(0, 1, (n, 2)) * _log_uniform(rng, 0.05, 0.005 * peak + 0.1, n)[:, None]
        g[~slope] = 0
        bg += (g[:, 0, None, None] * x[None, :, None] + g[:, 1, None, None] * x[None, None, :]).astype(
            np.float32
        )
        bg -= bg.min(axis=(1, 2), keepdims=True)
    hump = rng.random(n) < cfg.p_hump
    if hump.any():
        idx = np.flatnonzero(hump)
        h = len(idx)
        height = peak[idx] * _log_uniform(rng, 0.02, 0.6, h)
        width = rng.uniform(5.0, 25.0, h)
        cr, cc = rng.uniform(-24, 24, (2, h))
        gr = np.exp(-0.5 * ((x[None, :] - cr[:, None]) / width[:, None]) ** 2)
        gc = np.exp(-0.5 * ((x[None, :] - cc[:, None]) / width[:, None]) ** 2)
        bg[idx] += (height[:, None, None] * gr[:, :, None] * gc[:, None, :]).astype(np.float32)
    return bg


def _mask(rng, cut: np.ndarray, cfg: SceneConfig) -> np.ndarray:
    """Apply dead regions, frame edges and bad pixels to cutouts in place; return the kind (0: none)."""
    n, s, _ = cut.shape
    kind = np.zeros(n, np.int8)
    r = np.arange(s, dtype=np.float32)[:, None] - s // 2
    c = np.arange(s, dtype=np.float32)[None, :] - s // 2
    dead = rng.random(n) < cfg.p_dead_edge
    for i in np.flatnonzero(dead):  # zeros beyond a straight edge 4-15 px from s
        a = rng.uniform(0, 2 * np.pi)
        cut[i][r * np.sin(a) + c * np.cos(a) > rng.uniform(4.0, 15.0)] = 0
        kind[i] = 1
    edge = (rng.random(n) < cfg.p_frame_edge) & (kind == 0)
    for i in np.flatnonzero(edge):  # beyond the frame: median of the in-frame pixels
        d = int(rng.integers(3, 16))
        side = int(rng.integers(4))
        sel = [r < -d, r > d - 1, c < -d, c > d - 1][side] & np.ones((s, s), bool)
        cut[i][sel] = np.median(cut[i][~sel])
        kind[i] = 2
    bad = (rng.random(n) < cfg.p_bad_pixels) & (kind == 0)
    for i in np.flatnonzero(bad):  # 1-4 dead (0) or hot (saturated) pixels, away from s
        k = int(rng.integers(1, 5))
        pos = rng.integers(0, s, (k, 2))
        far = np.hypot(pos[:, 0] - s // 2, pos[:, 1] - s // 2) > 3
        cut[i][pos[far, 0], pos[far, 1]] = 0 if rng.random() < 0.5 else SATURATION
        kind[i] = 3
    return kind


def render_spot_scenes(
    n: int, rng=None, config: SceneConfig | None = None, *, size: int = 32, chunk: int = 1024
) -> tuple[np.ndarray, pd.DataFrame]:
    """Render ``n`` spot cutouts in their neighbourhood (see the module docstring) and their truth.

    Parameters
    ----------
    n
        Number of cutouts.
    rng
        ``numpy.random.Generator`` or seed.
    config
        :class:`SceneConfig` (default: the CNN training stream's).
    size
        Cutout side, px (even, at most 48).
    chunk
        Spots rendered per vectorised batch.

    Returns
    -------
    cutouts, truth
        ``(n, size, size)`` float32 ADU (integers in 0-65535) and a DataFrame with ``shape``,
        ``d_row, d_col`` (true position of the main spot minus ``s``, px), ``sigma_row,
        sigma_col`` (its widths, px), ``peak_height`` (ADU above the background), ``pedestal``,
        ``gain``, ``read_noise``, ``n_neighbours``, ``jitter`` (s moved off the brightest pixel),
        ``mask`` (0 none, 1 dead region, 2 frame edge, 3 bad pixels) and ``saturated``.
    """
    cfg = config or SceneConfig()
    if int(n) < 0 or size < 8 or size % 2 or size > 48:
        raise SettingsError(f"need n >= 0 and an even size 8-48, got n={n}, size={size}")
    rng = np.random.default_rng(rng)
    n = int(n)
    half = size // 2
    cutouts = np.empty((n, size, size), np.float32)
    parts = []
    for a in range(0, n, chunk):
        m = min(chunk, n - a)
        params = sample_shape_params(m, rng, cfg.shape_mix)
        scale = _base_widths(rng, cfg, m) / np.sqrt(params["w_major"] * params["w_minor"]).to_numpy()
        params["w_major"] = np.minimum(params["w_major"] * scale, 3 * cfg.width_range[1])
        params["w_minor"] = params["w_minor"] * scale
        row = _CANVAS / 2 + rng.uniform(-0.5, 0.5, m)
        col = _CANVAS / 2 + rng.uniform(-0.5, 0.5, m)
        peak = _log_uniform(rng, *cfg.peak_range, m)
        sat = params["shape"].to_numpy() == "saturated"
        peak[sat] = rng.uniform(1.3, 4.0, sat.sum()) * SATURATION
        amp = peak * 2 * np.pi * params["w_major"].to_numpy() * params["w_minor"].to_numpy()
        main = np.zeros((m, _CANVAS, _CANVAS), np.float32)
        comp = components_of(row, col, amp, params)
        _paint(main, comp, comp["spot"])
        signal = main + _background(rng, m, cfg, peak)
        ncomp, owner = _neighbours(rng, m, cfg, row, col, peak)
        if len(owner):
            _paint(signal, ncomp, owner[ncomp["spot"]])
        gain = _log_uniform(rng, *cfg.gain_range, m).astype(np.float32)
        read = rng.uniform(*cfg.read_noise_range, m).astype(np.float32)
        pedestal = _log_uniform(rng, *cfg.pedestal_range, m).astype(np.float32)
        img = (
            rng.poisson(np.maximum(signal, 0) / gain[:, None, None]).astype(np.float32) * gain[:, None, None]
        )
        img += (
            pedestal[:, None, None] + rng.standard_normal(img.shape, dtype=np.float32) * read[:, None, None]
        )
        img = np.clip(np.rint(img), 0, SATURATION)
        # s: brightest pixel of the main spot's footprint, now and then one pixel off
        foot = main >= 0.05 * main.reshape(m, -1).max(axis=1)[:, None, None]
        flat = np.where(foot, img, -1.0).reshape(m, -1).argmax(axis=1)
        sr, sc = flat // _CANVAS, flat % _CANVAS
        jit = rng.random(m) < cfg.p_jitter
        step = rng.integers(-1, 2, (m, 2))
        step[(step == 0).all(axis=1)] = (1, 0)
        sr = np.clip(sr + jit * step[:, 0], half + 1, _CANVAS - half - 1)
        sc = np.clip(sc + jit * step[:, 1], half + 1, _CANVAS - half - 1)
        rows = sr[:, None] - half + np.arange(size)[None, :]
        cols = sc[:, None] - half + np.arange(size)[None, :]
        cut = img[np.arange(m)[:, None, None], rows[:, :, None], cols[:, None, :]]
        saturated = (cut >= SATURATION).any(axis=(1, 2))
        mask = _mask(rng, cut, cfg)
        cutouts[a : a + m] = cut
        s_r, s_c = _sigma_rowcol(
            params["w_major"].to_numpy(), params["w_minor"].to_numpy(), params["angle_deg"].to_numpy()
        )
        parts.append(
            pd.DataFrame(
                {
                    "shape": params["shape"].to_numpy(),
                    "d_row": row - sr,
                    "d_col": col - sc,
                    "sigma_row": s_r,
                    "sigma_col": s_c,
                    "peak_height": peak,
                    "pedestal": pedestal,
                    "gain": gain,
                    "read_noise": read,
                    "n_neighbours": np.bincount(owner, minlength=m) if len(owner) else np.zeros(m, np.int64),
                    "jitter": jit,
                    "mask": mask,
                    "saturated": saturated,
                }
            )
        )
    truth = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return cutouts, truth
