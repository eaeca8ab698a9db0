"""Training on the scene stream plus real frames: LR schedule, best-validation model, resumable.

What :func:`train_stream` does, step by step (every random choice seeded by ``config.seed`` and
the step or chunk, so a run is reproducible on one device and thread count, and a resumed run
continues exactly where the interrupted one stopped):

1. The stream's ``n_chunks`` chunks (:class:`~laue_live.training.SceneStream`: simulated scenes,
   labelled by the exact fit) are visited in a new random order every pass; missing chunks are
   rendered by worker processes while the network trains on the ones already there.
2. Each batch: ``batch_size * (1 - real_fraction)`` cutouts of the current chunk drawn so that Sim
   is ~uniform (12 bins, each drawn with equal probability: the paper's resampling, section 2.3.4)
   and the rest drawn from the real frames' cutouts (fit-labelled); every cutout then goes through
   a random one of the 8 rotations/reflections about the initial peak (positions and the row and
   column widths transformed with it).
3. Loss: mean absolute error over the outputs (``Desc`` and, for networks that have them, the
   width outputs ``W*``), the two position outputs weighted ``pos_weight``, the widths
   ``width_weight``; AdamW, linear warm-up then cosine decay of the learning rate.
4. Every ``val_every`` steps: the loss and the position error (px, good spots) on a validation
   stream (another seed, never trained on); the weights with the lowest validation loss are kept
   and returned (best-validation model selection).
5. A checkpoint (safetensors + JSON, no pickle) is written every ``checkpoint_every`` seconds and at
   the end; :func:`train_stream` given an existing checkpoint resumes from it.
"""

from __future__ import annotations

import json
import logging
import math
import resource
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from laue_live._rules import AREA_CLIP, POS_CLIP, is_good_spot
from laue_live._xp import resolve_device
from laue_live.cnn import SpotNet, SpotSet, TrainResult, dihedral, make_network, normalise_torch, width_star
from laue_live.training._scene_stream import SceneStream

__all__ = ["StreamConfig", "SHIPPED_STREAM_CONFIG", "train_stream", "targets_of"]

logger = logging.getLogger(__name__)


