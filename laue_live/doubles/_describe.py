"""Spot tables gain the components of double spots: one row per component, sharing a parent id."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from laue_live._errors import SpotTableError
from laue_live._rules import CUTOUT_CENTRE, cosine_similarity, is_good_spot, shape_descriptors, sim_from_sim0
from laue_live._schema import conform_spot_table
from laue_live.doubles._fit import fit_two_gaussians
from laue_live.doubles._predict import get_double_predictor

__all__ = ["describe_doubles", "component_descriptors"]

logger = logging.getLogger(__name__)


def _gauss(rr, cc, amp, r, c, sr, sc):
    return amp[:, None, None] / (2 * np.pi * sr * sc)[:, None, None] * np.exp(
        -0.5 * (((rr - r[:, None, None]) / sr[:, None, None]) ** 2
                + ((cc - c[:, None, None]) / sc[:, None, None]) ** 2))


def component_descriptors(cutouts: np.ndarray, comp: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Descriptors of each component of double spots, in cutout coordinates.

    Component ``k``'s own image is the background-subtracted cutout minus the other component's
    model; its Sim0 is the cosine similarity of that image with its own model (SCIENCE.md's
    background-subtracted Sim0, applied per component) and its initial peak ``s_k`` is the brightest
    pixel of that image within 1.5 px of the component's position.

    Parameters
    ----------
    cutouts
        (n, 32, 32) raw cutouts, ADU.
    comp
        One row per cutout with ``row1, col1, sigma_row1, sigma_col1, amp1`` and the same for 2,
        and ``background`` (cutout coordinates, px; ADU).

    Returns
    -------
    dict
        ``{1: DataFrame, 2: DataFrame}`` with ``r0, c0`` (cutout index of ``s_k``), ``row, col``,
        ``sim0, sim, sigma_row, sigma_col, asp, area, amplitude, intensity, peak_intensity``, and
        ``sim0_pair`` (Sim0 of the whole two-component model).
    """
    x = np.asarray(cutouts, dtype=np.float64)
    n, h, w = x.shape
    rr = np.arange(h, dtype=np.float64)[None, :, None]
    cc = np.arange(w, dtype=np.float64)[None, None, :]
    bg = comp["background"].to_numpy(np.float64)
    sub = x - bg[:, None, None]
    models = {k: _gauss(rr, cc, *(comp[f"{p}{k}"].to_numpy(np.float64) for p in
                                  ("amp", "row", "col", "sigma_row", "sigma_col"))) for k in (1, 2)}
    pair = cosine_similarity(sub, models[1] + models[2])
    out = {}
    for k, other in ((1, 2), (2, 1)):
        own = sub - models[other]
        sim0 = cosine_similarity(own, models[k])
        r, c = comp[f"row{k}"].to_numpy(np.float64), comp[f"col{k}"].to_numpy(np.float64)
        near = ((rr - r[:, None, None]) ** 2 + (cc - c[:, None, None]) ** 2) <= 1.5 ** 2
        masked = np.where(near, own, -np.inf).reshape(n, -1)
        idx = masked.argmax(1)
        none = ~np.isfinite(masked.max(1))  # component outside the cutout
        r0 = np.where(none, np.clip(np.rint(r), 0, h - 1), idx // w).astype(np.int64)
        c0 = np.where(none, np.clip(np.rint(c), 0, w - 1), idx % w).astype(np.int64)
        sr, sc = comp[f"sigma_row{k}"].to_numpy(np.float64), comp[f"sigma_col{k}"].to_numpy(np.float64)
        with np.errstate(all="ignore"):
            sim = sim_from_sim0(sim0)
            asp, area = shape_descriptors(sr, sc)
        out[k] = pd.DataFrame({
            "r0": r0, "c0": c0, "row": r, "col": c,
            "sim0": sim0, "sim": sim,
            "sigma_row": sr, "sigma_col": sc,
            "asp": asp,
            "area": area,
            "amplitude": comp[f"amp{k}"].to_numpy(np.float64),
            "intensity": own.sum(axis=(1, 2)),
            "peak_intensity": x[np.arange(n), np.clip(r0, 0, h - 1), np.clip(c0, 0, w - 1)],
            "sim0_pair": pair,
        })
    return out


def _fit_components(cutouts: np.ndarray, device) -> pd.DataFrame:
    fit = fit_two_gaussians(cutouts, device=device)
    p = fit.params
    names = ["amp1", "row1", "col1", "sigma_row1", "sigma_col1", "amp2", "row2", "col2", "sigma_row2",
             "sigma_col2", "background"]
    df = pd.DataFrame(p, columns=names)
    df["converged"] = fit.converged
    return df


def describe_doubles(cutouts, table: pd.DataFrame, *, predictor=None, model: str | Path | None = None,
                     device: str | torch.device = "cpu", method: str = "cnn", refine: bool = True,
                     threshold: float = 0.5, candidates: str = "bad", require_better: bool = True
                     ) -> pd.DataFrame:
    """Replace every double spot of a spot table by its two components.

    Each cutout is classified by the double-spot network. A spot called double becomes two rows:
    ``parent`` = the original ``spot`` index, ``component`` = 1 (brighter) and 2, fresh ``spot``
    indices (after the frame's largest), and each component's own descriptors (position, widths,
    amplitude, Sim0 / Sim of its own image, see :func:`component_descriptors`). The good-spot
    rule (``sim > 0.5`` and ``|Pos - s| <= 0.9`` px) is applied to each component, ``s`` being the
    component's own brightest pixel. Other rows are returned unchanged.

    Parameters
    ----------
    cutouts
        (N, 32, 32) raw cutouts (ADU), row ``i`` the cutout of ``table`` row ``i`` (initial peak at
        index (16, 16)).
    table
        Spot table in the schema of :mod:`laue_live._schema` (one or several frames).
    predictor
        A :class:`laue_live.doubles.DoublePredictor` (its own threshold applies); default: the
        process-wide one for ``model``, ``device`` and ``threshold``, loaded once.
    model
        Weights of the double-spot network (default: the shipped ``models/doubles_net.safetensors``).
    device
        Torch device of the network and fits.
    method
        ``"cnn"``: components from the network (polished by a short two-Gaussian fit when
        ``refine``); ``"fit"``: components from the exact multi-start two-Gaussian fit.
    refine
        See ``method``.
    threshold
        Probability above which a cutout is called double.
    candidates
        ``"bad"`` (default): only spots the single model called bad are examined, so the result is
        never worse than discarding them; ``"all"``: every spot (on the real BM32 frames this also
        splits good spots that have a streak, see the report).
    require_better
        Keep a spot single unless the two-component model describes its cutout better than the
        single one did (Sim0 of the pair > the row's ``sim0``): a split is never a loss.

    Returns
    -------
    pandas.DataFrame
        The expanded table, schema columns and dtypes; ``attrs["doubles"]`` records the settings
        and the number of spots split.

    Raises
    ------
    SpotTableError
        If the table and the cutouts do not match or a schema column is missing.
    """
    cut = np.asarray(cutouts)
    if cut.ndim != 3 or cut.shape[0] != len(table):
        raise SpotTableError(f"describe_doubles needs one cutout per table row: {cut.shape} vs "
                             f"{len(table)} rows")
    if method not in ("cnn", "fit"):
        raise ValueError(f"method must be 'cnn' or 'fit', got {method!r}")
    if candidates not in ("all", "bad"):
        raise ValueError(f"candidates must be 'all' or 'bad', got {candidates!r}")
    try:
        table = conform_spot_table(table)
    except ValueError as exc:
        raise SpotTableError(str(exc)) from exc
    attrs = {"model": None, "method": method, "threshold": threshold, "min_separation": None, "n_split": 0}
    if len(table) == 0:
        table.attrs["doubles"] = attrs
        return table
    pred = predictor or get_double_predictor(model, device=device, threshold=threshold)
    attrs["model"] = str(pred.path)
    attrs["threshold"], attrs["min_separation"] = pred.threshold, pred.min_separation
    look = np.ones(len(table), bool) if candidates == "all" else ~table["good"].to_numpy(bool)
    look &= table["component"].to_numpy() == 0  # never split a component again
    idx = np.flatnonzero(look)
    comp = pred.predict(cut[idx], refine=(refine and method == "cnn"))
    dbl = comp["n_components"].to_numpy() == 2
    idx, comp = idx[dbl], comp[dbl].reset_index(drop=True)
    if len(idx) and method == "fit":
        fitted = _fit_components(cut[idx], device)
        keep = fitted["converged"].to_numpy()
        idx, comp = idx[keep], fitted[keep].reset_index(drop=True)
    converged = comp["converged"].to_numpy(bool) if "converged" in comp else np.ones(len(idx), bool)
    if len(idx):
        desc = component_descriptors(cut[idx], comp)
        ok = np.isfinite(desc[1][["row", "col", "sim0"]].to_numpy()).all(1) & \
            np.isfinite(desc[2][["row", "col", "sim0"]].to_numpy()).all(1) & \
            (desc[1]["amplitude"].to_numpy() > 0) & (desc[2]["amplitude"].to_numpy() > 0)
        # two components closer than the network's smallest separation are one spot (an exact fit
        # can merge them): kept single rather than written as two identical rows
        sep = np.hypot(desc[1]["row"].to_numpy() - desc[2]["row"].to_numpy(),
                       desc[1]["col"].to_numpy() - desc[2]["col"].to_numpy())
        ok &= sep >= max(float(pred.min_separation or 0.0), 0.5)
        if require_better:
            single = table["sim0"].to_numpy(np.float64)[idx]
            ok &= ~(desc[1]["sim0_pair"].to_numpy() <= np.nan_to_num(single, nan=-1.0))
        idx, converged = idx[ok], converged[ok]
        desc = {k: d[ok].reset_index(drop=True) for k, d in desc.items()}
    if len(idx) == 0:
        table.attrs["doubles"] = attrs
        return table
    parents = table.iloc[idx].reset_index(drop=True)
    next_spot = table.groupby("frame")["spot"].max().to_dict()
    new_rows = []
    for j in range(len(idx)):
        par = parents.iloc[j]
        for k in (1, 2):
            d = desc[k].iloc[j]
            s_row = int(par.row0) - CUTOUT_CENTRE + int(d.r0)
            s_col = int(par.col0) - CUTOUT_CENTRE + int(d.c0)
            d_row, d_col = d.row - d.r0, d.col - d.c0
            f = int(par.frame)
            next_spot[f] += 1
            good = bool(is_good_spot(d.sim, d_row, d_col) and converged[j])
            new_rows.append({
                "frame": f, "spot": next_spot[f], "row0": s_row, "col0": s_col,
                "row": int(par.row0) - CUTOUT_CENTRE + d.row, "col": int(par.col0) - CUTOUT_CENTRE + d.col,
                "d_row": d_row, "d_col": d_col, "sim0": d.sim0, "sim": d.sim, "asp": d.asp,
                "area": d.area, "sigma_row": d.sigma_row, "sigma_col": d.sigma_col,
                "amplitude": d.amplitude, "background": comp["background"].iat[j],
                "intensity": d.intensity, "peak_intensity": d.peak_intensity, "good": good,
                "edge": bool(par.edge), "masked": bool(par.masked), "saturated": bool(par.saturated),
                "converged": bool(converged[j]), "two_theta": np.nan, "chi": np.nan,
                "parent": int(par.spot), "component": k, "_order": idx[j] + 0.1 * k,
            })
    rest = table.drop(index=table.index[idx]).assign(_order=lambda t: t.index.to_numpy(np.float64))
    out = pd.concat([rest, pd.DataFrame(new_rows)], ignore_index=True).sort_values("_order", kind="stable")
    out = conform_spot_table(out.drop(columns="_order"))
    attrs["n_split"] = int(len(idx))
    out.attrs.update(table.attrs)
    out.attrs["doubles"] = attrs
    logger.info("describe_doubles: %d of %d spots split into two components", len(idx), len(table))
    return out
