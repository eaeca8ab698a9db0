"""Synthetic 32 x 32 spots with known parameters, and the reference scipy fit on the same model."""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

S = 32
X = np.arange(S, dtype=np.float64) - S // 2


def gauss(alpha, beta, mr, mc, sr, sc):
    """beta + alpha * g on the cutout grid (the model of laue_live.spots.fit_gaussians)."""
    return beta + alpha / (2 * np.pi * sr * sc) * np.exp(
        -0.5 * ((X[:, None] - mr) / sr) ** 2 - 0.5 * ((X[None, :] - mc) / sc) ** 2)


def random_gaussian_spots(n, seed=0):
    """Poisson-noised Gaussian spots: peak heights 200-60000 ADU, sigmas 0.5-6 px, offsets <= 2 px."""
    rng = np.random.default_rng(seed)
    sr, sc = rng.uniform(0.5, 6, n), rng.uniform(0.5, 6, n)
    height = np.exp(rng.uniform(np.log(200), np.log(60000), n))
    p = np.c_[height * 2 * np.pi * sr * sc, rng.uniform(950, 1100, n), rng.uniform(-2, 2, n),
              rng.uniform(-2, 2, n), sr, sc]
    cut = np.stack([rng.poisson(gauss(*q)) for q in p]).astype(np.float32)
    return cut, p


def non_gaussian_spots(n_each=8, seed=1):
    """Spots the axis-aligned Gaussian cannot describe exactly: elongated (rotated), split, flat-topped,
    saturated. Returns (cutouts, kinds)."""
    rng = np.random.default_rng(seed)
    rr, cc = np.meshgrid(X, X, indexing="ij")
    cuts, kinds = [], []
    for _ in range(n_each):
        bg = rng.uniform(980, 1050)
        # elongated and rotated
        th = rng.uniform(0, np.pi)
        a, b = rng.uniform(2, 4), rng.uniform(0.5, 1.0)
        u = (rr - rng.uniform(-1, 1)) * np.cos(th) + (cc - rng.uniform(-1, 1)) * np.sin(th)
        w = -(rr) * np.sin(th) + cc * np.cos(th)
        cuts.append(bg + rng.uniform(500, 20000) * np.exp(-0.5 * (u / a) ** 2 - 0.5 * (w / b) ** 2))
        kinds.append("elongated")
        # split: two spots 2-4 px apart, unequal
        d = rng.uniform(2, 4)
        ang = rng.uniform(0, 2 * np.pi)
        h1 = rng.uniform(2000, 20000)
        s = rng.uniform(0.8, 1.5)
        cuts.append(bg + h1 * np.exp(-0.5 * (rr ** 2 + cc ** 2) / s ** 2)
                    + rng.uniform(0.3, 0.9) * h1 * np.exp(-0.5 * ((rr - d * np.sin(ang)) ** 2
                                                             + (cc - d * np.cos(ang)) ** 2) / s ** 2))
        kinds.append("split")
        # flat-topped (super-Gaussian)
        r0 = rng.uniform(1.5, 4)
        cuts.append(bg + rng.uniform(1000, 20000) * np.exp(-(((rr - rng.uniform(-1, 1)) ** 2 + cc ** 2)
                                                             / r0 ** 2) ** 2))
        kinds.append("flat")
        # saturated: bright narrow Gaussian clipped at 65535
        sr, sc = rng.uniform(0.8, 2), rng.uniform(0.8, 2)
        cuts.append(gauss(rng.uniform(1e5, 3e5) * 2 * np.pi * sr * sc, bg, rng.uniform(-1, 1),
                          rng.uniform(-1, 1), sr, sc))
        kinds.append("saturated")
    cuts = np.stack([np.minimum(rng.poisson(np.clip(c, 0, None)), 65535) for c in cuts]).astype(np.float32)
    return cuts, kinds


def scipy_fit(cutout, start):
    """Reference: scipy.optimize.least_squares (trf, tight tolerances) on the same model and start."""
    d = np.asarray(cutout, dtype=np.float64)

    def res(p):
        return (gauss(*p) - d).ravel()

    r = least_squares(res, np.asarray(start, dtype=np.float64), method="trf", x_scale="jac",
                      xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=5000)
    return r.x, r.cost


def cost_of(cutout, p):
    return 0.5 * float(np.sum((gauss(*p) - np.asarray(cutout, dtype=np.float64)) ** 2))
