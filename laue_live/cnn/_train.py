"""Training of the spot CNN with the paper's protocol (section 2.3.3-2.3.4), seeded and reproducible."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from laue_live._rules import area_star, is_good_spot, pos_from_star, pos_star
from laue_live._xp import resolve_device
from laue_live.cnn._augment import augment_batch
from laue_live.cnn._data import CutoutSource, SpotSet, collect, resample_uniform
from laue_live.cnn._network import ARCHITECTURES, Architecture, SpotCNN
from laue_live.cnn._normalise import normalise_torch

__all__ = ["TrainConfig", "TrainResult", "train", "prepare_training_set"]

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """The training protocol; defaults are the paper's.

    Parameters
    ----------
    arch
        ``"paper"``, ``"lean"`` or an :class:`Architecture`.
    epochs, steps, batch_size, lr
        70 epochs of 100 steps of 32 cutouts, Adam with learning rate 1e-3.
    resample, bins, per_bin
        Resample each training set so that Sim is ~uniform: 12 bins, up to 2000 spots each.
    max_shift
        Largest random shift per axis (px) of the augmentation; 0 disables shifts.
    augment
        Random 90-degree rotations, reflections and shifts.
    val_size
        Cutouts of the validation set (drawn once) on which the loss is computed after each epoch.
    seed
        Seeds resampling, initial weights, batches and augmentation.
    normalisation
        Input normalisation (stored with the weights).
    """

    arch: str | Architecture = "paper"
    epochs: int = 70
    steps: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    resample: bool = True
    bins: int = 12
    per_bin: int = 2000
    max_shift: int = 1
    augment: bool = True
    val_size: int = 1000
    seed: int = 0
    normalisation: str = "minmax"

    def architecture(self) -> Architecture:
        """Return the :class:`Architecture` named or given by ``arch``."""
        return ARCHITECTURES[self.arch] if isinstance(self.arch, str) else self.arch

    def to_dict(self) -> dict:
        """JSON-friendly form (stored in the model metadata)."""
        d = asdict(self)
        d["arch"] = self.arch if isinstance(self.arch, str) else self.arch.to_dict()
        return d


@dataclass
class TrainResult:
    """What :func:`train` returns: the model, the loss history and what it was trained on."""

    model: SpotCNN
    history: pd.DataFrame
    config: TrainConfig
    n_train: int
    train_names: list[str] = field(default_factory=list)
    seconds: float = 0.0
    calibration: np.ndarray | None = None
    validation: dict = field(default_factory=dict)

    def info(self) -> dict:
        """Training information for the model metadata."""
        return {
            "protocol": self.config.to_dict(),
            "n_train": self.n_train,
            "train_sets": self.train_names,
            "seconds": round(self.seconds, 1),
            "final_train_loss": float(self.history["train_loss"].iloc[-1]),
            "final_val_loss": float(self.history["val_loss"].iloc[-1]),
            "validation": dict(self.validation),
        }

    def usable(self) -> str:
        """Why the model is not usable ("" if it is): it calls (nearly) every validation spot one class.

        A model trained too briefly predicts one Sim for every cutout, and then every spot is bad
        (or good). It is unusable when the share of spots it calls good is under a quarter of the
        exact fit's share, or over four times it (or every spot, where the fit finds bad ones); with
        fewer than 20 validation spots there is no verdict.
        """
        v = self.validation
        if not v or v["n"] < 20:  # too few validation spots to judge
            return ""
        pred, true = v["good_fraction"], v["true_good_fraction"]
        if (true > 0 and pred < 0.25 * true) or (true < 1 and (pred > 4 * true or pred == 1.0)):
            return (f"it calls {100 * pred:.0f}% of the {v['n']} validation spots good where the exact fit "
                    f"calls {100 * true:.0f}% good")
        return ""


def prepare_training_set(sets: Sequence[SpotSet], config: TrainConfig) -> SpotSet:
    """Keep the valid rows of each set, resampled per set (if configured), concatenated."""
    rng = np.random.default_rng(config.seed)
    parts = []
    for s in sets:
        s = s.valid()
        if config.resample:
            s = s.subset(
                resample_uniform(s.table["sim"].to_numpy(), bins=config.bins, per_bin=config.per_bin, rng=rng)
            )
        parts.append(s)
    return SpotSet.concat(parts)


def _targets(sim, d_row, d_col, asp, area) -> torch.Tensor:
    return torch.stack([sim, pos_star(d_row), pos_star(d_col), asp, area_star(area)], dim=1)


class _Tensors:
    """A spot set as float32 tensors on a device (targets kept raw so augmentation can move them)."""

    def __init__(self, s: SpotSet, device: torch.device) -> None:
        t = s.table
        f = lambda c: torch.as_tensor(np.nan_to_num(t[c].to_numpy(np.float32)), device=device)  # noqa: E731
        self.x = torch.as_tensor(s.cutouts, device=device)
        self.sim, self.d_row, self.d_col = f("sim").clamp(0, 1), f("d_row"), f("d_col")
        self.asp, self.area = f("asp").clamp(0, 1), f("area")

    def batch(self, idx: torch.Tensor):
        return (self.x[idx], self.sim[idx], self.d_row[idx], self.d_col[idx], self.asp[idx], self.area[idx])


def train(
    data: Sequence[SpotSet | CutoutSource] | SpotSet | CutoutSource,
    *,
    val: SpotSet | CutoutSource | None = None,
    config: TrainConfig | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
    **overrides,
) -> TrainResult:
    """Train a spot CNN.

    Parameters
    ----------
    data
        Training sets (each resampled separately, as the paper resamples each dataset) or sources.
    val
        Held-out set whose loss is recorded after every epoch (not resampled; ``val_size`` cutouts
        drawn once). ``None``: a random 10% of ``data`` is held out instead.
    config
        The protocol (:class:`TrainConfig`); keyword ``overrides`` replace its fields.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``; on CUDA the forward pass runs in mixed precision.
    progress
        Show a tqdm progress bar (per epoch, with the losses).

    Returns
    -------
    TrainResult
        Final-epoch model (eval mode, on the CPU) and a history with ``epoch, train_loss, val_loss,
        seconds`` (mean absolute error over the five descriptors).
    """
    config = config or TrainConfig()
    for k, v in overrides.items():
        if not hasattr(config, k):
            raise TypeError(f"unknown training option {k!r}")
        setattr(config, k, v)
    sets = [collect(d) for d in (data if isinstance(data, Sequence) else [data])]
    dev = resolve_device(device)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    if val is None:  # hold out 10% of each set; the rest stays per set so that each is resampled on its own
        vals, rest = [], []
        for s in sets:
            perm = rng.permutation(len(s))
            n_val = max(1, len(s) // 10)
            vals.append(s.subset(np.sort(perm[:n_val])))
            rest.append(s.subset(np.sort(perm[n_val:])))
        val_set, sets = SpotSet.concat(vals, name="validation"), rest
    else:
        val_set = collect(val)
    if len(val_set) > config.val_size:
        val_set = val_set.subset(np.sort(rng.choice(len(val_set), config.val_size, replace=False)))
    train_set = prepare_training_set(sets, config)
    if len(train_set) < config.batch_size:
        raise ValueError(
            f"only {len(train_set)} training cutouts, fewer than one batch of {config.batch_size}"
        )
    logger.info("training on %d cutouts (%s), validating on %d", len(train_set), train_set.name, len(val_set))

    tr, va = _Tensors(train_set, dev), _Tensors(val_set, dev)
    model = SpotCNN(config.architecture()).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.L1Loss()
    use_amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    rows = []
    t_start = time.perf_counter()
    order = torch.randperm(len(train_set), generator=gen)
    pos = 0
    bar = tqdm(range(config.epochs), desc="training", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        total = 0.0
        for _ in range(config.steps):
            if pos + config.batch_size > len(order):
                order, pos = torch.randperm(len(train_set), generator=gen), 0
            idx = order[pos : pos + config.batch_size].to(dev)
            pos += config.batch_size
            x, sim, dr, dc, asp, area = tr.batch(idx)
            if config.augment:
                x, dr, dc = augment_batch(x.cpu(), dr.cpu(), dc.cpu(), gen, config.max_shift)
                x, dr, dc = x.to(dev), dr.to(dev), dc.to(dev)
            y = _targets(sim, dr, dc, asp, area)
            xin = normalise_torch(x, config.normalisation)[:, None]
            with torch.autocast(dev.type, dtype=torch.float16, enabled=use_amp):
                pred = model(xin)
            loss = loss_fn(pred.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += float(loss.detach())
        val_loss = _evaluate_loss(model, va, config, use_amp)
        rows.append(
            {
                "epoch": epoch + 1,
                "train_loss": total / config.steps,
                "val_loss": val_loss,
                "seconds": time.perf_counter() - t_start,
            }
        )
        bar.set_postfix(train=f"{rows[-1]['train_loss']:.4f}", val=f"{val_loss:.4f}")
    validation = _validation_quality(model, va, config, use_amp)
    model = model.cpu().eval()
    # raw training cutouts stored with the weights, for int8 calibration at load time
    cal = train_set.cutouts[np.sort(rng.choice(len(train_set), min(256, len(train_set)), replace=False))]
    return TrainResult(
        model,
        pd.DataFrame(rows),
        config,
        len(train_set),
        [s.name for s in sets],
        time.perf_counter() - t_start,
        cal,
        validation,
    )


@torch.no_grad()
def _validation_quality(model: SpotCNN, va: _Tensors, config: TrainConfig, use_amp: bool) -> dict:
    """Good-spot calls of the model on the validation set beside the exact fit's (the labels)."""
    model.eval()
    preds = []
    for i in range(0, len(va.x), 1024):
        idx = torch.arange(i, min(len(va.x), i + 1024), device=va.x.device)
        with torch.autocast(va.x.device.type, dtype=torch.float16, enabled=use_amp):
            preds.append(model(normalise_torch(va.x[idx], config.normalisation)[:, None]).float().cpu())
    if not preds:
        return {}
    out = torch.cat(preds).numpy()
    pred = is_good_spot(out[:, 0], pos_from_star(out[:, 1]), pos_from_star(out[:, 2]))
    true = is_good_spot(va.sim.cpu().numpy(), va.d_row.cpu().numpy(), va.d_col.cpu().numpy())
    return {"n": int(len(true)), "good_fraction": float(pred.mean()),
            "true_good_fraction": float(true.mean()), "agreement": float((pred == true).mean())}


@torch.no_grad()
def _evaluate_loss(model: SpotCNN, va: _Tensors, config: TrainConfig, use_amp: bool) -> float:
    model.eval()
    total, n = 0.0, len(va.x)
    for i in range(0, n, 1024):
        idx = torch.arange(i, min(n, i + 1024), device=va.x.device)
        x, sim, dr, dc, asp, area = va.batch(idx)
        with torch.autocast(va.x.device.type, dtype=torch.float16, enabled=use_amp):
            pred = model(normalise_torch(x, config.normalisation)[:, None])
        total += float((pred.float() - _targets(sim, dr, dc, asp, area)).abs().mean(dim=1).sum())
    return total / max(n, 1)
