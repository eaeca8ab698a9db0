"""Spot shape classes, their random parameters, and vectorised rendering of spot components.

Every spot is built from one or more *components*: elliptical profiles with widths
``(w_major, w_minor)``, an orientation ``angle`` (degrees, from +col towards +row), a pseudo-Voigt
mixing ``eta`` (0: Gaussian of standard deviation ``w``; 1: 2-D Lorentzian
``(1 + r^2 / gamma^2)^(-3/2)`` with the same FWHM) and a ``skew`` that stretches one side of the
major axis (split-normal: ``w (1 + skew)`` on the + side, ``w (1 - skew)`` on the - side; the mode
stays at the centre). Shape classes:

=============  ===================================================================================
gaussian       one Gaussian component, mildly elliptical
lorentzian     one Lorentzian component
pseudo_voigt   one pseudo-Voigt component, ``eta`` in [0.2, 0.8]
elongated      one Gaussian component with aspect ratio 2-4 at a random angle
streaked       a depth streak: components along the spot's streak direction with exponentially
               decaying weights (thick, weakly absorbing crystals such as Al2O3)
asymmetric     one skewed Gaussian component (``|skew|`` 0.3-0.6)
split          two Gaussian components 1.2-4 px apart (mosaic, bent crystals, two grains)
saturated      a Gaussian whose peak exceeds 65535 ADU
=============  ===================================================================================

A spot's true position ``(row, col)`` is the centre of its main component (the mode of a single
component, the surface end of a streak, the brighter part of a split spot).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from laue_live._errors import SettingsError

__all__ = [
    "SHAPES",
    "SHAPE_MIX_PRESETS",
    "normalize_shape_mix",
    "sample_shape_params",
    "components_of",
    "render_components",
]

SHAPES = (
    "gaussian",
    "lorentzian",
    "pseudo_voigt",
    "elongated",
    "streaked",
    "asymmetric",
    "split",
    "saturated",
)

#: Named mixes of shape classes (probabilities, normalised on use).
SHAPE_MIX_PRESETS: dict[str, dict[str, float]] = {
    # mostly well-behaved spots: Sim skewed towards 1, like a good Si substrate
    "clean": {"gaussian": 0.85, "pseudo_voigt": 0.1, "saturated": 0.05},
    # BM32-like default: mostly Gaussian-ish with a fair share of imperfect spots
    "bm32": {
        "gaussian": 0.5,
        "lorentzian": 0.05,
        "pseudo_voigt": 0.15,
        "elongated": 0.08,
        "streaked": 0.04,
        "asymmetric": 0.08,
        "split": 0.06,
        "saturated": 0.04,
    },
    # every class equally likely: a broad Sim distribution, for training
    "broad": {s: 1.0 for s in SHAPES},
    # thick crystal (Al2O3-like): depth streaks and elongated spots dominate
    "thick": {"gaussian": 0.15, "elongated": 0.25, "streaked": 0.45, "asymmetric": 0.1, "saturated": 0.05},
    # deformed / polycrystalline: split and asymmetric spots dominate, Sim skewed low
    "deformed": {"gaussian": 0.15, "split": 0.35, "asymmetric": 0.2, "elongated": 0.15, "pseudo_voigt": 0.15},
}


def normalize_shape_mix(shape_mix: str | dict[str, float] | None) -> dict[str, float]:
    """Validate a shape mix (a preset name or ``{class: weight}``) and normalise it to sum 1.

    Raises
    ------
    SettingsError
        For an unknown preset or class, a negative or non-finite weight, or all-zero weights.
    """
    if shape_mix is None:
        shape_mix = "bm32"
    if isinstance(shape_mix, str):
        if shape_mix not in SHAPE_MIX_PRESETS:
            raise SettingsError(f"unknown shape mix {shape_mix!r}; presets: {sorted(SHAPE_MIX_PRESETS)}")
        shape_mix = SHAPE_MIX_PRESETS[shape_mix]
    unknown = set(shape_mix) - set(SHAPES)
    if unknown:
        raise SettingsError(f"unknown spot shape class(es) {sorted(unknown)}; known: {list(SHAPES)}")
    w = np.array([float(shape_mix.get(s, 0.0)) for s in SHAPES])
    if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise SettingsError(f"shape mix weights must be >= 0, finite and not all zero, got {shape_mix}")
    return {s: float(v) for s, v in zip(SHAPES, w / w.sum(), strict=True) if v > 0}


def sample_shape_params(
    n: int,
    rng: np.random.Generator,
    shape_mix=None,
    sigma_median: float = 1.1,
    sigma_spread: float = 0.25,
    streak=None,
    split_range: tuple[float, float] = (1.2, 4.0),
) -> pd.DataFrame:
    """Draw shape classes and parameters for ``n`` spots.

    Parameters
    ----------
    n
        Number of spots.
    rng
        Random generator.
    shape_mix
        Preset name or ``{class: weight}`` (see :data:`SHAPE_MIX_PRESETS`).
    sigma_median, sigma_spread
        Median (px) and log-normal spread of the base width ``w``.
    streak
        Optional ``(n, 2)`` streak directions ``(d_row, d_col)`` per spot (from
        :func:`simulate_spots`); random directions otherwise.
    split_range
        ``(min, max)`` distance between the two components of a split spot, px.

    Returns
    -------
    pandas.DataFrame
        ``shape, w_major, w_minor, angle_deg, eta, skew, streak_length, streak_dir_row,
        streak_dir_col, split_d_row, split_d_col, split_ratio`` per spot.
    """
    mix = normalize_shape_mix(shape_mix)
    if sigma_median <= 0 or sigma_spread < 0:
        raise SettingsError("sigma_median must be > 0 px and sigma_spread >= 0")
    names = list(mix)
    shape = rng.choice(np.array(names, dtype=object), size=n, p=np.array(list(mix.values())))
    base = sigma_median * np.exp(sigma_spread * rng.standard_normal(n))
    base = np.clip(base, 0.45, 4.0)
    aspect = 1.0 + np.abs(0.15 * rng.standard_normal(n))
    angle = rng.uniform(-90, 90, n)
    eta = np.zeros(n)
    skew = np.zeros(n)
    streak_len = np.zeros(n)
    split_d = np.zeros((n, 2))
    split_ratio = np.zeros(n)

    is_ = {s: shape == s for s in SHAPES}
    eta[is_["lorentzian"]] = 1.0
    eta[is_["pseudo_voigt"]] = rng.uniform(0.2, 0.8, is_["pseudo_voigt"].sum())
    m = is_["elongated"]
    aspect[m] = rng.uniform(2.0, 4.0, m.sum())
    aspect[is_["streaked"] | is_["split"]] = 1.0  # round components; the layout makes the shape
    m = is_["asymmetric"]
    skew[m] = rng.uniform(0.3, 0.6, m.sum()) * rng.choice([-1, 1], m.sum())
    m = is_["streaked"]
    streak_len[m] = rng.uniform(3.0, 12.0, m.sum())
    m = is_["split"]
    if not (0 <= split_range[0] <= split_range[1]):
        raise SettingsError(f"split_range must be 0 <= min <= max px, got {split_range}")
    dist = rng.uniform(split_range[0], split_range[1], m.sum())
    phi = rng.uniform(0, 2 * np.pi, m.sum())
    split_d[m] = np.stack([dist * np.sin(phi), dist * np.cos(phi)], axis=1)
    split_ratio[m] = rng.uniform(0.3, 1.0, m.sum())

    if streak is not None:
        sdir = np.asarray(streak, dtype=float).reshape(n, 2).copy()
        norm = np.linalg.norm(sdir, axis=1)
        bad = ~(norm > 1e-9)
        sdir[~bad] /= norm[~bad, None]
    else:
        bad = np.ones(n, bool)
        sdir = np.zeros((n, 2))
    a = rng.uniform(0, 2 * np.pi, n)
    sdir[bad] = np.stack([np.sin(a[bad]), np.cos(a[bad])], axis=1)
    return pd.DataFrame(
        {
            "shape": shape.astype(str),
            "w_major": base * np.sqrt(aspect),
            "w_minor": base / np.sqrt(aspect),
            "angle_deg": angle,
            "eta": eta,
            "skew": skew,
            "streak_length": streak_len,
            "streak_dir_row": sdir[:, 0],
            "streak_dir_col": sdir[:, 1],
            "split_d_row": split_d[:, 0],
            "split_d_col": split_d[:, 1],
            "split_ratio": split_ratio,
        }
    )


_N_STREAK = 8  # components per depth streak


def components_of(row, col, amplitude, params: pd.DataFrame) -> dict[str, np.ndarray]:
    """Expand spots into rendering components.

    Parameters
    ----------
    row, col
        ``(n,)`` true positions (0-based px).
    amplitude
        ``(n,)`` integrated intensities, ADU.
    params
        Output of :func:`sample_shape_params`.

    Returns
    -------
    dict
        Arrays ``spot, row, col, weight, w_major, w_minor, angle, eta, skew`` of all components
        (``angle`` in radians; ``weight`` in ADU, summing to the spot's amplitude).
    """
    n = len(params)
    row = np.asarray(row, float)
    col = np.asarray(col, float)
    amp = np.asarray(amplitude, float)
    shape = params["shape"].to_numpy()
    idx = np.arange(n)
    comps = [dict(spot=idx, row=row, col=col, weight=amp.copy())]

    split = shape == "split"
    r = params["split_ratio"].to_numpy()
    comps[0]["weight"] = np.where(split, amp / (1 + r), comps[0]["weight"])
    if split.any():
        comps.append(
            dict(
                spot=idx[split],
                row=row[split] + params["split_d_row"].to_numpy()[split],
                col=col[split] + params["split_d_col"].to_numpy()[split],
                weight=amp[split] * r[split] / (1 + r[split]),
            )
        )
    streak = shape == "streaked"
    if streak.any():
        length = params["streak_length"].to_numpy()[streak]
        dr = params["streak_dir_row"].to_numpy()[streak]
        dc = params["streak_dir_col"].to_numpy()[streak]
        t = np.arange(_N_STREAK) / (_N_STREAK - 1)  # fraction of the streak length
        w = np.exp(-2.0 * t)
        w /= w.sum()
        comps[0]["weight"] = np.where(streak, amp * w[0], comps[0]["weight"])
        for k in range(1, _N_STREAK):
            comps.append(
                dict(
                    spot=idx[streak],
                    row=row[streak] + t[k] * length * dr,
                    col=col[streak] + t[k] * length * dc,
                    weight=amp[streak] * w[k],
                )
            )
    out = {k: np.concatenate([c[k] for c in comps]) for k in ("spot", "row", "col", "weight")}
    s = out["spot"]
    out["w_major"] = params["w_major"].to_numpy()[s]
    out["w_minor"] = params["w_minor"].to_numpy()[s]
    out["angle"] = np.radians(params["angle_deg"].to_numpy()[s])
    out["eta"] = params["eta"].to_numpy()[s]
    out["skew"] = params["skew"].to_numpy()[s]
    return out


def render_components(
    comp: dict[str, np.ndarray], half: int = 10, ss: int = 3, chunk: int = 512
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render components into ``(2 half + 1)``-pixel square windows, vectorised.

    Each profile is averaged over ``ss x ss`` sub-pixel samples (pixel integration) and
    normalised so that the window sums to the component's ``weight``.

    Returns
    -------
    windows, r0, c0
        ``(m, W, W)`` float32 windows and the frame row/column of each window's corner pixel.
    """
    m = len(comp["row"])
    size = 2 * half + 1
    r0 = np.round(comp["row"]).astype(np.int64) - half
    c0 = np.round(comp["col"]).astype(np.int64) - half
    sub = (np.arange(ss) + 0.5) / ss - 0.5
    grid = (np.arange(size)[:, None] + sub[None, :]).reshape(-1)  # sub-pixel sample coordinates
    out = np.empty((m, size, size), np.float32)
    for a in range(0, m, chunk):
        b = min(a + chunk, m)
        dr = (grid[None, :] + r0[a:b, None] - comp["row"][a:b, None]).astype(np.float32)  # (k, S)
        dc = (grid[None, :] + c0[a:b, None] - comp["col"][a:b, None]).astype(np.float32)
        ca = np.cos(comp["angle"][a:b]).astype(np.float32)[:, None, None]
        sa = np.sin(comp["angle"][a:b]).astype(np.float32)[:, None, None]
        # major axis along (sin a, cos a) in (row, col)
        u = dr[:, :, None] * sa + dc[:, None, :] * ca
        v = -dr[:, :, None] * ca + dc[:, None, :] * sa
        wmaj = comp["w_major"][a:b].astype(np.float32)[:, None, None]
        wmin = comp["w_minor"][a:b].astype(np.float32)[:, None, None]
        skew = comp["skew"][a:b].astype(np.float32)[:, None, None]
        wu = np.where(u >= 0, wmaj * (1 + skew), wmaj * (1 - skew))
        r2 = (u / wu) ** 2 + (v / wmin) ** 2
        eta = comp["eta"][a:b].astype(np.float32)[:, None, None]
        prof = (1 - eta) * np.exp(-0.5 * r2)
        if np.any(eta > 0):
            # Lorentzian with the same FWHM: gamma^2 = 2 ln 2 w^2
            lor = (1.0 + r2 / np.float32(2 * np.log(2))) ** np.float32(-1.5)
            prof = prof + eta * lor
        prof = prof.reshape(b - a, size, ss, size, ss).mean(axis=(2, 4))
        total = prof.sum(axis=(1, 2), keepdims=True)
        out[a:b] = prof * (comp["weight"][a:b, None, None] / np.maximum(total, 1e-30)).astype(np.float32)
    return out, r0, c0


def stretch_widths(params: pd.DataFrame, factor, dir_row, dir_col) -> pd.DataFrame:
    """Stretch every spot's ellipse by ``factor`` along the unit direction ``(dir_row, dir_col)``.

    Used for the oblique incidence of the scattered rays on the detector (``factor`` = obliquity,
    radial direction): the covariance ``S C S^T`` with ``S = I + (factor - 1) r r^T`` is
    re-expressed as ``w_major, w_minor, angle_deg``.
    """
    k = np.asarray(factor, float)
    r = np.stack([np.asarray(dir_row, float), np.asarray(dir_col, float)], axis=1)
    a = np.radians(params["angle_deg"].to_numpy())
    major = np.stack([np.sin(a), np.cos(a)], axis=1)  # (row, col)
    minor = np.stack([-np.cos(a), np.sin(a)], axis=1)
    wM, wm = params["w_major"].to_numpy(), params["w_minor"].to_numpy()
    cov = (wM**2)[:, None, None] * major[:, :, None] * major[:, None, :] + (wm**2)[:, None, None] * (
        minor[:, :, None] * minor[:, None, :]
    )
    s = np.eye(2)[None] + (k - 1)[:, None, None] * r[:, :, None] * r[:, None, :]
    cov = s @ cov @ np.transpose(s, (0, 2, 1))
    vals, vecs = np.linalg.eigh(cov)
    v = vecs[:, :, 1]  # eigenvector of the larger eigenvalue, (row, col)
    angle = np.degrees(np.arctan2(v[:, 0], v[:, 1]))
    angle = (angle + 90.0) % 180.0 - 90.0
    out = params.copy()
    out["w_major"] = np.sqrt(np.maximum(vals[:, 1], 1e-12))
    out["w_minor"] = np.sqrt(np.maximum(vals[:, 0], 1e-12))
    out["angle_deg"] = angle
    return out
