"""``laue-live train`` with the stream protocol: train on simulated scenes, then (optionally) report.

Imported by the ``train`` command when it runs (never at ``laue-live --help``), so torch and the
science packages are imported here at the top.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import typer
from safetensors.torch import load_file

from laue_live._errors import SettingsError
from laue_live._xp import resolve_device
from laue_live.cli._checks import check_counts, check_paths
from laue_live.cnn import (
    CALIBRATION_KEY,
    DESIGNS,
    collect,
    load_model,
    machine_description,
    meets_all,
    method_label,
    pareto_table,
    recommend_polish,
    save_model,
    standard_methods,
    write_stream_model_card,
    write_stream_report,
)
from laue_live.spots import fit_descriptors
from laue_live.training import (
    SHIPPED_STREAM_CONFIG,
    STREAM_VERSION,
    RealFrameSource,
    SceneStream,
    StreamConfig,
    build_datasets,
    train_stream,
)

__all__ = ["train_stream_command", "shared_frames", "decide_auto", "training_command"]

log = logging.getLogger("laue_live.cli.train")


def shared_frames() -> list[Path]:
    """Return the four real frames of ``../shared/data`` next to a checkout (those that exist)."""
    root = Path(__file__).resolve().parents[3] / "shared" / "data"
    names = (
        "bm32/nw1_0000.tif",
        "bm32/nw1_0001.tif",
        "lauetools/AH12_CMT_r14_0200.tif",
        "lauetools/Ge_blanc_0000.mccd",
    )
    return [root / n for n in names if (root / n).is_file()]


def _frame_set(path: Path):
    """Cutouts of a real frame with the exact fit's table (a ``SpotSet`` named after the file)."""
    return collect(RealFrameSource((str(path),), path.stem), drop_invalid=False)


