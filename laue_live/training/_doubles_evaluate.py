"""Evaluation of the double-spot model: the numbers and pictures of ``docs/report/doubles/``.

``nice python -m laue_live.training._doubles_evaluate --help``. Synthetic test doubles use the real spots of
frame ``nw1_0000`` only (the network was trained on those of ``nw1_0001``) plus simulated spots.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import torch

from laue_live._rules import CUTOUT_CENTRE
from laue_live.describe import analyze_frame
from laue_live.doubles import (
    DoublePredictor,
    RealSpotBank,
    describe_doubles,
    fit_two_gaussians,
    make_doubles,
    match_errors,
    split_bank,
)
from laue_live.spots import extract_cutouts

__all__ = ["synthetic_evaluation", "real_frame_evaluation", "write_report"]

logger = logging.getLogger(__name__)

SEP_BINS = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.5])
RATIO_BINS = np.array([1.0, 2.0, 5.0, 10.0, 20.0001])


def synthetic_evaluation(predictor: DoublePredictor, bank: RealSpotBank | None, *, n_doubles: int = 4000,
                         n_singles: int = 2000, n_fit: int = 800, seed: int = 7,
                         predictor8: DoublePredictor | None = None) -> dict[str, pd.DataFrame]:
    """Classify and locate synthetic doubles and singles; compare with the exact two-Gaussian fit.

    Returns
    -------
    dict
        ``"doubles"``: one row per double (truth, predicted class, component errors of the network,
        of the network polished by the fit, and, for the first ``n_fit``, of the exact multi-start
        fit); ``"singles"``: one row per single with the predicted class; ``"timing"``.
    """
    rng = np.random.default_rng(seed)
    cut_d, tru_d = make_doubles(n_doubles, rng=rng, bank=bank, real_fraction=0.5, double_fraction=1.0)
    cut_s, tru_s = make_doubles(n_singles, rng=rng, bank=bank, real_fraction=0.5, double_fraction=0.0)
    t0 = time.perf_counter()
    raw = predictor.predict(cut_d, refine=False)
    t1 = time.perf_counter()
    pol = predictor.predict(cut_d, refine=True)
    t2 = time.perf_counter()
    sing = predictor.predict(cut_s, refine=False)
    d = tru_d.copy()
    d["p_double"] = raw["p_double"].to_numpy()
    d["called_double"] = raw["n_components"].to_numpy() == 2
    d["err1_net"], d["err2_net"] = match_errors(raw, tru_d)
    d["err1_polish"], d["err2_polish"] = match_errors(pol, tru_d)
    d["refined"] = pol["refined"].to_numpy()
    d["ratio_err_net"] = np.abs(np.log(raw["ratio"].to_numpy() / tru_d["ratio"].to_numpy()))
    if predictor8 is not None:  # the int8 CPU variant of the same network
        p8 = predictor8.predict(cut_d, refine=True)
        d["called_double_int8"] = p8["n_components"].to_numpy() == 2
        d["err1_int8"], d["err2_int8"] = match_errors(p8, tru_d)
        s8 = predictor8.predict(cut_s)
    d["err1_fit"] = np.nan
    d["err2_fit"] = np.nan
    k = min(n_fit, n_doubles)
    t3 = time.perf_counter()
    fit = fit_two_gaussians(cut_d[:k].astype(np.float64))
    t4 = time.perf_counter()
    fp = pd.DataFrame(fit.params[:, [1, 2, 6, 7]], columns=["row1", "col1", "row2", "col2"])
    e1, e2 = match_errors(fp, tru_d.iloc[:k].reset_index(drop=True))
    d.loc[: k - 1, "err1_fit"] = e1
    d.loc[: k - 1, "err2_fit"] = e2
    s = tru_s[["real"]].copy()
    s["p_double"] = sing["p_double"].to_numpy()
    s["called_double"] = sing["n_components"].to_numpy() == 2
    s["err1_net"] = np.hypot(sing["row1"] - tru_s["row1"], sing["col1"] - tru_s["col1"]).to_numpy()
    if predictor8 is not None:
        s["called_double_int8"] = s8["n_components"].to_numpy() == 2
    timing = pd.DataFrame({"what": ["network", "network + polish of the doubles", "exact two-Gaussian fit"],
                           "ms_per_cutout": [1e3 * (t1 - t0) / n_doubles, 1e3 * (t2 - t1) / n_doubles,
                                             1e3 * (t4 - t3) / k]})
    show = np.flatnonzero((tru_d.separation >= 1.5).to_numpy())[:12]
    examples = {"cutouts": cut_d[show], "truth": tru_d.iloc[show].reset_index(drop=True),
                "pred": pol.iloc[show].reset_index(drop=True)}
    return {"doubles": d, "singles": s, "timing": timing, "examples": examples}


def _md(df: pd.DataFrame, index: bool = True, digits: int = 3) -> str:
    """Format a DataFrame as a Markdown table (no optional dependency)."""
    def f(v):
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    cols = ([df.index.name or ""] if index else []) + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in df.iterrows():
        cells = ([str(idx)] if index else []) + [f(v) for v in row.to_numpy()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _binned(d: pd.DataFrame, value: str, by: str, bins: np.ndarray, stat: str = "mean") -> pd.Series:
    cats = pd.cut(d[by], bins, right=False)
    return d.groupby(cats, observed=False)[value].agg(stat)


def real_frame_evaluation(data_dir: Path, predictor: DoublePredictor, *, method: str = "fit",
                          device="cpu") -> dict:
    """Run the single model, then :func:`describe_doubles` on the real BM32 frames.

    Returns
    -------
    dict
        Per frame: numbers of spots, bad spots, bad spots split, and bad spots recovered as two good
        components; plus the cutouts and rows of the recovered spots (for the picture).
    """
    out = {"frames": [], "examples": []}
    for tif in sorted(Path(data_dir).glob("nw1_*.tif")):
        frame = tifffile.imread(tif)
        table = analyze_frame(frame, method=method)
        cut = extract_cutouts(frame, table[["row0", "col0"]].to_numpy())
        full = describe_doubles(cut, table, predictor=predictor, device=device, candidates="all")
        comps = full[full["component"] > 0]
        bad = table[~table["good"]]
        split = comps.groupby("parent")["good"].agg(["size", "all"])
        split_bad = split[split.index.isin(bad["spot"])]
        split_good = split[~split.index.isin(bad["spot"])]
        rec = split_bad[split_bad["all"]].index.to_numpy()
        out["frames"].append({
            "frame": tif.name, "spots": len(table), "bad (single model)": len(bad),
            "split into two": int(len(split)), "bad split": int(len(split_bad)),
            "bad recovered as two good components": int(len(rec)),
            "good split": int(len(split_good)),
        })
        for p in split.index:
            i = int(np.flatnonzero(table["spot"].to_numpy() == p)[0])
            out["examples"].append({"frame": tif.name, "cutout": cut[i], "single": table.iloc[i],
                                    "components": comps[comps["parent"] == p]})
    return out


def _plots(res: dict, real: dict | None, out_dir: Path) -> list[str]:
    import matplotlib  # why: matplotlib (~0.5 s with pyplot) loads only for the report's pictures

    matplotlib.use("Agg")
    # matplotlib only when a picture is drawn
    import matplotlib.pyplot as plt

    files = []
    d, s = res["doubles"], res["singles"]
    mid = 0.5 * (SEP_BINS[1:] + SEP_BINS[:-1])
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for lo, hi in zip(RATIO_BINS[:-1], RATIO_BINS[1:], strict=True):
        sub = d[(d.ratio >= lo) & (d.ratio < hi)]
        ax[0].plot(mid, _binned(sub, "called_double", "separation", SEP_BINS).to_numpy(), "o-",
                   label=f"ratio 1:{lo:g}-1:{hi:.0f}")
    ax[0].axhline(0.98, ls=":", c="k")
    ax[0].axvline(3, ls=":", c="gray")
    ax[0].set(xlabel="separation (px)", ylabel="fraction called double", ylim=(0, 1.02),
              title=f"doubles (singles called single: {1 - s.called_double.mean():.3f})")
    ax[0].legend()
    for col, lab in (("err2_net", "network"), ("err2_polish", "network + fit polish"),
                     ("err2_fit", "exact 2-Gaussian fit")):
        ax[1].semilogy(mid, _binned(d[d.ratio <= 5], col, "separation", SEP_BINS, "median").to_numpy(), "o-",
                       label=f"{lab}, component 2")
    ax[1].semilogy(mid, _binned(d[d.ratio <= 5], "err1_polish", "separation", SEP_BINS, "median").to_numpy(),
                   "s--", label="network + fit polish, component 1")
    ax[1].axhline(0.1, ls=":", c="k")
    ax[1].set(xlabel="separation (px)", ylabel="median position error vs truth (px)",
              title="component position error (ratios up to 1:5)")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy_vs_separation.png", dpi=110)
    plt.close(fig)
    files.append("accuracy_vs_separation.png")

    acc = d.pivot_table(index=pd.cut(d.ratio, RATIO_BINS, right=False),
                        columns=pd.cut(d.separation, SEP_BINS, right=False),
                        values="called_double", aggfunc="mean", observed=False)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    im = ax.imshow(acc.to_numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(acc.columns)), [f"{c.left:g}-{c.right:g}" for c in acc.columns])
    ax.set_yticks(range(len(acc.index)), [f"1:{c.left:g}-{c.right:.0f}" for c in acc.index])
    for (i, j), v in np.ndenumerate(acc.to_numpy()):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k", fontsize=8)
    ax.set(xlabel="separation (px)", ylabel="intensity ratio", title="doubles called double")
    fig.colorbar(im)
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy_map.png", dpi=110)
    plt.close(fig)
    files.append("accuracy_map.png")

    ex = res.get("examples")
    if ex is not None:
        fig, axs = plt.subplots(3, 4, figsize=(12, 9.6))
        for a, c, (_, t), (_, q) in zip(axs.ravel(), ex["cutouts"], ex["truth"].iterrows(),
                                        ex["pred"].iterrows(), strict=False):
            a.imshow(np.log1p(np.clip(c - np.median(c), 0, None)), cmap="magma")
            a.plot([t.col1, t.col2], [t.row1, t.row2], "w+", ms=14, mew=1)
            if q.n_components == 2:
                a.plot([q.col1], [q.row1], "x", c="lime", ms=9, mew=1.5)
                a.plot([q.col2], [q.row2], "o", c="lime", ms=9, mfc="none", mew=1.5)
            else:
                a.plot([q.col1], [q.row1], "x", c="red", ms=9, mew=1.5)
            a.set_title(f"{'real' if t.real else 'sim'} sep {t.separation:.1f} px, 1:{t.ratio:.1f}\n"
                        f"P(double) {q.p_double:.2f}", fontsize=8)
            a.set_xlim(4, 27)
            a.set_ylim(27, 4)
        fig.suptitle("Synthetic test doubles (white +: truth; green x / o: components 1 / 2 found, "
                     "red x: called single; log scale, central 24 px)", fontsize=9)
        fig.tight_layout()
        fig.savefig(out_dir / "synthetic_examples.png", dpi=100)
        plt.close(fig)
        files.append("synthetic_examples.png")

    if real and real["examples"]:
        ex = real["examples"][:16]
        n = len(ex)
        cols = 4
        rows = (n + cols - 1) // cols
        fig, axs = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.3 * rows), squeeze=False)
        for a in axs.ravel():
            a.axis("off")
        for a, e in zip(axs.ravel(), ex, strict=False):
            c = e["cutout"].astype(float)
            a.imshow(np.log1p(np.clip(c - np.median(c), 0, None)), cmap="magma")
            sgl = e["single"]
            a.plot(CUTOUT_CENTRE + sgl.d_col, CUTOUT_CENTRE + sgl.d_row, "c+", ms=12, mew=1.5)
            for _, r in e["components"].iterrows():
                a.plot(r.col - sgl.col0 + CUTOUT_CENTRE, r.row - sgl.row0 + CUTOUT_CENTRE,
                       "x" if r.component == 1 else "o",
                       c="lime" if r.good else "red", ms=9, mfc="none", mew=1.5)
            g = "".join("G" if v else "b" for v in e["components"]["good"])
            a.set_title(f"{e['frame'][:8]} spot {int(sgl.spot)}: single sim {sgl.sim:.2f}"
                        f" {'good' if sgl.good else 'BAD'}\ncomponents {g}", fontsize=8)
        fig.suptitle("Real BM32 spots split in two (cyan +: single fit; x / o: components 1 / 2, "
                     "green good, red bad; log scale)", fontsize=9)
        fig.tight_layout()
        fig.savefig(out_dir / "real_examples.png", dpi=110)
        plt.close(fig)
        files.append("real_examples.png")
    return files


def write_report(res: dict, real: dict | None, out_dir: str | Path, meta: dict) -> Path:
    """Write ``REPORT.md``, ``summary.json`` and the PNGs into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = _plots(res, real, out_dir)
    d, s = res["doubles"], res["singles"]
    goal = d[(d.separation >= 3) & (d.ratio <= 5)]
    acc_goal = float(np.r_[goal.called_double.to_numpy(), ~s.called_double.to_numpy()].mean())
    med = {c: float(np.nanmedian(np.r_[goal[f"err1_{c}"], goal[f"err2_{c}"]]))
           for c in ("net", "polish", "fit")}
    int8_line = ""
    if "called_double_int8" in d:
        acc8 = float(np.r_[goal.called_double_int8.to_numpy(), ~s.called_double_int8.to_numpy()].mean())
        med8 = float(np.nanmedian(np.r_[goal.err1_int8, goal.err2_int8]))
        summary_int8 = {"accuracy_goal_region": acc8, "median_component_error_goal_px": med8}
        met8 = "yes" if acc8 >= 0.98 and med8 <= 0.1 else "no"
        int8_line = ("| same, int8 CPU network: classified / median error with polish | >= 98% / <= 0.1 px | "
                     f"{100 * acc8:.1f}% / {med8:.3f} px | {met8} |")
    else:
        summary_int8 = None
    per_sep = pd.DataFrame({
        "called double (all ratios)": _binned(d, "called_double", "separation", SEP_BINS),
        "called double (ratio <= 5)": _binned(d[d.ratio <= 5], "called_double", "separation", SEP_BINS),
        "median err net (px)": _binned(d[d.ratio <= 5], "err2_net", "separation", SEP_BINS, "median"),
        "median err polish (px)": _binned(d[d.ratio <= 5], "err2_polish", "separation", SEP_BINS, "median"),
        "median err fit (px)": _binned(d[d.ratio <= 5], "err2_fit", "separation", SEP_BINS, "median"),
    })
    per_ratio = pd.DataFrame({
        "called double (sep >= 3)": _binned(d[d.separation >= 3], "called_double", "ratio", RATIO_BINS),
        "called double (all sep)": _binned(d, "called_double", "ratio", RATIO_BINS),
    })
    ok_sep = per_sep["called double (ratio <= 5)"]
    resolved = [iv.left for iv, v in ok_sep.items() if v >= 0.9]
    summary = {"accuracy_goal_region": acc_goal, "singles_called_single": float(1 - s.called_double.mean()),
               "median_component_error_goal_px": med, "timing_ms_per_cutout": res["timing"].to_dict("list"),
               "resolved_from_px_90pct": float(min(resolved)) if resolved else None, "int8": summary_int8,
               **meta}
    if real:
        summary["real"] = real["frames"]
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    lines = [
        "# Double spots: evaluation report", "",
        f"Model: `{meta.get('model')}`; {meta.get('training', '')}", "",
        f"Synthetic test set: {len(d)} doubles and {len(s)} singles, half built from real BM32 spots of "
        "`nw1_0000` (held out of training) and half simulated; separations 0.5-10 px (uniform), "
        "intensity ratios 1:1-1:20 (log-uniform), any direction. Positions are compared with the "
        "truth; the exact two-Gaussian fit was run on the first "
        f"{int(d.err1_fit.notna().sum())} doubles.", "",
        "## Goal: separation >= 3 px, ratio up to 1:5", "",
        "| criterion | goal | measured | met |", "|---|---|---|---|",
        f"| correctly classified (doubles in the region + all singles) | >= 98% | {100 * acc_goal:.1f}% | "
        f"{'yes' if acc_goal >= 0.98 else 'no'} |",
        f"| median component position error, network alone | <= 0.1 px | {med['net']:.3f} px | "
        f"{'yes' if med['net'] <= 0.1 else 'no'} |",
        f"| median component position error, network + fit polish | <= 0.1 px | {med['polish']:.3f} px | "
        f"{'yes' if med['polish'] <= 0.1 else 'no'} |",
        f"| (reference) exact multi-start two-Gaussian fit | | {med['fit']:.3f} px | |", int8_line, "",
        f"Singles called single: {100 * (1 - s.called_double.mean()):.1f}% "
        f"(real {100 * (1 - s[s.real].called_double.mean()):.1f}%, simulated "
        f"{100 * (1 - s[~s.real].called_double.mean()):.1f}%).", "",
        "## Versus separation", "", _md(per_sep), "",
        "## Versus intensity ratio", "", _md(per_ratio), "",
        "![accuracy and position error vs separation](accuracy_vs_separation.png)", "",
        "![fraction called double by separation and ratio](accuracy_map.png)", "",
        "![synthetic examples](synthetic_examples.png)", "",
        "## Speed (this run, CPU, shared machine; see `benchmarks/bench_doubles.py` for side-by-side)", "",
        _md(res["timing"], index=False), "",
    ]
    if real:
        lines += ["## Real BM32 frames", "",
                  "Single model: exact single-Gaussian fit (`analyze_frame(method='fit')`), good-spot "
                  "rule of SCIENCE.md. Then `describe_doubles(..., candidates='all')` on every spot (the "
                  "default, `candidates='bad'`, examines only the bad ones: the 'good split' column "
                  "then drops to 0 and the other columns are unchanged).", "",
                  _md(pd.DataFrame(real["frames"]), index=False), ""]
        if "real_examples.png" in files:
            lines += ["![real spots split in two](real_examples.png)", ""]
    lines += [meta.get("notes", "")]
    path = out_dir / "REPORT.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Evaluate the double-spot network and write "
                                "docs/report/doubles/.")
    p.add_argument("--data", default="../shared/data/bm32", help="folder with the BM32 frames and peak lists")
    p.add_argument("--model", default=None, help="double-spot weights (default: the shipped model)")
    p.add_argument("--out", default="docs/report/doubles", help="report folder")
    p.add_argument("--n-doubles", type=int, default=4000)
    p.add_argument("--n-singles", type=int, default=2000)
    p.add_argument("--n-fit", type=int, default=600, help="doubles also fitted by the exact two-Gaussian fit")
    p.add_argument("--no-real", action="store_true", help="skip the real-frame part")
    p.add_argument("--notes", default=None, help="Markdown file appended to the report (discussion)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)  # shared 2-core machine: one thread wastes no CPU on spinning
    pred = DoublePredictor(a.model)
    bank = RealSpotBank.from_bm32(a.data)
    _, test_bank = split_bank(bank, val_frame=0)
    try:
        pred8 = DoublePredictor(a.model, quantize=True)
    except Exception as exc:  # no int8 engine here
        logger.warning("int8 variant not evaluated: %s", exc)
        pred8 = None
    res = synthetic_evaluation(pred, test_bank, n_doubles=a.n_doubles, n_singles=a.n_singles, n_fit=a.n_fit,
                               predictor8=pred8)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    res["doubles"].to_csv(Path(a.out) / "synthetic_doubles.csv.gz", index=False)
    real = None if a.no_real else real_frame_evaluation(Path(a.data), pred)
    info = pred.metadata.get("info", {})
    meta = {"model": str(pred.path), "training": f"trained {info.get('steps')} steps, "
            f"{info.get('examples')} examples, {info.get('history', [{}])[-1].get('cpu_seconds')} CPU-s"}
    if a.notes:
        meta["notes"] = Path(a.notes).read_text()
    write_report(res, real, a.out, meta)
    logger.info("report written to %s", a.out)


if __name__ == "__main__":
    _main()
