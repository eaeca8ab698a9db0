"""The accuracy checks of issue 15: real frames against the exact fit, clean Gaussians against truth.

* :func:`clean_gaussians`: axis-aligned Gaussian spots, pixel-integrated (erf), Poisson and read
  noise on a 1000 ADU pedestal, the true centre within +-0.5 px of the cutout's centre pixel: the
  case where the answer is known exactly, per width band (:data:`WIDTH_BANDS`).
* :func:`frame_scores`: the paper's scores of one method against the exact fit on one set of
  cutouts (good spots as the fit calls them) and the good/bad confusion.
* :data:`TARGETS`: the issue's targets (the paper's Tables 2-3) beside which they are reported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import erf

from laue_live._rules import is_good_spot

__all__ = ["WIDTH_BANDS", "TARGETS", "clean_gaussians", "frame_scores", "band_errors", "meets_targets"]

#: Width bands (sigma, px) of the clean-Gaussian check.
WIDTH_BANDS: tuple[tuple[float, float], ...] = ((0.7, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 3.0), (3.0, 4.0))

#: Targets on held-out real frames, good spots, against the exact fit (paper Tables 2-3), and
#: against truth on clean Gaussians (median position error in every width band).
TARGETS: dict[str, float] = {
    "pos_err_mean": 0.044,
    "pos_err_p95": 0.12,
    "mae_sim": 0.050,
    "mae_area": 0.391,
    "mae_asp": 0.060,
    "pct_bad_as_good": 1.3,
    "pct_good_as_bad": 2.1,
    "truth_median_per_band": 0.03,
}


def clean_gaussians(n_per_band: int = 200, seed: int = 0, size: int = 32) -> tuple[np.ndarray, pd.DataFrame]:
    """Clean Gaussian cutouts with known truth, ``n_per_band`` in each of :data:`WIDTH_BANDS`.

    Each spot: widths along rows and columns drawn independently and uniformly in the band, peak
    2,000-30,000 ADU (log-uniform) over a 1,000 ADU pedestal, Poisson noise (0.25 ADU per photon)
    and 3 ADU read noise, rounded; true centre uniform within +-0.5 px of pixel (16, 16).

    Returns
    -------
    cutouts, truth
        ``(n, size, size)`` float32 ADU and a table with ``band`` (index), ``d_row, d_col`` (true
        centre minus the centre pixel, px), ``sigma_row, sigma_col`` (px).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for b, (lo, hi) in enumerate(WIDTH_BANDS):
        m = n_per_band
        rows.append(
            pd.DataFrame(
                {
                    "band": np.full(m, b),
                    "d_row": rng.uniform(-0.5, 0.5, m),
                    "d_col": rng.uniform(-0.5, 0.5, m),
                    "sigma_row": rng.uniform(lo, hi, m),
                    "sigma_col": rng.uniform(lo, hi, m),
                    "peak": np.exp(rng.uniform(np.log(2000), np.log(30000), m)),
                }
            )
        )
    t = pd.concat(rows, ignore_index=True)
    edges = np.arange(size + 1, dtype=np.float64) - size // 2 - 0.5  # pixel edges relative to the centre

    def profile(mu, s):
        z = (edges[None, :] - mu[:, None]) / (np.sqrt(2) * s[:, None])
        return 0.5 * np.diff(erf(z), axis=1) * np.sqrt(2 * np.pi) * s[:, None]  # integral of exp(-x^2/2s^2)

    u = profile(t["d_row"].to_numpy(), t["sigma_row"].to_numpy())
    v = profile(t["d_col"].to_numpy(), t["sigma_col"].to_numpy())
    signal = t["peak"].to_numpy()[:, None, None] * u[:, :, None] * v[:, None, :]
    gain = 0.25
    img = rng.poisson(signal / gain) * gain + 1000.0 + rng.normal(0, 3.0, signal.shape)
    return np.clip(np.rint(img), 0, 65535).astype(np.float32), t.drop(columns="peak")


def band_errors(d_row, d_col, truth: pd.DataFrame) -> pd.DataFrame:
    """Median and 95th percentile of ``||Pos - Pos_true||`` (px) per width band of :func:`clean_gaussians`."""
    e = np.hypot(np.asarray(d_row) - truth["d_row"].to_numpy(), np.asarray(d_col) - truth["d_col"].to_numpy())
    out = []
    for b, (lo, hi) in enumerate(WIDTH_BANDS):
        sel = truth["band"].to_numpy() == b
        out.append(
            {
                "band": f"{lo:g}-{hi:g}",
                "n": int(sel.sum()),
                "median": float(np.median(e[sel])),
                "p95": float(np.percentile(e[sel], 95)),
            }
        )
    return pd.DataFrame(out)


def frame_scores(fit: pd.DataFrame, pred: pd.DataFrame) -> dict[str, float]:
    """Scores of ``pred`` against the exact fit ``fit`` (both spot tables of the same cutouts).

    Good spots are those the fit calls good (Sim > 0.5, ``||Pos - s|| <= 0.9`` px). Returns ``n``,
    ``n_good``, ``pos_err_mean``, ``pos_err_p95`` (px), ``mae_sim``, ``mae_area`` (px^2, areas
    clipped at 25 pi as the paper reports them), ``mae_asp`` over the good spots, and the
    misclassified shares ``pct_bad_as_good``, ``pct_good_as_bad`` (% of all spots).
    """
    f = {c: fit[c].to_numpy(np.float64) for c in ("sim", "d_row", "d_col", "asp", "area")}
    p = {c: pred[c].to_numpy(np.float64) for c in ("sim", "d_row", "d_col", "asp", "area")}
    good = is_good_spot(f["sim"], f["d_row"], f["d_col"])
    good_p = is_good_spot(p["sim"], p["d_row"], p["d_col"])
    e = np.hypot(p["d_row"] - f["d_row"], p["d_col"] - f["d_col"])[good]
    clip = 25 * np.pi
    n = max(len(good), 1)
    return {
        "n": int(len(good)),
        "n_good": int(good.sum()),
        "pos_err_mean": float(e.mean()) if len(e) else float("nan"),
        "pos_err_p95": float(np.percentile(e, 95)) if len(e) else float("nan"),
        "mae_sim": float(np.abs(p["sim"] - f["sim"])[good].mean()) if len(e) else float("nan"),
        "mae_area": float(np.abs(np.minimum(p["area"], clip) - np.minimum(f["area"], clip))[good].mean())
        if len(e)
        else float("nan"),
        "mae_asp": float(np.abs(p["asp"] - f["asp"])[good].mean()) if len(e) else float("nan"),
        "pct_bad_as_good": 100.0 * float((~good & good_p).sum()) / n,
        "pct_good_as_bad": 100.0 * float((good & ~good_p).sum()) / n,
    }


def meets_targets(scores: dict[str, float]) -> dict[str, bool]:
    """Which of :data:`TARGETS` a :func:`frame_scores` result meets (strictly below each)."""
    return {k: bool(scores[k] < v) for k, v in TARGETS.items() if k in scores}