def train_stream_command(
    *,
    out: Path,
    network: str | None,
    samples: int | None,
    chunks: int,
    stream_dir: Path,
    workers: int,
    real_frames: list[Path],
    real_fraction: float,
    time_limit: float | None,
    report: Path | None,
    compare: list[str],
    eval_frames: list[Path],
    datasets_dir: Path,
    n_spots: int,
    batch_size: int | None,
    lr: float | None,
    seed: int,
    threads: int,
    notes_file: Path | None = None,
    device: str = "auto",
) -> None:
    """Train on the scene stream (``laue-live train --help``); write the model and, if asked, the report."""
    torch.set_num_threads(threads if threads > 0 else 1)
    base = SHIPPED_STREAM_CONFIG
    network = network or base.network
    if network not in DESIGNS and network not in ("paper", "lean"):
        raise typer.BadParameter(
            f"--network must be one of {sorted(DESIGNS)}, 'paper' or 'lean'; got {network!r}"
        )
    check_counts({"--chunks": (chunks, 1), "--workers": (workers, 0), "--samples": (samples, 1)})
    if not 0 <= real_fraction < 1:
        raise SettingsError(f"--real-fraction must be in [0, 1), got {real_fraction}")
    if time_limit is not None and not time_limit > 0:
        raise SettingsError(f"--time-limit must be > 0 (seconds), got {time_limit}")
    check_paths(files={"--out": out}, folders={"--stream-dir": stream_dir, "--report": report})
    dev = resolve_device(device)  # CUDA asked for but absent: one line, before anything runs
    missing = [str(p) for p in [*real_frames, *eval_frames] if not p.is_file()]
    if missing:
        typer.echo(f"error: frame file(s) not found: {', '.join(missing)}", err=True)
        raise typer.Exit(2)
    for spec in compare:
        if "=" not in spec or not Path(spec.split("=", 1)[1]).is_file():
            typer.echo(
                f"error: --compare wants LABEL=MODEL_FILE with an existing file, got {spec!r}", err=True
            )
            raise typer.Exit(2)
    config = StreamConfig(
        **{
            **base.to_dict(),
            "network": network,
            "samples": samples or base.samples,
            "n_chunks": chunks,
            "workers": workers,
            "seed": seed,
            "batch_size": batch_size or base.batch_size,
            "lr": lr or base.lr,
            "real_fraction": real_fraction if real_frames else 0.0,
        }
    )
    real = [_frame_set(p) for p in real_frames]
    sets, frames, watch = [], {}, []
    if report is not None:
        typer.echo(f"evaluation datasets D1-D5 in {datasets_dir} (built if missing)")
        sets = build_datasets(datasets_dir, n_spots=n_spots)
        for p in eval_frames or shared_frames():
            s = _frame_set(p)
            frames[s.name] = (s.cutouts, s.table)
            watch.append(s)
        if not frames:
            typer.echo(
                "warning: no real frames to evaluate on (../shared/data not found; pass --eval-frames)",
                err=True,
            )
    stream_dir.mkdir(parents=True, exist_ok=True)
    ckpt = stream_dir / f"{out.stem}-{network}-{config.samples}-seed{seed}.ckpt"
    typer.echo(
        f"training {network} on {config.samples:,} cutouts from {config.n_chunks} chunks in {stream_dir} "
        f"(checkpoint {ckpt})"
    )
    res = train_stream(
        config, cache=stream_dir, real=real, monitor=sets + watch, checkpoint=ckpt, time_limit=time_limit,
        device=dev,
    )
    if not res.history.attrs.get("finished", True):
        typer.echo(
            f"stopped by --time-limit after {int(res.history['step'].iloc[-1]) if len(res.history) else 0} "
            f"of {config.steps} steps; run the same command again to continue from {ckpt}"
        )
        return
    info = {
        **res.info(),
        "version": f"{network}-s{config.stream_seed}-seed{seed}",
        "network": network,
        "data": f"scene stream v{STREAM_VERSION} seed {config.stream_seed}: {config.n_chunks} chunks x "
        f"{config.chunk} cutouts (laue_live.sim.render_spot_scenes, labelled by the exact fit)"
        + (f" + real frames {[p.name for p in real_frames]}" if real_frames else ""),
        "best_val_loss": float(res.history["val_loss"].min()),
        "wall_seconds": round(res.history.attrs["wall_seconds"], 1),
        "cpu_seconds": round(res.history.attrs["cpu_seconds"], 1),
        "worker_cpu_seconds": round(res.history.attrs["worker_cpu_seconds"], 1),
        "hardware": machine_description(),
        "device": str(dev) if dev.type == "cpu" else f"{dev} ({torch.cuda.get_device_name(dev)})",
        "threads": torch.get_num_threads(),
        "command": training_command(sys.argv[1:]) if sys.argv and "laue-live" in sys.argv[0]
        else "laue-live train",
    }
    save_model(out, res.model, info=info, calibration=res.calibration)
    out.with_suffix(".json").write_text(json.dumps(info, indent=1))
    res.history.to_csv(out.with_name(out.stem + "_history.csv"), index=False)
    typer.echo(
        f"model: {out} ({info['wall_seconds']} s wall, {info['cpu_seconds']} s CPU trainer, "
        f"{info['worker_cpu_seconds']} s CPU scene workers)"
    )
    if report is None:
        return
    notes = notes_file.read_text() if notes_file is not None and notes_file.is_file() else ""
    _report(out, report, sets, frames, res.history, info, compare, config, stream_dir, notes)


#: Options that change what is reported or where things are cached, never the trained weights.
_REPORT_ONLY = frozenset({"--report", "--notes", "--compare", "--eval-frames", "--data-dir", "--n-spots",
                          "--stream-dir", "--time-limit"})


def training_command(args: list[str]) -> str:
    """Return the ``laue-live train`` command line that trains the same weights as ``args``.

    The options of :data:`_REPORT_ONLY` (and their values) are left out: the model card's
    "Reproduce" line then names the training, not the report written beside it.
    """
    out, skip = ["laue-live"], False
    for a in args:
        if skip:
            skip = False
        elif a.split("=", 1)[0] in _REPORT_ONLY:
            skip = "=" not in a
        else:
            out.append(a)
    return shlex.join(out)


