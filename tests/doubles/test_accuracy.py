"""Accuracy of the shipped double-spot network against the truth and against the exact two-Gaussian fit.

Fixed simulated cutouts (seed 2026, the repository alone): 40 doubles 3-8 px apart with intensity
ratios 1-5 (the network's stated domain, docs/doubles.md) and 40 single spots. Bounds at ~1.5x what
the shipped ``models/doubles_net.safetensors`` measures (2026-12), every measured figure printed on
failure. The same figures from the network with its weights multiplied by N(1, 0.3) must fall outside
the bounds: the test is shown to fail a broken model. A model that does not load fails (ModelError),
it never skips.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from laue_live.doubles import (
    DoublePredictor,
    default_double_model_path,
    fit_two_gaussians,
    load_double_model,
    make_doubles,
    match_errors,
    save_double_model,
)
from tests.conftest import bounds_report, out_of_bounds, perturb_weights

# figure -> (bound, measured on the shipped network); every figure must stay below its bound
BOUNDS = {
    "misclassified doubles": (0.5, 0),  # of 40; P(double) >= 0.9998 on every one
    "misclassified singles": (0.5, 0),  # of 40; P(double) <= 0.36 on every one
    "network vs truth, median (px)": (0.18, 0.118),
    "network vs truth, p90 (px)": (0.54, 0.358),
    "network vs exact fit, median (px)": (0.18, 0.120),
    "polished vs truth, median (px)": (0.022, 0.0146),
    "polished vs truth, max (px)": (0.42, 0.281),
    "polished vs exact fit, median (px)": (1.6e-6, 1.1e-6),
    "polished vs exact fit, max (px)": (1e-3, 6.5e-4),
    "network ratio, median |log error|": (0.215, 0.144),
    "polished ratio, median |log error|": (0.016, 0.0107),
    "singles vs truth, median (px)": (0.034, 0.0227),
    "singles vs truth, max (px)": (0.19, 0.129),
}


@pytest.fixture(scope="module")
def cases():
    rng = np.random.default_rng(2026)
    n = 40
    sep, ratio = rng.uniform(3, 8, n), np.exp(rng.uniform(0, np.log(5), n))
    dcut, dtru = make_doubles(n, rng=rng, sep=sep, ratio=ratio)
    scut, stru = make_doubles(n, rng=rng, double_fraction=0.0)
    p = fit_two_gaussians(dcut.astype(np.float64)).params
    exact = pd.DataFrame({"row1": p[:, 1], "col1": p[:, 2], "row2": p[:, 6], "col2": p[:, 7]})
    return dcut, dtru, scut, stru, exact


def _figures(model, cases) -> dict[str, float]:
    dcut, dtru, scut, stru, exact = cases
    pred = DoublePredictor(model)
    net, polished, singles = pred.predict(dcut), pred.predict(dcut, refine=True), pred.predict(scut)
    out = {"misclassified doubles": int((net.n_components != 2).sum()),
           "misclassified singles": int((singles.n_components != 1).sum())}
    called = (net.n_components == 2).to_numpy()
    if called.sum() < 5:  # too few doubles called to measure positions: every position figure fails
        return out | {k: np.inf for k in BOUNDS if k not in out}

    def errors(df, ref):
        e1, e2 = match_errors(df[called].reset_index(drop=True), ref[called].reset_index(drop=True))
        return np.r_[e1, e2]

    e_net, e_pol = errors(net, dtru), errors(polished, dtru)
    f_net, f_pol = errors(net, exact), errors(polished, exact)
    true_ratio = dtru.ratio[called].to_numpy()
    e_single = np.hypot(singles.row1 - stru.row1, singles.col1 - stru.col1).to_numpy()
    return out | {
        "network vs truth, median (px)": np.median(e_net),
        "network vs truth, p90 (px)": np.percentile(e_net, 90),
        "network vs exact fit, median (px)": np.median(f_net),
        "polished vs truth, median (px)": np.median(e_pol),
        "polished vs truth, max (px)": e_pol.max(),
        "polished vs exact fit, median (px)": np.median(f_pol),
        "polished vs exact fit, max (px)": f_pol.max(),
        "network ratio, median |log error|": np.median(np.abs(np.log(net.ratio[called] / true_ratio))),
        "polished ratio, median |log error|": np.median(np.abs(np.log(polished.ratio[called] / true_ratio))),
        "singles vs truth, median (px)": np.nanmedian(e_single),
        "singles vs truth, max (px)": np.nanmax(e_single) if np.isfinite(e_single).any() else np.inf,
    }


def test_shipped_double_network_meets_its_measured_accuracy(cases):
    fig = _figures(default_double_model_path(), cases)
    assert not out_of_bounds(fig, BOUNDS), bounds_report(fig, BOUNDS)


def test_a_perturbed_double_network_fails_the_bounds(cases, tmp_path):
    """The shipped weights times N(1, 0.3): the accuracy test above must reject such a model."""
    net, meta = load_double_model(default_double_model_path())
    perturb_weights(net)
    broken = save_double_model(tmp_path / "broken.safetensors", net, info=meta.get("info"))
    fig = _figures(broken, cases)
    bad = out_of_bounds(fig, BOUNDS)
    # the network's own figures collapse; the exact polish (started from it) may still rescue a few
    assert len(bad) >= 4 and "network vs truth, median (px)" in bad, bounds_report(fig, BOUNDS)
