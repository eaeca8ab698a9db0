"""The evaluation report: the paper's Tables 1-3 and Figures 4-6, reproduced, as Markdown + PNG."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from laue_live._rules import AREA_CLIP, CUTOUT_SIZE, GOOD_DISTANCE, GOOD_SIM, POS_CLIP, is_good_spot
from laue_live.cnn._data import SpotSet
from laue_live.cnn._io import read_metadata
from laue_live.cnn._metrics import confusion, position_error_vs_truth, scores
from laue_live.cnn._network import Architecture, SpotCNN, keras_parameter_count

__all__ = [
    "PAPER_TABLE3",
    "PAPER_TABLE2",
    "plot_loss_curves",
    "plot_sim_histograms",
    "plot_error_histograms",
    "score_tables",
    "write_report",
]

#: Columns of the good/bad confusion table (Table 2) as reported.
CONFUSION_COLUMNS = ("n", "good_as_good", "good_as_bad", "bad_as_good", "bad_as_bad", "pct_good_as_bad",
                     "pct_bad_as_good")
#: The paper's Table 3, aggregated over its five test sets (good spots).
PAPER_TABLE3 = {
    "mae_sim": 0.050,
    "r2_sim": 0.705,
    "pos_err": 0.044,
    "r2_pos": 0.973,
    "mae_area": 0.391,
    "r2_area": 0.649,
    "mae_asp": 0.060,
    "r2_asp": 0.453,
}
#: The paper's Table 1, aggregated (all spots).
PAPER_TABLE1 = {
    "mae_sim": 0.068,
    "r2_sim": 0.913,
    "pos_err": 1.383,
    "r2_pos": 0.149,
    "mae_area": 10.985,
    "r2_area": 0.129,
    "mae_asp": 0.108,
    "r2_asp": 0.344,
}
#: The paper's Table 2: misclassified spots, % of all spots.
PAPER_TABLE2 = {"pct_bad_as_good": 1.3, "pct_good_as_bad": 2.1}
#: Paper Table 5, ms per spot.
PAPER_TABLE5 = {"cnn_gpu": 0.027, "cnn_cpu": 0.647, "lauetools": 2.089}

_GOOD = f"Sim > {GOOD_SIM} and ||Pos - s|| <= {GOOD_DISTANCE} px"
_COLS = ["n", "mae_sim", "r2_sim", "pos_err", "r2_pos", "mae_area", "r2_area", "mae_asp", "r2_asp"]
_LOWER_BETTER = {"mae_sim", "pos_err", "mae_area", "mae_asp"}
_INT_COLS = {"n", "good_as_good", "good_as_bad", "bad_as_good", "bad_as_bad"}


def _plt():
    import matplotlib  # why: matplotlib (~0.5 s with pyplot) loads only for the report's figures

    matplotlib.use("Agg")
    # matplotlib only when a picture is drawn
    import matplotlib.pyplot as plt

    return plt


def plot_loss_curves(histories: dict[str, pd.DataFrame], path: str | Path, title: str = "") -> Path:
    """Training and test loss (MAE over the 5 descriptors) per epoch, one panel per model (Figure 5)."""
    plt = _plt()
    n = len(histories)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.0), sharey=True, squeeze=False)
    for ax, (name, h) in zip(axes[0], histories.items(), strict=True):
        ax.plot(h["epoch"], h["train_loss"], label="training")
        ax.plot(h["epoch"], h["val_loss"], label="test" if n > 1 else "validation")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("MAE loss")
    axes[0][0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sim_histograms(
    original: dict[str, np.ndarray], resampled: dict[str, np.ndarray], path: str | Path
) -> Path:
    """Histograms of Sim per dataset, original (top) and resampled (bottom) (Figure 4)."""
    plt = _plt()
    n = len(original)
    fig, axes = plt.subplots(2, n, figsize=(2.8 * n, 4.8), squeeze=False)
    for j, name in enumerate(original):
        for i, (data, label) in enumerate(((original[name], "original"), (resampled[name], "resampled"))):
            ax = axes[i][j]
            ax.hist(data, bins=12, range=(0, 1), color="C0" if i == 0 else "C1")
            ax.set_title(f"{name} {label} (n={len(data)})", fontsize=9)
            ax.set_xlabel("Sim")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_error_histograms(cmp: pd.DataFrame, path: str | Path) -> Path:
    """2-D histograms of true Sim vs absolute errors of Area, Asp, Sim and position (Figure 6)."""
    plt = _plt()
    from matplotlib.colors import LogNorm  # why: with matplotlib, only for the figures

    err = {
        "|error| Area (px$^2$)": np.abs(cmp["area"] - cmp["area_pred"]),
        "|error| Asp": np.abs(cmp["asp"] - cmp["asp_pred"]),
        "|error| Sim": np.abs(cmp["sim"] - cmp["sim_pred"]),
        "||error|| Pos (px)": np.hypot(cmp["d_row"] - cmp["d_row_pred"], cmp["d_col"] - cmp["d_col_pred"]),
    }
    fig, axes = plt.subplots(2, 2, figsize=(9, 7))
    for ax, (label, e) in zip(axes.ravel(), err.items(), strict=True):
        e = np.asarray(e)
        hi = np.nanpercentile(e, 99) if len(e) else 1  # outliers removed, as in the paper's figure
        keep = e <= hi
        h = ax.hist2d(
            cmp["sim"][keep],
            e[keep],
            bins=(40, 40),
            range=((0, 1), (0, max(hi, 1e-6))),
            density=True,
            norm=LogNorm(),
            cmap="viridis",
        )
        fig.colorbar(h[3], ax=ax)
        ax.set_xlabel("true Sim")
        ax.set_ylabel(label)
    fig.suptitle("Prediction errors vs true Sim, all test spots of the five folds (top 1% per panel removed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def dataset_rows(sets: Sequence[SpotSet]) -> list[str]:
    """Markdown table of the evaluation datasets: spots, share the fit calls good, real spots, description."""
    rows = ["| set | spots | good (fit) | real frames | description |", "|---|---|---|---|---|"]
    for s in sets:
        t = s.table
        good = is_good_spot(t["sim"], t["d_row"], t["d_col"]).mean()
        n_real = int(t["real"].sum()) if "real" in t else 0
        rows.append(
            f"| {s.name} | {len(s):,} | {100 * good:.1f}% | {n_real} | {s.meta.get('description', '')} |"
        )
    return rows


def score_tables(comparisons: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Compute Tables 1, 2 and 3 (all, predicted-good, true-good spots; confusion) per fold + aggregated."""
    folds = {**comparisons, "Aggregated": pd.concat(list(comparisons.values()), ignore_index=True)}
    t1 = pd.DataFrame({k: scores(v) for k, v in folds.items()}).T[_COLS]
    t3 = pd.DataFrame({k: scores(v[v["good_pred"]]) for k, v in folds.items()}).T[_COLS]
    t3t = pd.DataFrame({k: scores(v[v["good"]]) for k, v in folds.items()}).T[_COLS]
    t2 = pd.DataFrame({k: confusion(v) for k, v in folds.items()}).T
    return {"table1": t1, "table3": t3, "table3_true_good": t3t, "table2": t2}


