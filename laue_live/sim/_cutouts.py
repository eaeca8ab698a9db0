"""32 x 32 spot cutouts with known truth, for training and testing descriptors (CNN, double spots).

Each spot is rendered on a larger noisy canvas with the same model as full frames; the cutout is
then taken exactly as the pipeline does: around the brightest pixel ``s`` of the spot, rows
``s_r - 16 .. s_r + 15`` and columns ``s_c - 16 .. s_c + 15``, so ``s`` sits at index ``[16, 16]``.
The truth gives the true position relative to ``s`` (``d_row = row - s_r``), which is what the
descriptor ``Pos - s`` should recover.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from laue_live._errors import SettingsError
from laue_live.sim._render import SATURATION, _sigma_rowcol
from laue_live.sim._shapes import components_of, render_components, sample_shape_params

__all__ = ["render_spot_cutouts"]


def render_spot_cutouts(
    n: int,
    shape_mix="bm32",
    rng=None,
    *,
    size: int = 32,
    peak_range: tuple[float, float] = (30.0, 40000.0),
    background_range: tuple[float, float] = (1000.0, 1150.0),
    sigma_median: float = 1.1,
    sigma_spread: float = 0.3,
    offset_range: float = 0.5,
    split_range: tuple[float, float] = (1.2, 4.0),
    gain: float = 0.25,
    read_noise: float = 1.5,
    chunk: int = 1024,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Render ``n`` noisy spot cutouts and their truth.

    Parameters
    ----------
    n
        Number of cutouts.
    shape_mix
        Preset name or ``{shape class: weight}`` (see :data:`laue_live.sim.SHAPE_MIX_PRESETS`);
        ``{"split": 1}`` gives only double spots.
    rng
        ``numpy.random.Generator`` or seed.
    size
        Cutout side, px (even).
    peak_range
        Peak heights above background are log-uniform in this range, ADU (saturated spots exceed
        65535 regardless).
    background_range
        Uniform range of the local level (pedestal + background), ADU.
    sigma_median, sigma_spread
        Median width (px) and log-normal spread of the spots.
    offset_range
        The true position is drawn uniformly within +-offset_range px of a pixel centre.
    split_range
        Distance range of the two components of split spots, px.
    gain, read_noise
        ADU per photon (Poisson noise) and Gaussian read noise, ADU.
    chunk
        Spots rendered per vectorised batch.

    Returns
    -------
    cutouts, truth
        ``(n, size, size)`` float32 ADU values (integers, clipped at 65535) and a DataFrame with
        per cutout: ``shape``, ``row0, col0`` (index of ``s`` in the cutout, = size // 2),
        ``d_row, d_col`` (true position minus ``s``, px), ``centroid_d_row, centroid_d_col``,
        ``d_row2, d_col2`` (second component of a split spot, NaN otherwise), ``sigma_row,
        sigma_col, w_major, w_minor, angle_deg, eta, skew, streak_length, split_ratio``,
        ``amplitude`` (integrated ADU), ``peak_height`` (ADU above background), ``background``
        and ``saturated``.
    """
    if int(n) < 0 or size < 8 or size % 2:
        raise SettingsError(f"need n >= 0 and an even size >= 8, got n={n}, size={size}")
    if not (0 < peak_range[0] <= peak_range[1]) or not (0 <= background_range[0] <= background_range[1]):
        raise SettingsError("peak_range must be 0 < min <= max and background_range 0 <= min <= max (ADU)")
    if not (0 <= offset_range <= 1) or gain <= 0 or read_noise < 0:
        raise SettingsError("offset_range must be in [0, 1] px, gain > 0, read_noise >= 0")
    rng = np.random.default_rng(rng)
    n = int(n)
    half = size // 2
    canvas = 2 * size  # streaks (<= 12 px) and split partners (<= 4 px) keep the brightest pixel inside
    centre = canvas // 2
    cutouts = np.empty((n, size, size), np.float32)
    parts = []
    for a in range(0, n, chunk):
        m = min(chunk, n - a)
        params = sample_shape_params(m, rng, shape_mix, sigma_median, sigma_spread, split_range=split_range)
        row = centre + rng.uniform(-offset_range, offset_range, m)
        col = centre + rng.uniform(-offset_range, offset_range, m)
        peak = np.exp(rng.uniform(np.log(peak_range[0]), np.log(peak_range[1]), m))
        sat = params["shape"].to_numpy() == "saturated"
        peak[sat] = rng.uniform(1.3, 4.0, sat.sum()) * SATURATION
        bg = rng.uniform(*background_range, m)
        amplitude = peak * 2 * np.pi * params["w_major"].to_numpy() * params["w_minor"].to_numpy()
        comp = components_of(row, col, amplitude, params)
        win, r0, c0 = render_components(comp, half=10, ss=3)
        noiseless = np.zeros((m, canvas, canvas), np.float32)
        w = win.shape[1]
        for i in range(len(win)):  # place components (clipped to the canvas)
            j, ra, ca = comp["spot"][i], r0[i], c0[i]
            rs, cs = max(ra, 0), max(ca, 0)
            re, ce = min(ra + w, canvas), min(ca + w, canvas)
            if rs < re and cs < ce:
                noiseless[j, rs:re, cs:ce] += win[i, rs - ra : re - ra, cs - ca : ce - ca]
        img = rng.poisson(noiseless / gain).astype(np.float32) * np.float32(gain)
        img += bg[:, None, None].astype(np.float32)
        sd = np.sqrt(np.maximum(bg - 1000.0, 0) * gain + read_noise**2).astype(np.float32)
        img += rng.standard_normal(img.shape, dtype=np.float32) * sd[:, None, None]
        img = np.clip(np.rint(img), 0, SATURATION)
        # brightest pixel s of the spot (as the peak search takes it from the spot's connected
        # component): searched over the spot's footprint, not over far-away noise
        peak_nl = noiseless.reshape(m, -1).max(axis=1)
        footprint = noiseless >= 0.05 * peak_nl[:, None, None]
        flat = np.where(footprint, img, -1.0).reshape(m, -1).argmax(axis=1)
        sr = np.clip(flat // canvas, half, canvas - half)
        sc = np.clip(flat % canvas, half, canvas - half)
        for i in range(m):
            cutouts[a + i] = img[i, sr[i] - half : sr[i] + half, sc[i] - half : sc[i] + half]
        # truth
        tot = noiseless.sum(axis=(1, 2))
        grid = np.arange(canvas)
        cr = (noiseless.sum(axis=2) * grid).sum(axis=1) / np.maximum(tot, 1e-30)
        cc = (noiseless.sum(axis=1) * grid).sum(axis=1) / np.maximum(tot, 1e-30)
        s_r, s_c = _sigma_rowcol(
            params["w_major"].to_numpy(), params["w_minor"].to_numpy(), params["angle_deg"].to_numpy()
        )
        split = params["shape"].to_numpy() == "split"
        cut_sat = np.array([cutouts[a + i].max() >= SATURATION for i in range(m)])
        parts.append(
            pd.DataFrame(
                {
                    "shape": params["shape"].to_numpy(),
                    "row0": np.full(m, half, np.int32),
                    "col0": np.full(m, half, np.int32),
                    "d_row": row - sr,
                    "d_col": col - sc,
                    "centroid_d_row": cr - sr,
                    "centroid_d_col": cc - sc,
                    "d_row2": np.where(split, row + params["split_d_row"].to_numpy() - sr, np.nan),
                    "d_col2": np.where(split, col + params["split_d_col"].to_numpy() - sc, np.nan),
                    "sigma_row": s_r,
                    "sigma_col": s_c,
                    "w_major": params["w_major"].to_numpy(),
                    "w_minor": params["w_minor"].to_numpy(),
                    "angle_deg": params["angle_deg"].to_numpy(),
                    "eta": params["eta"].to_numpy(),
                    "skew": params["skew"].to_numpy(),
                    "streak_length": params["streak_length"].to_numpy(),
                    "split_ratio": params["split_ratio"].to_numpy(),
                    "amplitude": amplitude,
                    "peak_height": noiseless.reshape(m, -1).max(axis=1),
                    "background": bg,
                    "saturated": cut_sat,
                }
            )
        )
    truth = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return cutouts, truth
