"""The Pareto table: accuracy against time per spot, every method measured in one run on one thread.

Methods (:class:`Method`) are anything that turns raw cutouts into a spot table: the exact fit,
the fit stopped after a few iterations, a network (float32 or int8), a network followed by a few
iterations of the fit (:func:`laue_live.cnn.polish`). Each is timed on the same cutouts, in
interleaved rounds (the best round counts; CPU time of the calling thread beside wall time, so
that other processes on a shared machine inflate neither much), and scored against the exact fit
on the real frames and against truth on clean Gaussians (:mod:`laue_live.cnn._accuracy`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from laue_live.cnn._accuracy import TARGETS, band_errors, clean_gaussians, frame_scores
from laue_live.cnn._architectures import SpotNet, count_flops
from laue_live.cnn._hybrid import polish
from laue_live.cnn._io import load_model
from laue_live.cnn._predictor import Predictor
from laue_live.spots import fit_descriptors

__all__ = [
    "Method",
    "time_methods",
    "pareto_table",
    "standard_methods",
    "method_label",
    "recommend_polish",
    "meets_all",
]

logger = logging.getLogger(__name__)


@dataclass
class Method:
    """One way of describing spots.

    Parameters
    ----------
    name
        Row label.
    run
        ``run(cutouts) -> spot table`` (the columns of ``characterize``).
    mflop
        Network floating-point operations per cutout, millions (NaN for the fit).
    kind
        ``"fit"``, ``"network"`` or ``"hybrid"``.
    """

    name: str
    run: Callable[[np.ndarray], pd.DataFrame]
    mflop: float = float("nan")
    kind: str = "network"


def _limit_blas_threads():
    try:
        from threadpoolctl import threadpool_limits  # optional: keeps numpy's BLAS on one thread

        return threadpool_limits(1)
    except ImportError:  # OPENBLAS_NUM_THREADS=1 in the environment does the same
        return nullcontext()


def time_methods(methods: list[Method], cutouts: np.ndarray, rounds: int = 5) -> pd.DataFrame:
    """Time every method on ``cutouts`` in ``rounds`` interleaved rounds, one torch/BLAS thread.

    Returns
    -------
    pandas.DataFrame
        Index: method names; ``ms_cpu`` (best round's CPU time of this thread per spot), ``ms_wall``
        (best round's wall time per spot), ``ms_cpu_median``.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    cpu: dict[str, list[float]] = {m.name: [] for m in methods}
    wall: dict[str, list[float]] = {m.name: [] for m in methods}
    n = len(cutouts)
    try:
        with _limit_blas_threads():
            for m in methods:  # warm-up: first calls build int8 networks, fill caches
                m.run(cutouts[: min(n, 256)])
            for _ in range(rounds):
                for m in methods:
                    t, c = time.perf_counter(), time.thread_time()
                    m.run(cutouts)
                    cpu[m.name].append((time.thread_time() - c) / n * 1e3)
                    wall[m.name].append((time.perf_counter() - t) / n * 1e3)
    finally:
        torch.set_num_threads(old)
    return pd.DataFrame(
        {
            "ms_cpu": {k: min(v) for k, v in cpu.items()},
            "ms_cpu_median": {k: float(np.median(v)) for k, v in cpu.items()},
            "ms_wall": {k: min(v) for k, v in wall.items()},
        }
    )


def pareto_table(
    methods: list[Method],
    frames: Mapping[str, tuple[np.ndarray, pd.DataFrame]],
    *,
    timing_cutouts: np.ndarray | None = None,
    n_clean: int = 200,
    rounds: int = 5,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Accuracy and speed of every method, in one run.

    Parameters
    ----------
    methods
        The rows.
    frames
        ``{name: (cutouts, exact-fit table)}`` of the real frames (each scored on its own and pooled).
    timing_cutouts
        Cutouts to time on (default: the real frames' cutouts, repeated to at least 2,000).
    n_clean
        Clean Gaussians per width band.
    rounds
        Timing rounds.

    Returns
    -------
    table, per_frame
        One row per method: ``mflop``, ``ms_cpu``, ``ms_wall``, the pooled real-frame scores
        (:func:`~laue_live.cnn._accuracy.frame_scores`), ``worst_pos_err_mean`` and
        ``worst_pos_err_p95`` over the frames, ``truth_median_worst_band`` (px) on clean Gaussians;
        and per method the per-frame scores.
    """
    pooled_cut = np.concatenate([c for c, _ in frames.values()])
    pooled_fit = pd.concat([t for _, t in frames.values()], ignore_index=True)
    if timing_cutouts is None:
        reps = max(1, int(np.ceil(2000 / max(len(pooled_cut), 1))))
        timing_cutouts = np.concatenate([pooled_cut] * reps)
    gc, gt = clean_gaussians(n_clean, seed=11)
    rows, per_frame = {}, {}
    for m in methods:
        pf = {name: frame_scores(t, m.run(c)) for name, (c, t) in frames.items()}
        pooled = frame_scores(pooled_fit, m.run(pooled_cut))
        g = m.run(gc)
        bands = band_errors(g["d_row"], g["d_col"], gt)
        per_frame[m.name] = pd.DataFrame({**pf, "pooled": pooled}).T
        rows[m.name] = {
            "kind": m.kind,
            "mflop": m.mflop,
            **pooled,
            "worst_pos_err_mean": max(s["pos_err_mean"] for s in pf.values()),
            "worst_pos_err_p95": max(s["pos_err_p95"] for s in pf.values()),
            "truth_median_worst_band": float(bands["median"].max()),
            "bands": bands,
        }
        logger.info("scored %s", m.name)
    table = pd.DataFrame(rows).T
    times = time_methods(methods, timing_cutouts, rounds=rounds)
    table = table.join(times)
    return table, per_frame


def method_label(label: str, int8: bool, polish: int) -> str:
    """Row label of a model's method in :func:`standard_methods`' table."""
    base = f"{label} {'int8' if int8 else 'fp32'}"
    return base if polish == 0 else f"{base} + {polish} fit iteration{'s' if polish > 1 else ''}"


def meets_all(row) -> list[str]:
    """Return the accuracy targets a Pareto row misses (worst real frame, pooled, clean Gaussians)."""
    checks = {
        "worst_pos_err_mean": TARGETS["pos_err_mean"],
        "worst_pos_err_p95": TARGETS["pos_err_p95"],
        "mae_sim": TARGETS["mae_sim"],
        "mae_area": TARGETS["mae_area"],
        "mae_asp": TARGETS["mae_asp"],
        "pct_bad_as_good": TARGETS["pct_bad_as_good"],
        "pct_good_as_bad": TARGETS["pct_good_as_bad"],
        "truth_median_worst_band": TARGETS["truth_median_per_band"],
    }
    return [f"{k} {float(row[k]):.3f} (target < {t})" for k, t in checks.items() if not float(row[k]) < t]


def recommend_polish(table: pd.DataFrame, label: str, steps=(0, 1, 2, 3)) -> int:
    """Fit iterations to recommend for a model: the fastest of its int8 rows meeting every target.

    Where none does, the most accurate one (the largest number of iterations measured).
    """
    rows = {
        k: table.loc[method_label(label, True, k)]
        for k in steps
        if method_label(label, True, k) in table.index
    }
    ok = [k for k, r in rows.items() if not meets_all(r)]
    if ok:
        return min(ok, key=lambda k: float(rows[k]["ms_cpu"]))
    return max(rows)


def standard_methods(
    models: Mapping[str, str], *, polish_steps=(1, 2, 3), fit_steps=(1, 2, 3)
) -> list[Method]:
    """Return the fit, the fit stopped early, each model (int8 and float32) and each width model + polish.

    Parameters
    ----------
    models
        ``{row label: model file}``.
    polish_steps, fit_steps
        Iteration counts of the hybrid rows and of the stopped-fit rows.
    """
    out = [Method("exact fit", fit_descriptors, kind="fit")]
    for k in fit_steps:
        out.append(
            Method(
                f"fit, {k} iteration{'s' if k > 1 else ''}",
                lambda c, k=k: fit_descriptors(c, max_iter=k),
                kind="fit",
            )
        )
    for label, path in models.items():
        net, _ = load_model(path)
        mflop = count_flops(net) / 1e6
        for quantize in (True, False):
            p = Predictor(path, "cpu", quantize=quantize, polish=0)
            out.append(Method(method_label(label, quantize, 0), p.predict, mflop))
            if isinstance(net, SpotNet) and net.arch.widths_out and quantize:
                for k in polish_steps:
                    out.append(
                        Method(
                            method_label(label, True, k),
                            lambda c, p=p, k=k: polish(c, p.predict_desc(c), k),
                            mflop,
                            "hybrid",
                        )
                    )
    return out
