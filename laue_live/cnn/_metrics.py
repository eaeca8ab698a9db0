"""Error scores of the paper (section 3): MAE, mean position error, d-dimensional R^2, confusion."""

from __future__ import annotations

import numpy as np
import pandas as pd

from laue_live._rules import AREA_REPORT_MAX, D_REPORT_RANGE, is_good_spot

__all__ = ["r2", "comparison_table", "scores", "confusion", "position_error_vs_truth"]


def r2(y: np.ndarray, yhat: np.ndarray) -> float:
    """d-dimensional coefficient of determination ``1 - sum ||y - yhat||^2 / sum ||y - mean(y)||^2``."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    yhat = np.asarray(yhat, dtype=np.float64).reshape(len(yhat), -1)
    den = ((y - y.mean(axis=0)) ** 2).sum()
    return float(1 - ((y - yhat) ** 2).sum() / den) if den > 0 else float("nan")


def comparison_table(truth: pd.DataFrame, pred: pd.DataFrame) -> pd.DataFrame:
    """Per-spot true and predicted descriptors, clipped for reporting, with good flags.

    ``truth`` holds the exact fit's ``sim, d_row, d_col, asp, area`` (and optionally
    ``true_d_row, true_d_col`` from the simulator); ``pred`` the CNN's ``sim, d_row, d_col, asp, area``.
    """
    t = {c: truth[c].to_numpy(np.float64) for c in ("sim", "d_row", "d_col", "asp", "area")}
    p = {c: pred[c].to_numpy(np.float64) for c in ("sim", "d_row", "d_col", "asp", "area")}
    out = pd.DataFrame(
        {
            "sim": t["sim"],
            "sim_pred": p["sim"],
            "d_row": np.clip(t["d_row"], *D_REPORT_RANGE),
            "d_col": np.clip(t["d_col"], *D_REPORT_RANGE),
            "d_row_pred": p["d_row"],
            "d_col_pred": p["d_col"],
            "asp": t["asp"],
            "asp_pred": p["asp"],
            "area": np.minimum(t["area"], AREA_REPORT_MAX),
            "area_pred": p["area"],
        }
    )
    out["good"] = is_good_spot(t["sim"], t["d_row"], t["d_col"])
    out["good_pred"] = is_good_spot(p["sim"], p["d_row"], p["d_col"])
    for c in ("true_d_row", "true_d_col"):
        if c in truth:
            out[c] = truth[c].to_numpy(np.float64)
    return out


def scores(cmp: pd.DataFrame) -> dict[str, float]:
    """Compute the paper's Table 1 columns on a :func:`comparison_table` (or a subset of its rows)."""
    if len(cmp) == 0:
        return {
            "n": 0,
            **{
                k: float("nan")
                for k in (
                    "mae_sim",
                    "r2_sim",
                    "pos_err",
                    "r2_pos",
                    "mae_area",
                    "r2_area",
                    "mae_asp",
                    "r2_asp",
                )
            },
        }
    pos_t = cmp[["d_row", "d_col"]].to_numpy()
    pos_p = cmp[["d_row_pred", "d_col_pred"]].to_numpy()
    return {
        "n": len(cmp),
        "mae_sim": float(np.abs(cmp["sim"] - cmp["sim_pred"]).mean()),
        "r2_sim": r2(cmp["sim"], cmp["sim_pred"]),
        "pos_err": float(np.linalg.norm(pos_t - pos_p, axis=1).mean()),
        "r2_pos": r2(pos_t, pos_p),
        "mae_area": float(np.abs(cmp["area"] - cmp["area_pred"]).mean()),
        "r2_area": r2(cmp["area"], cmp["area_pred"]),
        "mae_asp": float(np.abs(cmp["asp"] - cmp["asp_pred"]).mean()),
        "r2_asp": r2(cmp["asp"], cmp["asp_pred"]),
    }


def confusion(cmp: pd.DataFrame) -> dict[str, float]:
    """Good/bad confusion (true from the fit, predicted from the CNN), counts and % of all spots."""
    g, gp = cmp["good"].to_numpy(bool), cmp["good_pred"].to_numpy(bool)
    n = max(len(cmp), 1)
    counts = {
        "good_as_good": int((g & gp).sum()),
        "good_as_bad": int((g & ~gp).sum()),
        "bad_as_good": int((~g & gp).sum()),
        "bad_as_bad": int((~g & ~gp).sum()),
    }
    return {**counts, **{f"pct_{k}": 100.0 * v / n for k, v in counts.items()}, "n": len(cmp)}


def position_error_vs_truth(
    cmp: pd.DataFrame, fit_cols: tuple[str, str] = ("d_row", "d_col")
) -> pd.DataFrame:
    """Median, 75th and 95th percentile of ``||Pos - Pos_true||`` (px) for the CNN and the fit.

    Needs ``true_d_row, true_d_col`` (simulator truth). The fit's unclipped offsets are in
    ``fit_cols``. Rows: ``cnn``, ``fit``; returns an empty frame without truth.
    """
    if "true_d_row" not in cmp:
        return pd.DataFrame()
    tr = cmp[["true_d_row", "true_d_col"]].to_numpy()
    ok = np.isfinite(tr).all(axis=1)
    out = {}
    for name, cols in (("cnn", ("d_row_pred", "d_col_pred")), ("fit", fit_cols)):
        e = np.linalg.norm(cmp.loc[ok, list(cols)].to_numpy() - tr[ok], axis=1)
        out[name] = {
            "n": int(ok.sum()),
            "median": float(np.median(e)) if len(e) else np.nan,
            "p75": float(np.percentile(e, 75)) if len(e) else np.nan,
            "p95": float(np.percentile(e, 95)) if len(e) else np.nan,
        }
    return pd.DataFrame(out).T
