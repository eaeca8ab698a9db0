"""``laue-live train``: train the spot CNN (and optionally cross-validate it and write the report)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import typer

from laue_live.cli._checks import check_counts, check_paths

train_app = typer.Typer()


@train_app.command("train")
def train_command(
    out: Path = typer.Option(  # noqa: B008
        Path("spot_cnn.safetensors"),
        "--out",
        "-o",
        help="Where to write the trained model (.safetensors); a .json card goes next to it.",
    ),
    data_dir: Path = typer.Option(  # noqa: B008
        Path("laue-live-data/cnn-datasets"),
        "--data-dir",
        help="Cache of the five training datasets (D1-D5 .npz); built from the simulator "
        "and the real BM32 frames when missing.",
    ),
    n_spots: int = typer.Option(5000, "--n-spots", help="Spot candidates per dataset when building them."),
    catalog: str | None = typer.Option(
        None,
        "--catalog",
        help="Train on cutouts of historical raw runs in this Tiled server (URI; 'local' for the "
        "embedded one under LAUE_LIVE_DATA_DIR) instead of the datasets. The API key comes from "
        "LAUE_LIVE_TILED_API_KEY / TILED_API_KEY / LAUE_LIVE_TILED_API_KEY_FILE, never from here. "
        "Ground truth (exact fit) is cached, so a second training does not refit.",
    ),
    sample: str | None = typer.Option(None, "--sample", help="With --catalog: runs of this sample."),
    material: str | None = typer.Option(None, "--material", help="With --catalog: runs of this material."),
    since: str | None = typer.Option(None, "--since", help="With --catalog: started on/after (ISO date)."),
    until: str | None = typer.Option(None, "--until", help="With --catalog: started before (ISO date)."),
    max_frames_per_run: int | None = typer.Option(
        None, "--max-frames-per-run", help="With --catalog: read at most this many frames of each run."
    ),
    protocol: str = typer.Option(
        "stream", "--protocol",
        help="'stream' (default): the network of --network on simulated scenes rendered and fitted on "
        "the fly (laue_live.training.train_stream); 'paper': the paper's protocol on the datasets D1-D5 "
        "(--arch, --epochs, --steps; also what --catalog and --lodo use).",
    ),
    network: str = typer.Option(
        None, "--network", help="Stream protocol: the network, a laue_live.cnn.DESIGNS name, 'paper' or "
        "'lean' (default: the shipped model's)."),
    samples: int = typer.Option(
        None, "--samples",
        help="Stream protocol: training cutouts seen in all (default: the shipped model's)."),
    chunks: int = typer.Option(128, "--chunks", help="Stream protocol: chunks of 8,192 scenes in the pool."),
    stream_dir: Path = typer.Option(  # noqa: B008
        Path("laue-live-data/cnn-stream"), "--stream-dir",
        help="Stream protocol: cache of the rendered, fitted scene chunks (reused by later trainings)."),
    workers: int = typer.Option(1, "--workers", help="Stream protocol: processes rendering scene chunks."),
    real_frames: list[Path] = typer.Option(  # noqa: B008
        None, "--real-frames", help="Stream protocol: real frames (TIFF/MarCCD) whose cutouts, labelled by "
        "the exact fit, join every batch (repeat the option; default none)."),
    real_fraction: float = typer.Option(
        0.1, "--real-fraction", help="Share of each batch from --real-frames."),
    time_limit: float | None = typer.Option(
        None, "--time-limit", help="Stop after this many seconds with a checkpoint; the same command "
        "resumes it."),
    report: Path | None = typer.Option(  # noqa: B008
        None, "--report", help="Stream protocol: evaluate the model and write REPORT.md, figures and "
        "MODEL_CARD.md (next to --out) into this folder."),
    compare: list[str] = typer.Option(  # noqa: B008
        None, "--compare", help="With --report: LABEL=MODEL_FILE rows of the Pareto table (repeat)."),
    eval_frames: list[Path] = typer.Option(  # noqa: B008
        None, "--eval-frames", help="With --report: real frames to evaluate on (default: the four frames "
        "under ../shared/data)."),
    arch: str = typer.Option(
        "paper", "--arch", help="Paper protocol: 'paper' (widths 16-128, 347,057 params) or 'lean'."
    ),
    epochs: int = typer.Option(70, "--epochs", help="Paper protocol: epochs (paper: 70)."),
    steps: int = typer.Option(100, "--steps", help="Paper protocol: training steps per epoch (paper: 100)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Cutouts per step (paper: 32; stream: 256)."),
    lr: float = typer.Option(None, "--lr", help="Peak learning rate (paper: Adam 1e-3; stream: AdamW 3e-3)."),
    per_bin: int = typer.Option(
        2000, "--per-bin", help="Resampling: at most this many spots per Sim bin (12 bins)."
    ),
    resample: bool = typer.Option(
        True, "--resample/--no-resample", help="Resample Sim to ~uniform per dataset."
    ),
    max_shift: int = typer.Option(1, "--max-shift", help="Largest random shift of the augmentation, px."),
    seed: int = typer.Option(0, "--seed", help="Seed of everything random (reproducible on one device)."),
    device: str = typer.Option("auto", "--device", help="'auto' (CUDA if present), 'cpu' or 'cuda'."),
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0: torch's default)."),
    lodo: Path | None = typer.Option(  # noqa: B008
        None,
        "--lodo",
        help="Also run leave-one-dataset-out cross-validation (five models) and write "
        "the evaluation report (REPORT.md + PNGs) into this folder.",
    ),
    lodo_only: bool = typer.Option(False, "--lodo-only", help="Skip the final model; only cross-validate."),
    lodo_epochs: int | None = typer.Option(
        None, "--lodo-epochs", help="Epochs of the cross-validation models."
    ),
    work_dir: Path = typer.Option(  # noqa: B008
        Path("laue-live-data/cnn-lodo"),
        "--work-dir",
        help="Where cross-validation models and per-spot results go (resumable).",
    ),
    bench: Path | None = typer.Option(  # noqa: B008
        None, "--bench", help="benchmarks/bench_cnn.py JSON to quote in the report."
    ),
    notes_file: Path | None = typer.Option(  # noqa: B008
        None, "--notes", help="Markdown file inserted at the top of the report."
    ),
) -> None:
    """Train the spot network on the exact fit's descriptors.

    Default (stream protocol): simulated scenes (every spot shape, widths 0.2-6 px, neighbours,
    sloped and humped backgrounds, masked pixels, Poisson and read noise) rendered and labelled by
    the exact fit in worker processes, cached in --stream-dir; Sim drawn ~uniform, rotations and
    reflections, weighted MAE, AdamW with warm-up and cosine decay, the best-validation weights
    kept; resumable (checkpoint in --stream-dir). With --report, also the evaluation report, the
    Pareto table, the recommended polish and what method='auto' picks on a CPU (stored in the model).

    Paper protocol (--protocol paper, --catalog, --lodo): the five datasets D1-D5 (or --catalog URI),
    Sim resampled per dataset, shifts/rotations/reflections, MAE loss, Adam, 70 epochs x 100 steps
    of 32 cutouts.

    Writes the model and a JSON card next to it (paper protocol: also a loss-curve PNG). The shipped
    model: `laue-live train --out models/spot_cnn.safetensors --report docs/report`.
    """
    # imported at run time: `laue-live --help` stays fast
    import torch

    # every count, rate and path checked before anything is built, trained or written
    check_counts(
        {"--n-spots": (n_spots, 1), "--batch-size": (batch_size, 1), "--threads": (threads, 0),
         "--epochs": (epochs, 1), "--steps": (steps, 1), "--per-bin": (per_bin, 1),
         "--max-shift": (max_shift, 0),
         "--lodo-epochs": (lodo_epochs, 1), "--max-frames-per-run": (max_frames_per_run, 1)},
        {"--lr": lr},
    )
    check_paths(files={"--out": out},
                folders={"--data-dir": data_dir, "--lodo": lodo, "--work-dir": work_dir})
    if protocol not in ("stream", "paper"):
        raise typer.BadParameter("--protocol must be 'stream' or 'paper'")
    if protocol == "stream" and catalog is None and lodo is None:
        # imported at run time: it imports torch and the science packages (`laue-live --help` stays fast)
        from laue_live.cli._train_stream import train_stream_command

        train_stream_command(
            out=out, network=network, samples=samples, chunks=chunks, stream_dir=stream_dir, workers=workers,
            real_frames=real_frames or [], real_fraction=real_fraction, time_limit=time_limit, report=report,
            compare=compare or [], eval_frames=eval_frames or [], datasets_dir=data_dir, n_spots=n_spots,
            batch_size=batch_size, lr=lr, seed=seed, threads=threads, notes_file=notes_file, device=device,
        )
        return
    batch_size = batch_size or 32
    lr = lr or 1e-3

    # imported at run time: `laue-live --help` stays fast
    from laue_live.cnn import SpotSet, TrainConfig, collect, plot_loss_curves, save_model, train

    log = logging.getLogger("laue_live.cli.train")
    if threads > 0:
        torch.set_num_threads(threads)
    if arch not in ("paper", "lean"):
        raise typer.BadParameter("--arch must be 'paper' or 'lean'")
    config = TrainConfig(
        arch=arch,
        epochs=epochs,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        per_bin=per_bin,
        resample=resample,
        max_shift=max_shift,
        seed=seed,
    )
    if catalog is not None:
        try:
            # imported at run time: `laue-live --help` stays fast
            from laue_live.catalog import CatalogCutoutSource
        except ImportError as exc:
            typer.echo(
                "error: --catalog needs laue_live.catalog.CatalogCutoutSource, which is not "
                f"available: {exc}",
                err=True,
            )
            raise typer.Exit(2) from exc
        # imported at run time: `laue-live --help` stays fast
        from laue_live.catalog import CatalogSettings, catalog_session

        query = {k: v for k, v in {"sample": sample, "material": material, "since": since,
                                   "until": until}.items() if v is not None}
        settings = CatalogSettings.load(uri=None if catalog == "local" else catalog)
        try:
            with catalog_session(settings) as cat:
                source = CatalogCutoutSource(cat, query=query or None, max_frames_per_run=max_frames_per_run)
                sets: list[SpotSet] = [collect(source)]
        except ValueError as exc:  # no cutouts in the selected runs, or a bad query value
            typer.echo(f"error: {exc} (catalog {catalog}, selection {query or 'all raw runs'})", err=True)
            raise typer.Exit(2) from None
        if lodo is not None:
            typer.echo("error: --lodo needs the five datasets, not --catalog", err=True)
            raise typer.Exit(2)
    else:
        # imported at run time: `laue-live --help` stays fast
        from laue_live.training import build_datasets

        typer.echo(f"datasets in {data_dir} (built if missing)")
        sets = build_datasets(data_dir, n_spots=n_spots)
    for s in sets:
        typer.echo(f"  {s.name}: {len(s):,} spot candidates")

    result = None
    if not lodo_only:
        result = train(sets, config=config, device=device)
        info = {**result.info(), "version": f"{arch}-seed{seed}", "data": {s.name: len(s) for s in sets}}
        save_model(out, result.model, info=info, calibration=result.calibration)
        out.with_suffix(".json").write_text(json.dumps(info, indent=1))
        result.history.to_csv(out.with_name(out.stem + "_history.csv"), index=False)
        png = plot_loss_curves({out.stem: result.history}, out.with_name(out.stem + "_loss.png"))
        typer.echo(f"model: {out}  card: {out.with_suffix('.json')}  loss curve: {png}")
        v = result.validation
        if v:
            typer.echo(f"validation ({v['n']} spots): the model calls {100 * v['good_fraction']:.0f}% good, "
                       f"the exact fit {100 * v['true_good_fraction']:.0f}%; same call for "
                       f"{100 * v['agreement']:.0f}%")
        why = result.usable()
        if why and lodo is None:
            typer.echo(f"error: the trained model is not usable: {why}; train longer (--epochs {epochs} "
                       f"--steps {steps} now, the paper's 70 x 100). It was written to {out} for a look.",
                       err=True)
            raise typer.Exit(1)

    if lodo is not None:

        # imported at run time: `laue-live --help` stays fast
        import pandas as pd

        from laue_live.cnn import (
            leave_one_dataset_out,
            resampled_sim,
            score_tables,
            write_model_card,
            write_report,
        )

        lconf = replace(config, epochs=lodo_epochs or epochs)
        res = leave_one_dataset_out(sets, work_dir, config=lconf, device=device)
        notes = (
            f"Network `{arch}`; cross-validation models trained {lconf.epochs} epochs x "
            f"{lconf.steps} steps x "
            f"{lconf.batch_size} (paper: 70 x 100 x 32)."
        )
        if notes_file is not None and notes_file.is_file():
            notes = notes_file.read_text() + "\n\n" + notes
        bench_data = json.loads(bench.read_text()) if bench and bench.is_file() else None
        history, info = (result.history, result.info()) if result else (None, None)
        hist_csv = out.with_name(out.stem + "_history.csv")
        if history is None and hist_csv.is_file():  # --lodo-only: quote the model trained earlier
            history = pd.read_csv(hist_csv)
        if info is None and out.with_suffix(".json").is_file():
            info = json.loads(out.with_suffix(".json").read_text())
        path = write_report(
            lodo,
            sets=sets,
            resampled=resampled_sim(sets, lconf),
            lodo=res,
            default_history=history,
            default_info=info,
            bench=bench_data,
            notes=notes,
        )
        typer.echo(f"report: {path}")
        if out.is_file():
            card = write_model_card(
                out.parent / "MODEL_CARD.md",
                out,
                tables=score_tables(res.comparisons),
                sets=sets,
                lodo_config=res.config,
                bench=bench_data,
            )
            typer.echo(f"model card: {card}")
        log.info("report written to %s", path)