def _report(
    out: Path, report: Path, sets, frames, history, info, compare, config, stream_dir, notes: str = ""
) -> None:
    label = f"{info['network']} (shipped)"
    models = {label: str(out), **dict(s.split("=", 1) for s in compare)}
    typer.echo(f"Pareto table: {', '.join(models)}, the exact fit, the fit stopped early (one thread)")
    pareto, _ = pareto_table(standard_methods(models), frames)
    polish = recommend_polish(pareto, label)
    auto = decide_auto(pareto, label, polish)
    fit_self = {}
    for name, (c, t) in frames.items():
        longer = fit_descriptors(c, max_iter=200)
        good = ((t["sim"] > 0.5) & (np.hypot(t["d_row"], t["d_col"]) <= 0.9)).to_numpy()
        e = np.hypot(longer["d_row"] - t["d_row"], longer["d_col"] - t["d_col"]).to_numpy()[good]
        fit_self[name] = {
            "n_good": int(good.sum()),
            "not converged": int((~t["converged"].to_numpy())[good].sum()),
            "pos_err_mean": float(e.mean()),
            "pos_err_p95": float(np.percentile(e, 95)),
        }
    chunk = SceneStream(stream_dir, seed=config.stream_seed, chunk=config.chunk, workers=0).get(0).table
    sim = np.nan_to_num(chunk["sim"].to_numpy())
    b = np.clip((sim * 12).astype(int), 0, 11)
    p = 1.0 / np.bincount(b, minlength=12)[b]
    drawn = sim[np.random.default_rng(0).choice(len(sim), len(sim), p=p / p.sum())]
    net, _ = load_model(out)
    meta_info = {**info, "polish": polish, "auto": auto["decision"]}
    save_model(out, net, info=meta_info, calibration=_calibration_of(out))
    out.with_suffix(".json").write_text(json.dumps(meta_info, indent=1))
    report.mkdir(parents=True, exist_ok=True)
    table = pareto.drop(columns=["bands"])
    table.to_csv(report / "pareto.csv")
    path = write_stream_report(
        report,
        model_path=out,
        sets=sets,
        frames=frames,
        history=history,
        info=meta_info,
        pareto=table,
        stream_sim=(sim, drawn),
        fit_self=pd.DataFrame(fit_self).T,
        auto=auto["why"],
        notes=notes,
    )
    real = pd.read_csv(report / "real_frames.csv", index_col=0)
    bands = pd.read_csv(report / "clean_gaussians.csv", index_col=0)
    card = write_stream_model_card(out.parent / "MODEL_CARD.md", out, real=real, bands=bands)
    typer.echo(f"polish {polish}; method='auto' on a CPU: {auto['decision']['cpu']}")
    typer.echo(f"report: {path}  model card: {card}")


def _calibration_of(path: Path):
    cal = load_file(str(path)).get(CALIBRATION_KEY)
    return None if cal is None else cal.float()[:, 0]


def decide_auto(pareto, label: str, polish: int) -> dict:
    """Decide what ``method="auto"`` picks on the CPU, from the Pareto table: accuracy first, then speed.

    The CNN as shipped (int8 network + ``polish`` fit iterations, what runs on a CPU) qualifies if
    it meets every accuracy target on every real frame (worst frame) and on clean Gaussians; then
    it is picked if it is also faster than the exact fit (CPU time per spot, same run). Returns
    ``{"decision": {"cpu": "cnn" | "fit", "accuracy_met": bool}, "why": {"CPU": ..., "CUDA": ...}}``
    (``decision`` is stored in the model file, where :func:`laue_live.describe.choose_method` reads it).
    """
    name = method_label(label, True, polish)
    row, fit = pareto.loc[name], pareto.loc["exact fit"]
    failed = meets_all(row)
    faster = float(row["ms_cpu"]) < float(fit["ms_cpu"])
    cpu = "cnn" if not failed and faster else "fit"
    why = (
        f"`{cpu}`: the CNN as shipped ({name}) takes {float(row['ms_cpu']):.4f} ms/spot, the exact fit "
        f"{float(fit['ms_cpu']):.4f} ms/spot (CPU time, one thread, same run: "
        f"{'faster' if faster else 'not faster'}); accuracy targets "
        + ("all met" if not failed else "not met: " + "; ".join(failed))
    )
    cuda = (
        "`cnn` (no measurement on a GPU yet: the CNN, because it meets the accuracy targets)"
        if not failed
        else "`fit` (no measurement on a GPU yet, and the CNN does not meet the accuracy targets)"
    )
    return {"decision": {"cpu": cpu, "accuracy_met": not failed}, "why": {"CPU": why, "CUDA": cuda}}
