"""Render a BM32-like detector frame (uint16) and its ground truth from a spot list.

Frame model, in ADU: ``pedestal + smooth background + spots``, with Poisson noise of the photon
signal (``gain`` ADU per photon) and Gaussian read noise, rounded and clipped at 65535. Spots are
rendered in small windows around each spot (see :mod:`laue_live.sim._shapes`) and the background
noise uses one normal draw per pixel (Poisson is close to normal at these counts), which keeps a
full 2018 x 2016 frame well under 0.5 s on one core (``benchmarks/bench_render.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from laue_live._errors import SettingsError
from laue_live.sim._shapes import (
    components_of,
    normalize_shape_mix,
    render_components,
    sample_shape_params,
    stretch_widths,
)

__all__ = ["RenderConfig", "RenderedFrame", "render_frame", "SATURATION", "TRUTH_COLUMNS"]

SATURATION = 65535

#: Columns of :attr:`RenderedFrame.truth` (besides pass-through columns of the spot list).
TRUTH_COLUMNS = (
    "spot",
    "row",
    "col",
    "centroid_row",
    "centroid_col",
    "shape",
    "amplitude",
    "peak_height",
    "background",
    "sigma_row",
    "sigma_col",
    "w_major",
    "w_minor",
    "angle_deg",
    "eta",
    "skew",
    "streak_length",
    "streak_dir_row",
    "streak_dir_col",
    "split_d_row",
    "split_d_col",
    "split_ratio",
    "saturated",
)
#: The per-spot shape parameters, copied into the truth table as drawn.
_SHAPE_PARAM_COLUMNS = TRUTH_COLUMNS[TRUTH_COLUMNS.index("w_major") : TRUTH_COLUMNS.index("split_ratio") + 1]


@dataclass
class RenderConfig:
    """Parameters of frame rendering (all intensities in ADU, lengths in px).

    Parameters
    ----------
    shape_mix
        Preset name (``"clean"``, ``"bm32"``, ``"broad"``, ``"thick"``, ``"deformed"``) or
        ``{shape class: weight}``; see :mod:`laue_live.sim._shapes`.
    sigma_median, sigma_spread
        Median base width of the spots (px) and its log-normal spread.
    peak_max
        Peak height above background of a spot of relative intensity 1, ADU.
    intensity_gamma
        Spot peaks scale as ``intensity ** intensity_gamma``. The kinematic model spans ~4 decades
        for one Si grain, the measured BM32 frames ~2: air and window absorption at low energy
        and the detector's falling efficiency at high energy, which the model leaves out, compress
        it. 0.4 with ``peak_max`` 60000 reproduces the peak-height quantiles of ``nw1_0000.tif``.
    intensity_jitter
        Log-normal spread of spot intensities around the physical model (surface quality,
        absorption, extinction that the model ignores).
    min_peak
        Spots whose peak would be below this (ADU above background) are not rendered nor listed.
    pedestal
        Detector offset, ADU (BM32 sCMOS: ~1000; a MarCCD ~10).
    background
        Height of the smooth diffuse background hump above the pedestal, ADU (its photons carry
        their Poisson noise: a fluorescence hump is ``background=700``).
    hump_width
        Standard deviation of the hump, as a fraction of the frame's rows and columns.
    gain
        ADU per detected photon (sets the Poisson noise); 0.25 matches the real frames' noise.
    read_noise
        Gaussian read noise, ADU.
    window_half
        Half size of the rendering window of one spot component, px.
    supersample
        Sub-pixel samples per axis for pixel integration.
    obliquity
        Stretch spots radially by ``1 / cos`` of the rays' incidence on the detector (when the spot
        list has ``obliquity, radial_row, radial_col``): spot widths grow from the centre to the
        corners as on the real frames (median fitted width 1.1 -> 1.3 px on ``nw1_0001``).
    active_radius
        Pixels further than this from the frame's centre read 0 (a MarCCD's round window), px;
        None: the whole frame is active.
    """

    shape_mix: str | dict[str, float] = "bm32"
    sigma_median: float = 1.0
    sigma_spread: float = 0.25
    peak_max: float = 60000.0
    intensity_gamma: float = 0.4
    intensity_jitter: float = 0.4
    min_peak: float = 8.0
    pedestal: float = 1000.0
    background: float = 35.0
    gain: float = 0.25
    read_noise: float = 1.5
    window_half: int = 10
    supersample: int = 3
    obliquity: bool = True
    hump_width: float = 0.3
    active_radius: float | None = None

    @classmethod
    def for_detector(cls, detector, **kw) -> RenderConfig:
        """Return the settings of a detector preset (:func:`laue_live.geometry.get_detector`).

        Its offset becomes ``pedestal`` and its round window ``active_radius``; ``kw`` override any
        field.
        """
        from laue_live.geometry import get_detector

        d = get_detector(detector)
        return cls(**{"pedestal": d.offset, "active_radius": d.active_radius, **kw})

    def __post_init__(self) -> None:
        normalize_shape_mix(self.shape_mix)
        for name in ("sigma_median", "peak_max", "gain", "intensity_gamma"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise SettingsError(f"RenderConfig.{name} must be a finite number > 0, got {v!r}")
        for name in ("sigma_spread", "intensity_jitter", "min_peak", "pedestal", "background", "read_noise"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise SettingsError(f"RenderConfig.{name} must be a finite number >= 0, got {v!r}")
        if self.pedestal + self.background >= SATURATION:
            raise SettingsError("pedestal + background must stay below the 65535 ADU saturation")
        if not (np.isfinite(self.hump_width) and self.hump_width > 0):
            raise SettingsError(f"RenderConfig.hump_width must be > 0, got {self.hump_width!r}")
        rad = self.active_radius
        if rad is not None and not (np.isfinite(rad) and rad > 0):
            raise SettingsError(f"RenderConfig.active_radius must be > 0 px or None, got {rad!r}")
        if not (3 <= int(self.window_half) <= 40) or not (1 <= int(self.supersample) <= 8):
            raise SettingsError("window_half must be in [3, 40] px and supersample in [1, 8]")

    def to_dict(self) -> dict:
        """Plain-JSON form (metadata)."""
        return asdict(self)


@dataclass
class RenderedFrame:
    """A rendered frame and its ground truth.

    Attributes
    ----------
    frame
        ``(rows, cols)`` uint16 detector image, ADU.
    truth
        One row per rendered spot: :data:`TRUTH_COLUMNS` (true position ``row, col``, 0-based, pixel
        centres at integers; shape class and parameters) plus the spot-list columns that came in
        (``h, k, l, energy_keV, grain, ...``).
    background
        ``(rows, cols)`` float32 noiseless pedestal + background, ADU (``None`` if not kept).
    """

    frame: np.ndarray
    truth: pd.DataFrame
    background: np.ndarray | None = None


def _smooth_background(shape: tuple[int, int], cfg: RenderConfig, rng: np.random.Generator) -> np.ndarray:
    rows, cols = shape
    r = np.arange(rows, dtype=np.float32)
    c = np.arange(cols, dtype=np.float32)
    # one broad hump (diffuse scattering, fluorescence) plus a weak tilt, as on BM32 frames
    r0 = rows * rng.uniform(0.35, 0.5)
    c0 = cols * rng.uniform(0.4, 0.6)
    gr = np.exp(-0.5 * ((r - r0) / (cfg.hump_width * rows)) ** 2)
    gc = np.exp(-0.5 * ((c - c0) / (cfg.hump_width * cols)) ** 2)
    tilt = np.float32(0.1 * cfg.background) * (c / cols)
    bg = np.float32(cfg.background) * gr[:, None] * gc[None, :]
    bg += tilt[None, :]
    bg += np.float32(cfg.pedestal)
    return bg


def _shape_params(spots: pd.DataFrame, rng, cfg: RenderConfig, streak) -> pd.DataFrame:
    # a ``shape_mix`` column (preset name per spot, e.g. per grain) overrides the config's mix
    n = len(spots)
    if "shape_mix" not in spots.columns:
        return sample_shape_params(n, rng, cfg.shape_mix, cfg.sigma_median, cfg.sigma_spread, streak)
    mixes = spots["shape_mix"].fillna("").astype(str).to_numpy()
    parts, order = [], []
    for mix in sorted(set(mixes)):
        idx = np.flatnonzero(mixes == mix)
        sub = None if streak is None else streak[idx]
        parts.append(
            sample_shape_params(len(idx), rng, mix or cfg.shape_mix, cfg.sigma_median, cfg.sigma_spread, sub)
        )
        order.append(idx)
    params = pd.concat(parts, ignore_index=True)
    return params.iloc[np.argsort(np.concatenate(order), kind="stable")].reset_index(drop=True)


def _sigma_rowcol(w_major, w_minor, angle_deg):
    a = np.radians(angle_deg)
    # major axis direction (sin a, cos a) in (row, col)
    sr = np.sqrt((w_major * np.sin(a)) ** 2 + (w_minor * np.cos(a)) ** 2)
    sc = np.sqrt((w_major * np.cos(a)) ** 2 + (w_minor * np.sin(a)) ** 2)
    return sr, sc


def render_frame(
    spots: pd.DataFrame,
    config: RenderConfig | None = None,
    rng=None,
    frame_shape: tuple[int, int] = (2018, 2016),
    keep_background: bool = False,
) -> RenderedFrame:
    """Render a detector frame with its ground truth.

    Parameters
    ----------
    spots
        Spot list with at least ``row, col, intensity`` (relative, as from
        :func:`laue_live.sim.simulate_spots`; several patterns may be concatenated, with an
        ``intensity`` already weighted per grain). Optional ``streak_row, streak_col`` give the
        direction of depth streaks. Extra columns (``h, k, l, energy_keV, grain, ...``) are
        carried into the truth table.
    config
        :class:`RenderConfig` (defaults if ``None``).
    rng
        ``numpy.random.Generator`` or seed; the frame is deterministic given it.
    frame_shape
        ``(rows, cols)`` of the frame.
    keep_background
        Also return the noiseless background image.

    Returns
    -------
    RenderedFrame

    Raises
    ------
    SettingsError
        If ``spots`` lacks the required columns or holds non-finite positions.
    """
    cfg = config or RenderConfig()
    rng = np.random.default_rng(rng)
    missing = {"row", "col", "intensity"} - set(spots.columns)
    if missing:
        raise SettingsError(f"spot list lacks column(s) {sorted(missing)}")
    rows, cols = (int(v) for v in frame_shape)
    if rows < 1 or cols < 1:
        raise SettingsError(f"frame_shape must be positive, got {frame_shape}")
    spots = spots.reset_index(drop=True)
    pos = spots[["row", "col", "intensity"]].to_numpy(float)
    if not np.all(np.isfinite(pos)) or (pos[:, 2] < 0).any():
        raise SettingsError("spot rows, cols and intensities must be finite (intensities >= 0)")

    bg = _smooth_background((rows, cols), cfg, rng)
    n = len(spots)
    streak = (
        spots[["streak_row", "streak_col"]].to_numpy(float)
        if {"streak_row", "streak_col"} <= set(spots.columns)
        else None
    )
    params = _shape_params(spots, rng, cfg, streak)
    if cfg.obliquity and {"obliquity", "radial_row", "radial_col"} <= set(spots.columns):
        k = spots["obliquity"].to_numpy(float)
        k = np.where(np.isfinite(k) & (k >= 1), k, 1.0)
        params = stretch_widths(params, k, spots["radial_row"].to_numpy(), spots["radial_col"].to_numpy())
    peak = (
        cfg.peak_max
        * pos[:, 2] ** cfg.intensity_gamma
        * np.exp(cfg.intensity_jitter * rng.standard_normal(n))
    )
    sat = params["shape"].to_numpy() == "saturated"
    peak[sat] = rng.uniform(1.3, 4.0, sat.sum()) * SATURATION
    keep = peak >= cfg.min_peak
    spots, params, peak = spots[keep].reset_index(drop=True), params[keep].reset_index(drop=True), peak[keep]
    n = len(spots)
    # amplitude (integrated ADU) from the nominal peak of a Gaussian of the same widths
    amplitude = peak * 2 * np.pi * params["w_major"].to_numpy() * params["w_minor"].to_numpy()

    comp = components_of(spots["row"].to_numpy(), spots["col"].to_numpy(), amplitude, params)
    win, r0, c0 = render_components(comp, half=cfg.window_half, ss=cfg.supersample)
    # Poisson noise of the spot photons (the background's is added below as a normal draw)
    counts = rng.poisson(np.maximum(win, 0) / cfg.gain).astype(np.float32) * np.float32(cfg.gain)

    # background noise: one normal draw, sd from the photon statistics of the background + read noise
    img = rng.standard_normal((rows, cols), dtype=np.float32)
    sd = bg - np.float32(cfg.pedestal)
    np.maximum(sd, 0, out=sd)
    sd *= np.float32(cfg.gain)
    sd += np.float32(cfg.read_noise**2)
    np.sqrt(sd, out=sd)
    img *= sd
    del sd
    img += bg
    size = win.shape[1]
    for i in range(len(win)):
        a, b = r0[i], c0[i]
        ra, rb = max(a, 0), min(a + size, rows)
        ca, cb = max(b, 0), min(b + size, cols)
        if ra >= rb or ca >= cb:
            continue
        img[ra:rb, ca:cb] += counts[i][ra - a : rb - a, ca - b : cb - b]
    img += np.float32(0.5)  # round half up by truncation (values are >= 0 after the clip)
    np.clip(img, 0, SATURATION, out=img)
    frame = img.astype(np.uint16)
    del img
    if cfg.active_radius is not None:
        rr = (np.arange(rows) - (rows - 1) / 2)[:, None] ** 2
        cc = (np.arange(cols) - (cols - 1) / 2)[None, :] ** 2
        frame[rr + cc > cfg.active_radius**2] = 0

    truth = _truth_table(spots, params, comp, win, r0, c0, amplitude, bg, frame)
    return RenderedFrame(frame=frame, truth=truth, background=bg if keep_background else None)


def _truth_table(spots, params, comp, win, r0, c0, amplitude, bg, frame) -> pd.DataFrame:
    n = len(spots)
    size = win.shape[1]
    # centroid of the noiseless spot, from its components' windows
    grid = np.arange(size, dtype=np.float64)
    wsum = win.sum(axis=(1, 2)).astype(np.float64)
    rr = (win.sum(axis=2) * grid).sum(axis=1) + r0 * wsum
    cc = (win.sum(axis=1) * grid).sum(axis=1) + c0 * wsum
    s = comp["spot"]
    tot = np.bincount(s, wsum, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        cent_r = np.bincount(s, rr, n) / tot
        cent_c = np.bincount(s, cc, n) / tot
    rows, cols = frame.shape
    ri = np.clip(np.rint(spots["row"].to_numpy()).astype(int), 0, rows - 1)
    ci = np.clip(np.rint(spots["col"].to_numpy()).astype(int), 0, cols - 1)
    # saturated if any pixel of the spot's main window reached 65535
    sat = np.zeros(n, bool)
    for i in range(n):
        a, b = r0[i], c0[i]
        patch = frame[max(a, 0) : a + size, max(b, 0) : b + size]
        sat[i] = patch.size > 0 and patch.max() >= SATURATION
    # noiseless peak: the largest component maximum, or the components' sum at the true pixel
    peak_height = np.zeros(n)
    np.maximum.at(peak_height, s, win.max(axis=(1, 2)))
    lr, lc = ri[s] - r0, ci[s] - c0
    inside = (lr >= 0) & (lr < size) & (lc >= 0) & (lc < size)
    at_true = np.zeros(len(s))
    at_true[inside] = win[np.flatnonzero(inside), lr[inside], lc[inside]]
    peak_height = np.maximum(peak_height, np.bincount(s, at_true, n))
    sr, sc = _sigma_rowcol(
        params["w_major"].to_numpy(), params["w_minor"].to_numpy(), params["angle_deg"].to_numpy()
    )
    truth = pd.DataFrame(
        {
            "spot": np.arange(n, dtype=np.int32),
            "row": spots["row"].to_numpy(),
            "col": spots["col"].to_numpy(),
            "centroid_row": cent_r,
            "centroid_col": cent_c,
            "shape": params["shape"].to_numpy(),
            "amplitude": amplitude,
            "peak_height": peak_height,
            "background": bg[ri, ci].astype(np.float64) if n else np.zeros(0),
            "sigma_row": sr,
            "sigma_col": sc,
        }
    )
    for c in _SHAPE_PARAM_COLUMNS:
        truth[c] = params[c].to_numpy()
    truth["saturated"] = sat
    extra = [c for c in spots.columns if c not in truth.columns and c not in ("row", "col")]
    for c in extra:
        truth[c] = spots[c].to_numpy()
    return truth
