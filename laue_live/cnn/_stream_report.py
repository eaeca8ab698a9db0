"""The evaluation report of a stream-trained spot network (issue 15) and its model card.

Everything is measured in the run that writes the report: the paper's Tables 1-3 and Figures 4-6 on
the five evaluation datasets (D1-D5), the real frames against the exact fit and the targets, clean
Gaussians against truth per width band, and the Pareto table (:mod:`laue_live.cnn._pareto`).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from laue_live.cnn._accuracy import TARGETS, WIDTH_BANDS, band_errors, clean_gaussians, frame_scores
from laue_live.cnn._architectures import SpotNet, count_flops
from laue_live.cnn._data import SpotSet
from laue_live.cnn._evaluate import evaluate
from laue_live.cnn._io import load_model
from laue_live.cnn._metrics import confusion, position_error_vs_truth, scores
from laue_live.cnn._network import keras_parameter_count
from laue_live.cnn._predictor import Predictor
from laue_live.cnn._report import (
    CONFUSION_COLUMNS,
    PAPER_TABLE2,
    PAPER_TABLE3,
    _md,
    _plt,
    _vs_paper,
    dataset_rows,
    plot_error_histograms,
    plot_sim_histograms,
    score_tables,
)
from laue_live.spots import fit_descriptors

__all__ = [
    "plot_stream_curves",
    "real_frame_table",
    "write_stream_report",
    "write_stream_model_card",
    "machine_description",
]

_TARGET_COLS = (
    "pos_err_mean",
    "pos_err_p95",
    "mae_sim",
    "mae_area",
    "mae_asp",
    "pct_bad_as_good",
    "pct_good_as_bad",
)


def machine_description() -> str:
    """Return the CPU model and core count of this machine, one line."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    return f"{names[0] if names else platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def plot_stream_curves(history: pd.DataFrame, path: str | Path) -> Path:
    """Training, validation and per-dataset test loss against training cutouts seen (Figure 5)."""
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    x = history["samples"] / 1e6
    ax[0].plot(x, history["train_loss"], label="training (stream)", color="k")
    ax[0].plot(x, history["val_loss"], label="validation (stream, other seed)", color="k", ls="--")
    for c in [c for c in history.columns if c.startswith("loss_")]:
        ax[1].plot(x, history[c], label=c[5:])
    for a in ax:
        a.set_xlabel("training cutouts seen (millions)")
        a.set_ylabel("weighted MAE loss")
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    ax[0].set_title("training and validation")
    ax[1].set_title("unseen test sets (never used for selection)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def real_frame_table(
    predictors: Mapping[str, object], frames: Mapping[str, tuple[np.ndarray, pd.DataFrame]]
) -> pd.DataFrame:
    """Scores against the exact fit per real frame and pooled, for each predictor (``.predict``)."""
    rows = {}
    pooled_c = np.concatenate([c for c, _ in frames.values()])
    pooled_t = pd.concat([t for _, t in frames.values()], ignore_index=True)
    for label, p in predictors.items():
        for name, (c, t) in {**frames, "all four": (pooled_c, pooled_t)}.items():
            rows[(label, name)] = frame_scores(t, p.predict(c))
    df = pd.DataFrame(rows).T
    df.index = [f"{a}: {b}" for a, b in df.index]
    return df


def _targets_row() -> dict:
    return {k: TARGETS[k] for k in _TARGET_COLS}


def _met(df: pd.DataFrame) -> pd.Series:
    return pd.Series(
        {i: "yes" if all(float(r[k]) < TARGETS[k] for k in _TARGET_COLS) else "no" for i, r in df.iterrows()}
    )


def write_stream_report(
    out_dir: str | Path,
    *,
    model_path: str | Path,
    sets: Sequence[SpotSet],
    frames: Mapping[str, tuple[np.ndarray, pd.DataFrame]],
    history: pd.DataFrame,
    info: dict,
    pareto: pd.DataFrame | None = None,
    stream_sim: tuple[np.ndarray, np.ndarray] | None = None,
    fit_self: pd.DataFrame | None = None,
    notes: str = "",
    auto: dict | None = None,
) -> Path:
    """Write ``REPORT.md`` and its figures into ``out_dir``.

    Parameters
    ----------
    model_path
        The shipped model.
    sets
        D1-D5 (none of them trained on).
    frames
        ``{name: (cutouts, exact-fit table)}`` of the real frames.
    history, info
        Training history and information of the model (as stored in its metadata).
    pareto
        :func:`~laue_live.cnn._pareto.pareto_table` of the compared methods.
    stream_sim
        Sim of a stream chunk before and after the uniform draw (Figure 4's last column).
    fit_self
        The exact fit against itself with more iterations, per real frame (how well defined the
        reference is).
    notes
        Markdown inserted after the title.
    auto
        What ``method="auto"`` picks per device and why.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shipped = Predictor(model_path, "cpu")  # int8 on the CPU, with the model's recommended polish
    p8 = Predictor(model_path, "cpu", quantize=True, polish=0)
    p32 = Predictor(model_path, "cpu", quantize=False, polish=0)
    k = shipped.polish
    shipped_label = (
        f"shipped: network int8 + {k} fit iteration{'s' if k != 1 else ''}" if k else "shipped: int8"
    )
    cmps = {s.name: evaluate(p8, s) for s in sets}
    tabs = score_tables(cmps)
    for name, v in tabs.items():
        v.to_csv(out / f"{name}.csv")
    shipped_cmp = pd.concat([evaluate(shipped, s) for s in sets], ignore_index=True)
    original = {s.name: s.table["sim"].to_numpy() for s in sets}
    resampled = dict(original)
    if stream_sim is not None:
        original["training stream"], resampled["training stream"] = stream_sim
    plot_sim_histograms(original, resampled, out / "fig4_sim_histograms.png")
    plot_stream_curves(history, out / "fig5_loss_curves.png")
    allcmp = pd.concat(list(cmps.values()), ignore_index=True)
    plot_error_histograms(allcmp, out / "fig6_error_histograms.png")
    rows = (
        {shipped_label: shipped, "network alone, int8": p8, "network alone, float32": p32}
        if k
        else {shipped_label: shipped, "network alone, float32": p32}
    )
    real = real_frame_table(rows, frames)
    real.to_csv(out / "real_frames.csv")
    gc, gt = clean_gaussians(200, seed=11)

    def med(table):
        return band_errors(*table[["d_row", "d_col"]].to_numpy().T, gt).set_index("band")["median"]

    bands = pd.DataFrame(
        {
            shipped_label: med(shipped.predict(gc)),
            "network alone, int8": med(p8.predict(gc)),
            "network alone, float32": med(p32.predict(gc)),
            "exact fit": med(fit_descriptors(gc)),
        }
    )
    bands["target"] = TARGETS["truth_median_per_band"]
    bands.to_csv(out / "clean_gaussians.csv")
    agg3 = tabs["table3"].loc["Aggregated"].to_dict()
    t2 = tabs["table2"]
    t2view = t2[list(CONFUSION_COLUMNS)]
    real_view = real[list(_TARGET_COLS) + ["n", "n_good"]].copy()
    real_view.loc["target"] = {**_targets_row(), "n": np.nan, "n_good": np.nan}
    real_view["all met"] = _met(real_view.drop(index="target")).reindex(real_view.index).fillna("")
    lines = [
        "# Spot CNN evaluation",
        "",
        notes,
        "",
        "## The CNN on real frames it never saw (against the exact fit, good spots)",
        "",
        "Good spots: those the exact fit calls good (Sim > 0.5 and ||Pos - s|| <= 0.9 px); PosErr is "
        "||Pos_CNN - Pos_fit|| in px over them; MAE of Sim, Area (px^2) and Asp over them; misclassified "
        "spots in % of all spots of the frame. Targets: the paper's Tables 2-3.",
        "",
        _md(real_view, ".3f"),
        "",
    ]
    if fit_self is not None:
        lines += [
            "How well defined the reference is: the exact fit (50 iterations, the project's setting) "
            "against the same fit run to 200 iterations, good spots:",
            "",
            _md(fit_self, ".4f"),
            "",
        ]
    lines += [
        "## Clean Gaussians against truth (median ||Pos - Pos_true||, px, per width band)",
        "",
        f"{len(gt) // len(WIDTH_BANDS)} spots per band: axis-aligned, pixel-integrated, peak 2,000-30,000 "
        "ADU on 1,000 ADU, Poisson (0.25 ADU/photon) and 3 ADU read noise, centre within +-0.5 px of the "
        "centre pixel (`laue_live.cnn._accuracy.clean_gaussians`).",
        "",
        _md(bands, ".4f"),
        "",
    ]
    if pareto is not None:
        cols = [
            "kind",
            "mflop",
            "ms_cpu",
            "ms_wall",
            "pos_err_mean",
            "pos_err_p95",
            "worst_pos_err_mean",
            "worst_pos_err_p95",
            "mae_sim",
            "mae_area",
            "mae_asp",
            "pct_bad_as_good",
            "pct_good_as_bad",
            "truth_median_worst_band",
        ]
        lines += [
            "## Pareto table: accuracy against time per spot, one run, one thread",
            "",
            "Every row measured in the same run on the same cutouts (the four real frames' cutouts, "
            "repeated to >= 2,000), one torch and one BLAS thread, best of 5 interleaved rounds: "
            "`ms_cpu` is the CPU time of the calling thread per spot (what another process on the "
            "machine inflates least), `ms_wall` the wall time; the end-to-end spot table in both "
            "cases (normalisation, network, table; or fit, Sim and table). Accuracy columns as in the "
            "real-frame table, pooled over the four frames (`worst_*`: the worst frame); "
            "`truth_median_worst_band`: the worst width band of the clean Gaussians (px). `mflop`: "
            "network operations per cutout (2 per multiply-add).",
            "",
            _md(pareto[[c for c in cols if c in pareto.columns]], ".4f"),
            "",
        ]
    if auto:
        lines += ['## What `method="auto"` picks', "", *[f"- **{k}**: {v}" for k, v in auto.items()], ""]
    lines += [
        "## The paper's datasets' structure: D1-D5",
        "",
        "Five datasets of whole frames through the live pipeline (peak search -> 32 x 32 cutouts -> "
        "exact fit = ground truth), differing like the paper's (material, strain, spot shapes; D2 "
        "mostly bad spots; D4 holds the two real BM32 frames). The shipped model was trained on the "
        "scene stream only, so every dataset is unseen (the paper's leave-one-dataset-out asks this "
        "of each fold's model).",
        "",
        *dataset_rows(sets),
    ]
    lines += [
        "",
        "![Figure 4](fig4_sim_histograms.png)",
        "",
        "Figure 4: Sim per dataset (top) and as trained on (bottom): the datasets are not trained on; "
        "the last column is one chunk of the training stream before and after the draw that makes "
        "Sim ~uniform (12 bins of equal probability).",
        "",
        "### Table 1: all spots (the network alone, int8 as on a CPU: what the paper's CNN predicts)",
        "",
        _md(tabs["table1"]),
        "",
        "### Table 2: good / bad confusion (truth from the fit, prediction from the network; % of all spots)",
        "",
        _md(t2view, ".2f"),
        "",
        f"Paper: {PAPER_TABLE2['pct_bad_as_good']}% bad predicted good, {PAPER_TABLE2['pct_good_as_bad']}% "
        f"good predicted bad; here (aggregated) {t2.loc['Aggregated', 'pct_bad_as_good']:.2f}% and "
        f"{t2.loc['Aggregated', 'pct_good_as_bad']:.2f}%.",
        "",
        "### Table 3: good spots (predicted good, as the paper's text)",
        "",
        _md(tabs["table3"]),
        "",
        "Restricted to the spots the *fit* calls good:",
        "",
        _md(tabs["table3_true_good"]),
        "",
        "Against the paper's Table 3 (aggregated, predicted-good spots):",
        "",
        _md(_vs_paper(agg3, PAPER_TABLE3)),
        "",
        f"The CNN as shipped ({shipped_label}), aggregated over D1-D5:",
        "",
        _md(
            pd.DataFrame(
                {
                    "all spots": scores(shipped_cmp),
                    "predicted good": scores(shipped_cmp[shipped_cmp["good_pred"]]),
                    "fit-good": scores(shipped_cmp[shipped_cmp["good"]]),
                }
            ).T
        ),
        "",
        _md(pd.DataFrame({"confusion": confusion(shipped_cmp)}).T[t2view.columns], ".2f"),
        "",
    ]
    pe = position_error_vs_truth(allcmp[allcmp["good"]])
    if len(pe):
        lines += [
            "### Position against the simulator's truth (simulated spots the fit calls good, px)",
            "",
            _md(pe, ".3f"),
            "",
        ]
    lines += [
        "![Figure 5](fig5_loss_curves.png)",
        "",
        "Figure 5: loss during training (left: training batches and the validation stream, which "
        "chooses the kept weights; right: the unseen test sets, recorded for this figure only).",
        "",
        "![Figure 6](fig6_error_histograms.png)",
        "",
        "Figure 6: prediction errors against the true Sim, all spots of D1-D5.",
        "",
        "## Training",
        "",
        "```json",
        json.dumps(info, indent=1, default=str),
        "```",
        "",
    ]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines))
    return path


def write_stream_model_card(
    path: str | Path,
    model_path: str | Path,
    *,
    real: pd.DataFrame | None = None,
    bands: pd.DataFrame | None = None,
    report: str = "docs/report/REPORT.md",
) -> Path:
    """Write the Markdown model card of a stream-trained model (from its metadata and measured scores)."""
    net, meta = load_model(model_path)
    info = meta.get("info", {})
    design = meta["architecture"]
    lines = [
        f"# Model card: `{Path(model_path).name}`",
        "",
        f"- **Version**: {info.get('version', 'unknown')} "
        f"(file format {meta['format']} v{meta['format_version']})",
        "- **Task**: predict the exact Gaussian fit's descriptors `Desc = (Sim, Pos*_row, Pos*_col, Asp, "
        "Area*)` and the widths along rows and columns from a raw 32 x 32 cutout centred on the initial "
        "peak (index 16, 16).",
        f"- **Network**: `{info.get('network', '?')}`: `{json.dumps(design)}`; "
        f"{keras_parameter_count(net):,} parameters; {count_flops(net) / 1e6:.2f} MFLOP per cutout"
        + (" (SpotNet, `laue_live.cnn.SpotNet`)." if isinstance(net, SpotNet) else "."),
        f"- **Input normalisation**: `{meta['normalisation']}` "
        "(per-cutout (I - min) / (max - min), flat -> 0).",
        "- **Inference**: BN folded; int8 trunk (static quantization, calibrated on 256 training cutouts "
        "stored in the file) on the CPU, float32 head; float16 autocast on CUDA.",
        f"- **Training data**: {info.get('data', '?')}",
        f"- **Protocol**: `{json.dumps(info.get('protocol', {}))}`",
        f"- **Training**: {info.get('n_train', '?'):,} cutouts seen; {info.get('wall_seconds', '?')} s wall, "
        f"{info.get('cpu_seconds', '?')} s CPU (trainer) + {info.get('worker_cpu_seconds', '?')} s CPU "
        f"(scene workers; 0 when every chunk came from the cache) on {info.get('hardware', '?')}, "
        f"{info.get('threads', '?')} torch thread(s); "
        f"best validation loss {info.get('best_val_loss', float('nan')):.4f}.",
        f"- **Reproduce**: `{info.get('command', '?')}`",
        "",
    ]
    if real is not None:
        lines += [
            "## On real frames it never saw (against the exact fit, good spots)",
            "",
            _md(real[list(_TARGET_COLS) + ["n_good"]], ".3f"),
            "",
            "Targets: " + ", ".join(f"{k} < {TARGETS[k]}" for k in _TARGET_COLS) + ".",
            "",
        ]
    if bands is not None:
        lines += ["## Clean Gaussians against truth (median position error, px)", "", _md(bands, ".4f"), ""]
    lines += [
        f"Details, the Pareto table and the paper's tables: `{report}`.",
        "",
        "## Limits",
        "",
        "- Trained on simulated scenes (`laue_live.sim.render_spot_scenes`): check on new detectors and "
        "distances (spots must fit in 32 x 32 px).",
        "- Positions saturate at +-1.1 px from the initial peak (Pos*), so do the spots it calls good.",
        "- The reference is the project's exact fit; on pixel-sharp spots (sigma < 0.4 px) that fit does "
        "not converge within its 50 iterations and its position depends on where it stops.",
        "",
    ]
    path = Path(path)
    path.write_text("\n".join(lines))
    return path