@dataclass
class StreamConfig:
    """The protocol of :func:`train_stream`.

    Parameters
    ----------
    network
        A :data:`~laue_live.cnn.DESIGNS` name, ``"paper"`` or ``"lean"``.
    samples
        Training cutouts seen in all (steps x batch size).
    batch_size, lr, final_lr, warmup_steps, weight_decay
        AdamW with a linear warm-up to ``lr`` and a cosine decay to ``final_lr``.
    stream_seed, chunk, n_chunks
        The training stream: ``n_chunks`` chunks of ``chunk`` cutouts, visited in a new order every pass.
    val_seed, val_chunks
        The validation stream (never trained on).
    real_fraction
        Fraction of each batch drawn from the real frames' cutouts (0 without real frames).
    uniform_sim
        Draw the stream's cutouts so that Sim is ~uniform over 12 bins (the paper's resampling).
    pos_weight, width_weight
        Loss weights of the two position outputs and of the two width outputs (others: 1).
    val_every
        Steps between validations.
    seed
        Seeds the network's initial weights, the chunk order, the draws and the augmentation.
    workers
        Processes rendering missing stream chunks.
    normalisation
        Input normalisation (stored with the weights).
    """

    network: str = "tiny"
    samples: int = 1_500_000
    batch_size: int = 256
    lr: float = 3e-3
    final_lr: float = 3e-5
    warmup_steps: int = 300
    weight_decay: float = 1e-4
    stream_seed: int = 0
    chunk: int = 8192
    n_chunks: int = 128
    val_seed: int = 1
    val_chunks: int = 1
    real_fraction: float = 0.1
    uniform_sim: bool = True
    pos_weight: float = 2.0
    width_weight: float = 0.5
    val_every: int = 250
    seed: int = 0
    workers: int = 1
    normalisation: str = "minmax"

    def to_dict(self) -> dict:
        """JSON-friendly form (stored in the model metadata)."""
        return asdict(self)

    @property
    def steps(self) -> int:
        """Training steps."""
        return max(1, self.samples // self.batch_size)


def targets_of(t: dict[str, torch.Tensor], n_out: int) -> torch.Tensor:
    """Return the targets ``(N, n_out)`` from fit columns ``sim, d_row, d_col, asp, area`` (and widths)."""
    pr = ((t["d_row"] + POS_CLIP) / (2 * POS_CLIP)).clamp(0, 1)
    pc = ((t["d_col"] + POS_CLIP) / (2 * POS_CLIP)).clamp(0, 1)
    cols = [t["sim"].clamp(0, 1), pr, pc, t["asp"].clamp(0, 1), (t["area"] / AREA_CLIP).clamp(0, 1)]
    if n_out > 5:
        cols += [width_star(t["sigma_row"]), width_star(t["sigma_col"])]
    return torch.stack(cols, dim=1)


_COLS = ("sim", "d_row", "d_col", "asp", "area", "sigma_row", "sigma_col")


def _columns(s: SpotSet, idx: np.ndarray) -> dict[str, torch.Tensor]:
    t = s.table
    out = {c: torch.as_tensor(np.nan_to_num(t[c].to_numpy(np.float32)[idx], nan=0.0)) for c in _COLS}
    out["x"] = torch.as_tensor(s.cutouts[idx])
    return out


def _on(b: dict[str, torch.Tensor], dev: torch.device) -> dict[str, torch.Tensor]:
    """Return the tensors of ``b`` on ``dev`` (on the CPU: the same tensors)."""
    return {k: v.to(dev, non_blocking=True) for k, v in b.items()}


def _valid(s: SpotSet) -> SpotSet:
    """Keep the rows with finite fit descriptors, converged or not.

    The label is what the fit reports: pixel-sharp spots stall with widths ~0.3 px before the
    tolerance is met, yet are good spots.
    """
    ok = np.isfinite(s.table[list(_COLS)].to_numpy(np.float64)).all(axis=1) & np.isfinite(s.cutouts).all(
        axis=(1, 2)
    )
    return s.subset(np.flatnonzero(ok))


def _augment(b: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Apply a random one of the 8 rotations/reflections per cutout (quarter turns swap the widths)."""
    g = torch.randint(0, 8, (len(b["x"]),), generator=gen)
    out = {k: v.clone() for k, v in b.items()}
    for e in range(1, 8):
        idx = (g == e).nonzero(as_tuple=True)[0]
        if len(idx) == 0:
            continue
        k = e % 4
        xi, ri, ci = dihedral(b["x"][idx], b["d_row"][idx], b["d_col"][idx], k=k, flip=e >= 4)
        out["x"][idx], out["d_row"][idx], out["d_col"][idx] = xi, ri, ci
        if k % 2:
            out["sigma_row"][idx], out["sigma_col"][idx] = b["sigma_col"][idx], b["sigma_row"][idx]
    return out


def _weights(config: StreamConfig, n_out: int) -> torch.Tensor:
    w = torch.ones(n_out)
    w[1:3] = config.pos_weight
    if n_out > 5:
        w[5:] = config.width_weight
    return w / w.sum()


def _lr_at(config: StreamConfig, step: int) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    t = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.final_lr + 0.5 * (config.lr - config.final_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (the scene workers)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _forward(model, x: torch.Tensor, normalisation: str) -> torch.Tensor:
    return model(normalise_torch(x, normalisation)[:, None])


@torch.no_grad()
def _validate(
    model, val: dict[str, torch.Tensor], config: StreamConfig, w: torch.Tensor
) -> tuple[float, float]:
    """Weighted MAE and the mean position error (px) of the spots the fit calls good."""
    model.eval()
    preds = []
    for i in range(0, len(val["x"]), 1024):
        preds.append(_forward(model, val["x"][i : i + 1024], config.normalisation))
    p = torch.cat(preds)
    y = targets_of(val, p.shape[1])
    loss = float(((p - y).abs() * w).sum(dim=1).mean())
    cols = [val[c].cpu().numpy() for c in ("sim", "d_row", "d_col")]
    good = torch.as_tensor(is_good_spot(*cols), device=p.device)
    dpos = (p[:, 1:3] - y[:, 1:3]) * 2 * POS_CLIP
    pos = float(dpos[good].norm(dim=1).mean()) if good.any() else float("nan")
    model.train()
    return loss, pos


def _save_checkpoint(path: Path, model, best: dict | None, opt, state: dict) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if best is not None:
        tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in best.items()})
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous().reshape(-1)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"state": json.dumps(state)})
    tmp.replace(path)


def _load_checkpoint(path: Path, model, opt) -> tuple[dict, dict | None]:
    with safe_open(str(path), framework="pt") as f:
        state = json.loads(f.metadata()["state"])
    t = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
    best = {k[5:]: v for k, v in t.items() if k.startswith("best.")} or None
    sd = opt.state_dict()
    for i in sd["state"] if sd["state"] else range(len(list(model.parameters()))):
        keys = [k for k in t if k.startswith(f"opt.{i}.")]
        if keys:
            sd["state"][int(i)] = {
                k.split(".", 2)[2]: (t[k].reshape(()) if k.endswith(".step") else t[k].reshape(p.shape))
                for k, p in ((k, list(model.parameters())[int(i)]) for k in keys)
            }
    opt.load_state_dict(sd)
    return state, best


def train_stream(
    config: StreamConfig,
    *,
    cache: str | Path,
    real: Sequence[SpotSet] = (),
    monitor: Sequence[SpotSet] = (),
    checkpoint: str | Path | None = None,
    checkpoint_every: float = 120.0,
    time_limit: float | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> TrainResult:
    """Train a spot network on the scene stream and real frames (see the module docstring).

    Parameters
    ----------
    config
        The protocol.
    cache
        Folder of the stream's chunk files (shared by every training on the same stream).
    real
        Fit-labelled real cutouts to mix into every batch (``config.real_fraction`` of it).
    monitor
        Test sets whose loss is recorded at every validation (column ``loss_<name>``), for the
        learning curves only: they never choose the model.
    checkpoint
        File to write checkpoints to and, when it exists, to resume from.
    checkpoint_every
        Seconds between checkpoints.
    time_limit
        Stop after this many seconds (a checkpoint is written: call again to continue).
    progress
        tqdm progress bar over the steps.
    device
        torch device of the network, the batches and the validation (``"auto"``: CUDA if present);
        the scenes are rendered and fitted on the CPU either way. A checkpoint resumes on any device.

    Returns
    -------
    TrainResult
        The best-validation model (eval mode, CPU), the history (``step, samples, lr, train_loss,
        val_loss, val_pos_err_px, seconds``), ``n_train`` = cutouts seen, and 256 training cutouts
        for int8 calibration. ``history.attrs``: ``finished`` (False when ``time_limit`` stopped it),
        ``wall_seconds``, ``cpu_seconds`` (this process) and ``worker_cpu_seconds`` (the scene
        workers), summed over resumed runs.
    """
    torch.manual_seed(config.seed)
    dev = resolve_device(device)
    model = make_network(config.network).to(dev)
    n_out = model.arch.n_out if isinstance(model, SpotNet) else 5
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    w = _weights(config, n_out).to(dev)
    stream = SceneStream(cache, seed=config.stream_seed, chunk=config.chunk, workers=config.workers)
    vstream = SceneStream(cache, seed=config.val_seed, chunk=config.chunk, workers=0)
    vset = _valid(SpotSet.concat([vstream.get(k) for k in range(config.val_chunks)], name="validation"))
    val = _on(_columns(vset, np.arange(len(vset))), dev)
    watched = {m.name: _on(_columns(_valid(m), np.arange(len(_valid(m)))), dev) for m in monitor}
    real_set = _valid(SpotSet.concat(list(real), name="real")) if real else None
    n_real = (
        int(round(config.batch_size * config.real_fraction)) if real_set is not None and len(real_set) else 0
    )
    n_sim = config.batch_size - n_real

    state = {
        "step": 0,
        "epoch": 0,
        "pos": 0,
        "history": [],
        "best_val": float("inf"),
        "seconds": 0.0,
        "cpu_seconds": 0.0,
        "worker_cpu_seconds": 0.0,
    }
    best: dict | None = None
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.is_file():
        state, best = _load_checkpoint(ckpt, model, opt)
        saved = {k: v for k, v in state.get("config", {}).items() if k != "workers"}
        if saved and saved != {k: v for k, v in config.to_dict().items() if k != "workers"}:
            raise ValueError(
                f"checkpoint {ckpt} belongs to another training protocol ({saved}); "
                "delete it or train into another checkpoint"
            )
        logger.info("resuming %s at step %d", ckpt, state["step"])
    model.train()
    t0 = time.perf_counter() - state["seconds"]
    cpu0 = time.process_time() - state.get("cpu_seconds", 0.0)
    kids0 = _children_cpu() - state.get("worker_cpu_seconds", 0.0)
    t_run, t_ckpt = time.perf_counter(), time.perf_counter()
    run_loss, run_n = 0.0, 0
    bar = tqdm(
        total=config.steps,
        initial=state["step"],
        desc=f"training {config.network}",
        unit="step",
        disable=not progress,
    )
    stopped = False

    def chunk_order(epoch: int) -> np.ndarray:
        return np.random.default_rng([config.seed, 1, epoch]).permutation(config.n_chunks)

    def chunks_from(epoch: int, pos: int):
        while True:
            order = chunk_order(epoch)[pos:]
            for i, s in enumerate(stream.chunks(order)):
                yield epoch, pos + i, s
            epoch, pos = epoch + 1, 0

    skip = int(state.pop("resume_skip", 0))
    for epoch, pos, chunk in chunks_from(state["epoch"], state["pos"]):
        if state["step"] >= config.steps or stopped:
            break
        chunk = _valid(chunk)
        rng = np.random.default_rng([config.seed, 2, epoch, pos])
        p = None
        if config.uniform_sim:
            b = np.clip((chunk.table["sim"].to_numpy() * 12).astype(int), 0, 11)
            p = 1.0 / np.bincount(b, minlength=12)[b]
            p /= p.sum()
        n_steps = max(1, len(chunk) // n_sim)
        draws = rng.choice(len(chunk), size=(n_steps, n_sim), p=p)
        for j in range(skip, n_steps):
            step = state["step"]
            if step >= config.steps:
                break
            batch = _columns(chunk, draws[j])
            if n_real:
                ridx = np.random.default_rng([config.seed, 3, step]).integers(0, len(real_set), n_real)
                rb = _columns(real_set, ridx)
                batch = {k: torch.cat([batch[k], rb[k]]) for k in batch}
            batch = _augment(batch, torch.Generator().manual_seed(config.seed * 1_000_003 + step))
            batch = _on(batch, dev)
            for g in opt.param_groups:
                g["lr"] = _lr_at(config, step)
            pred = _forward(model, batch["x"], config.normalisation)
            loss = ((pred - targets_of(batch, n_out)).abs() * w).sum(dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run_loss += float(loss.detach())
            run_n += 1
            state["step"] = step + 1
            bar.update(1)
            last = state["step"] == config.steps
            if state["step"] % config.val_every == 0 or last:
                vloss, vpos = _validate(model, val, config, w)
                state["history"].append(
                    {
                        "step": state["step"],
                        "samples": state["step"] * config.batch_size,
                        "lr": _lr_at(config, step),
                        "train_loss": run_loss / max(run_n, 1),
                        "val_loss": vloss,
                        "val_pos_err_px": vpos,
                        "seconds": time.perf_counter() - t0,
                        **{f"loss_{k}": _validate(model, v, config, w)[0] for k, v in watched.items()},
                    }
                )
                run_loss, run_n = 0.0, 0
                bar.set_postfix(
                    train=f"{state['history'][-1]['train_loss']:.4f}", val=f"{vloss:.4f}", pos=f"{vpos:.3f}px"
                )
                if vloss < state["best_val"]:
                    state["best_val"] = vloss
                    best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            now = time.perf_counter()
            if time_limit is not None and now - t_run > time_limit and not last:
                stopped = True
                break
        state["epoch"], state["pos"] = (epoch, pos + 1) if not stopped else (epoch, pos)
        if stopped:
            # the rest of this chunk is redrawn on resume: the same draws, from step j on
            state["resume_skip"] = j + 1
        skip = 0
        if ckpt is not None and (
            stopped or time.perf_counter() - t_ckpt > checkpoint_every or state["step"] >= config.steps
        ):
            state["seconds"] = time.perf_counter() - t0
            state["cpu_seconds"] = time.process_time() - cpu0
            state["worker_cpu_seconds"] = _children_cpu() - kids0
            state["config"] = config.to_dict()
            _save_checkpoint(ckpt, model, best, opt, state)
            t_ckpt = time.perf_counter()
    bar.close()
    if best is not None:
        model.load_state_dict(best)
    model = model.cpu().eval()
    hist = pd.DataFrame(state["history"])
    hist.attrs["finished"] = state["step"] >= config.steps
    hist.attrs["wall_seconds"] = time.perf_counter() - t0
    hist.attrs["cpu_seconds"] = time.process_time() - cpu0
    hist.attrs["worker_cpu_seconds"] = _children_cpu() - kids0
    first = stream.get(0)
    cal_idx = np.sort(np.random.default_rng([config.seed, 4]).choice(len(first), 256, replace=False))
    return TrainResult(
        model,
        hist,
        config,
        state["step"] * config.batch_size,
        [f"scenes-{config.stream_seed}"] + ([real_set.name] if real_set is not None else []),
        time.perf_counter() - t0,
        first.cutouts[cal_idx],
    )


#: The protocol of the shipped default model (``laue-live train`` without options reproduces it).
SHIPPED_STREAM_CONFIG = StreamConfig(network="tiny-parabola", samples=3_000_000)