def _md(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    cols = list(df.columns)
    lines = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for idx, row in df.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if c in _INT_COLS and np.isfinite(v):
                cells.append(f"{int(v):,}")
            elif isinstance(v, (float, np.floating)):
                cells.append(format(float(v), floatfmt))
            else:
                cells.append(str(v))
        lines.append(f"| {idx} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _vs_paper(ours: dict, paper: dict) -> pd.DataFrame:
    rows = {}
    for k, p in paper.items():
        o = float(ours[k])
        met = o < p if k in _LOWER_BETTER else o > p
        rows[k] = {"laue-live": o, "paper": p, "met": "yes" if met else "no"}
    return pd.DataFrame(rows).T


def write_report(
    out_dir: str | Path,
    *,
    sets: Sequence[SpotSet],
    resampled: dict[str, np.ndarray],
    lodo,
    default_history: pd.DataFrame | None = None,
    default_info: dict | None = None,
    bench: dict | None = None,
    notes: str = "",
    title: str = "Spot CNN evaluation",
) -> Path:
    """Write ``REPORT.md`` and the PNG figures into ``out_dir``; returns the Markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_sim_histograms(
        {s.name: s.table["sim"].to_numpy() for s in sets}, resampled, out / "fig4_sim_histograms.png"
    )
    plot_loss_curves(lodo.histories, out / "fig5_loss_curves.png", "leave-one-dataset-out models")
    allcmp = lodo.all
    plot_error_histograms(allcmp, out / "fig6_error_histograms.png")
    if default_history is not None:
        plot_loss_curves({"default model": default_history}, out / "default_loss_curve.png")
    tabs = score_tables(lodo.comparisons)
    for k, v in tabs.items():
        v.to_csv(out / f"{k}.csv")
    agg3 = tabs["table3"].loc["Aggregated"].to_dict()
    t3cmp = _vs_paper(agg3, PAPER_TABLE3)
    t2 = tabs["table2"]
    t2view = t2[list(CONFUSION_COLUMNS)]
    conf_met = (
        float(t2.loc["Aggregated", "pct_bad_as_good"]) < PAPER_TABLE2["pct_bad_as_good"],
        float(t2.loc["Aggregated", "pct_good_as_bad"]) < PAPER_TABLE2["pct_good_as_bad"],
    )
    lines = [
        f"# {title}",
        "",
        notes,
        "",
        "## Datasets",
        "",
        *dataset_rows(sets),
    ]
    lines += [
        "",
        "![Figure 4](fig4_sim_histograms.png)",
        "",
        "Figure 4: Sim per dataset, original (top) and resampled to ~uniform (bottom; 12 bins, up to "
        f"{lodo.config.get('per_bin', 2000)} each).",
        "",
        "## Table 1: all spots (each model on its unseen dataset, not resampled)",
        "",
        _md(tabs["table1"]),
        "",
        f"## Table 2: good / bad confusion (good: {_GOOD}; truth from the fit, prediction from the CNN; "
        "% of all spots)",
        "",
        _md(t2view, ".2f"),
        "",
        f"Paper: {PAPER_TABLE2['pct_bad_as_good']}% bad predicted good, {PAPER_TABLE2['pct_good_as_bad']}% "
        f"good predicted bad. Here (aggregated): {t2.loc['Aggregated', 'pct_bad_as_good']:.2f}% "
        f"({'met' if conf_met[0] else 'not met'}) and {t2.loc['Aggregated', 'pct_good_as_bad']:.2f}% "
        f"({'met' if conf_met[1] else 'not met'}).",
        "",
        "## Table 3: good spots",
        "",
        "As in the paper's text, Table 3 restricts Table 1 to the spots the CNN predicts good "
        f"(predicted {_GOOD}):",
        "",
        _md(tabs["table3"]),
        "",
        "Restricted to the spots the *fit* calls good instead:",
        "",
        _md(tabs["table3_true_good"]),
        "",
        "### Against the paper's Table 3 (aggregated, good spots)",
        "",
        _md(t3cmp),
        "",
    ]
    if getattr(lodo, "comparisons_fp32", None):
        fp = pd.concat(list(lodo.comparisons_fp32.values()), ignore_index=True)
        rows = {
            "int8 (CPU default)": {**confusion(allcmp), **scores(allcmp[allcmp["good_pred"]])},
            "float32": {**confusion(fp), **scores(fp[fp["good_pred"]])},
        }
        view = pd.DataFrame(rows).T[_COLS + ["pct_bad_as_good", "pct_good_as_bad"]]
        lines += [
            "### int8 vs float32 inference (aggregated, predicted-good spots)",
            "",
            'The tables above use what `method="cnn"` runs on a CPU: int8 static quantization. The same '
            "models in float32 (what runs on a GPU, in float16):",
            "",
            _md(view),
            "",
        ]
    pe = position_error_vs_truth(allcmp)
    if len(pe):
        good = allcmp[allcmp["good"]]
        pe_good = position_error_vs_truth(good)
        lines += [
            "## Position error against the simulator's truth",
            "",
            "||Pos - Pos_true|| in px over the simulated test spots (real frames have no truth). "
            "BraggNN reports 0.29 px (p75) and 0.57 px (p95).",
            "",
            "All matched spots:",
            "",
            _md(pe, ".3f"),
            "",
            "Spots the fit calls good:",
            "",
            _md(pe_good, ".3f"),
            "",
        ]
    if "real" in allcmp and allcmp["real"].any():
        real = allcmp[allcmp["real"].astype(bool)]
        lines += [
            "## Real BM32 frames only (inside their fold)",
            "",
            _md(
                pd.DataFrame({"all": scores(real), "predicted good": scores(real[real["good_pred"]])}).T[
                    _COLS
                ]
            ),
            "",
            _md(pd.DataFrame({"real": confusion(real)}).T[t2view.columns], ".2f"),
            "",
        ]
    lines += [
        "## Figures 5 and 6",
        "",
        "![Figure 5](fig5_loss_curves.png)",
        "",
        "Figure 5: training and test loss of the five cross-validation models.",
        "",
        "![Figure 6](fig6_error_histograms.png)",
        "",
        "Figure 6: prediction errors against the true Sim.",
        "",
    ]
    if default_history is not None:
        lines += [
            "## Default model",
            "",
            "![default loss](default_loss_curve.png)",
            "",
            "```json",
            json.dumps(default_info or {}, indent=1),
            "```",
            "",
        ]
    if bench:
        lines += ["## Speed (benchmarks/bench_cnn.py)", "", "```json", json.dumps(bench, indent=1), "```", ""]
    lines += ["## Protocol", "", "```json", json.dumps(lodo.config, indent=1), "```", ""]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines))
    return path


def write_model_card(
    path: str | Path,
    model_path: str | Path,
    *,
    tables: dict[str, pd.DataFrame] | None = None,
    sets: Sequence[SpotSet] = (),
    lodo_config: dict | None = None,
    bench: dict | None = None,
    report: str = "docs/report/REPORT.md",
) -> Path:
    """Write a Markdown model card for ``model_path``: data, protocol, normalisation, version, metrics."""
    meta = read_metadata(model_path)
    info = meta.get("info", {})
    arch = Architecture.from_dict(meta["architecture"])
    lines = [
        f"# Model card: `{Path(model_path).name}`",
        "",
        f"- **Version**: {info.get('version', 'unknown')} (file format {meta['format']} "
        f"v{meta['format_version']})",
        "- **Task**: predict the exact Gaussian fit's descriptors `Desc = (Sim, Pos*_row, "
        "Pos*_col, Asp, Area*)` "
        "from a raw 32 x 32 cutout centred on the initial peak (index 16, 16).",
        f"- **Architecture**: widths {list(arch.widths)}, dense {list(arch.dense)} -> 5 sigmoid; "
        f"{keras_parameter_count(SpotCNN(arch)):,} parameters (Keras counting).",
        f"- **Input normalisation**: `{meta['normalisation']}` (per-cutout (I - min) / (max - min), "
        "flat -> 0).",
        "- **Inference**: BN folded into convolutions; int8 static quantization on the CPU "
        "(calibrated on 256 "
        "training cutouts stored in the file), float16 autocast on CUDA.",
        f"- **Training data**: {json.dumps(info.get('data', {}))} spot candidates "
        f"({info.get('n_train', '?')} after resampling); datasets described in `{report}`.",
        f"- **Protocol**: `{json.dumps(info.get('protocol', {}))}`",
        f"- **Training time**: {info.get('seconds', '?')} s on one CPU thread (shared machine); "
        "final training "
        f"loss {info.get('final_train_loss', float('nan')):.4f}, validation loss "
        f"{info.get('final_val_loss', float('nan')):.4f} (MAE over the 5 descriptors).",
        "",
    ]
    if sets:
        lines += ["## Data", "", "| set | spots | description |", "|---|---|---|"]
        lines += [f"| {s.name} | {len(s):,} | {s.meta.get('description', '')} |" for s in sets]
        lines.append("")
    if tables is not None:
        t1 = tables["table1"].loc["Aggregated"]
        t3 = tables["table3"].loc["Aggregated"]
        t2 = tables["table2"].loc["Aggregated"]
        lines += [
            "## Metrics (leave-one-dataset-out, same architecture and protocol"
            + (f", {lodo_config.get('epochs')} epochs" if lodo_config else "")
            + ")",
            "",
            "| | MAE Sim | R2 Sim | PosErr px | R2 Pos | MAE Area px^2 | R2 Area | MAE Asp | R2 Asp |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, row, ref in (("all spots", t1, PAPER_TABLE1), ("good spots", t3, PAPER_TABLE3)):
            lines.append(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in PAPER_TABLE3) + " |")
            lines.append(f"| paper, {name} | " + " | ".join(f"{ref[k]:.3f}" for k in PAPER_TABLE3) + " |")
        lines += [
            "",
            f"Misclassified: {t2['pct_bad_as_good']:.2f}% bad as good, {t2['pct_good_as_bad']:.2f}% good as "
            "bad (paper: 1.3% and 2.1%).",
            "",
        ]
    if bench:
        c = bench.get("cnn_cpu", {})
        lines += ["## Speed (one CPU thread)", ""]
        for k in ("predictor_network_only_ms", "predictor_end_to_end_ms"):
            if isinstance(c.get(k), float):
                lines.append(f"- {k}: {c[k]:.3f} ms/spot")
        lines.append("")
    lines += [
        "## Limits",
        "",
        "- Trained on simulated frames plus two real BM32 frames; check on new detectors/distances (spots "
        f"must fit in {CUTOUT_SIZE} x {CUTOUT_SIZE} px).",
        f"- Positions saturate at +-{POS_CLIP} px and areas at {AREA_CLIP / math.pi:g} pi px^2 (the training "
        "ranges); spots beyond are bad by definition.",
        "",
    ]
    path = Path(path)
    path.write_text("\n".join(lines))
    return path
