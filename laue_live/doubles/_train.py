"""Training of the double-spot network on synthetic doubles (CPU-friendly, time-budgeted).

Run ``nice python -m laue_live.doubles._train --help`` for the command line (the lead may wire it
as ``laue-live doubles train``). Training examples are made on the fly by
:func:`laue_live.doubles.make_doubles` (half doubles, half singles; half real, half simulated), so
no example is seen twice; the real spots of one frame are held out for validation.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from laue_live._rules import CUTOUT_CENTRE
from laue_live.cnn import load_model
from laue_live.doubles._network import POS_SCALE, DoubleArchitecture, DoubleNet, save_double_model
from laue_live.doubles._predict import decode_outputs
from laue_live.doubles._synth import RealSpotBank, make_doubles

__all__ = ["DoubleTrainConfig", "train_double_net", "targets_from_truth", "double_loss", "split_bank",
           "normalise"]

logger = logging.getLogger(__name__)


@dataclass
class DoubleTrainConfig:
    """Settings of :func:`train_double_net`.

    Parameters
    ----------
    seconds
        Training budget in CPU seconds of this process (all threads; the loop stops after the step
        that crosses it). ``wall_seconds`` caps the wall-clock time as well (shared machines).
    batch, lr, seed, threads
        Batch size, Adam learning rate (cosine-decayed to 5% over the budget), random seed, torch
        CPU threads.
    real_fraction, double_fraction
        Mix of the synthetic examples (see :func:`make_doubles`).
    val_size, val_every
        Validation examples (fixed) and seconds between validations.
    trunk
        Optional spot-CNN ``.safetensors`` whose convolutional trunk initialises the network
        ("extended head" variant); with ``freeze_trunk`` only the head is trained.
    """

    seconds: float = 900.0
    wall_seconds: float = 1800.0
    batch: int = 128
    lr: float = 1e-3
    seed: int = 0
    threads: int = 2
    real_fraction: float = 0.5
    double_fraction: float = 0.5
    val_size: int = 2000
    val_every: float = 120.0
    trunk: str | None = None
    freeze_trunk: bool = False


def normalise(cutouts) -> torch.Tensor:
    """Per-cutout min-max to [0, 1] (the spot CNN's normalisation), ``(N, 1, H, W)`` float32."""
    x = torch.as_tensor(np.asarray(cutouts, dtype=np.float32))
    lo = x.amin(dim=(-2, -1), keepdim=True)
    span = x.amax(dim=(-2, -1), keepdim=True) - lo
    return torch.where(span > 0, (x - lo) / span.clamp_min(1e-30), torch.zeros_like(x))[:, None]


def targets_from_truth(truth: pd.DataFrame) -> dict[str, torch.Tensor]:
    """Training targets from a :func:`make_doubles` truth table."""
    c = CUTOUT_CENTRE
    dbl = truth["n_spots"].to_numpy() == 2
    slots = np.zeros((len(truth), 2, 4), np.float32)
    for k in (1, 2):
        slots[:, k - 1, 0] = (truth[f"row{k}"].to_numpy() - c) / POS_SCALE
        slots[:, k - 1, 1] = (truth[f"col{k}"].to_numpy() - c) / POS_SCALE
        slots[:, k - 1, 2] = np.log(truth[f"sigma_row{k}"].to_numpy())
        slots[:, k - 1, 3] = np.log(truth[f"sigma_col{k}"].to_numpy())
    slots = np.nan_to_num(slots)
    a1, a2 = truth["amp1"].to_numpy(), np.nan_to_num(truth["amp2"].to_numpy())
    frac = (a1 / (a1 + a2)).astype(np.float32)
    return {"double": torch.as_tensor(dbl.astype(np.float32)), "slots": torch.as_tensor(slots),
            "frac": torch.as_tensor(frac)}


def double_loss(out: torch.Tensor, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Classification (BCE) + permutation-invariant L1 on positions (px), log widths and fraction."""
    cls = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], t["double"])
    a, b = out[:, 1:5], out[:, 5:9]
    frac = torch.sigmoid(out[:, 9])
    ta, tb = t["slots"][:, 0], t["slots"][:, 1]

    def slot_err(p, q):
        return (p[:, :2] - q[:, :2]).abs().sum(-1) * POS_SCALE + 0.3 * (p[:, 2:] - q[:, 2:]).abs().sum(-1)

    same = slot_err(a, ta) + slot_err(b, tb) + (frac - t["frac"]).abs()
    swap = slot_err(a, tb) + slot_err(b, ta) + (frac - (1 - t["frac"])).abs()
    single = slot_err(a, ta) + (frac - 1.0).abs()
    dbl = t["double"] > 0.5
    reg = torch.where(dbl, torch.minimum(same, swap), single).mean()
    loss = cls + 0.5 * reg
    return loss, {"cls": cls.item(), "reg": reg.item()}


def split_bank(bank: RealSpotBank, val_frame: int = 0) -> tuple[RealSpotBank, RealSpotBank]:
    """Train / validation banks: the real spots of frame ``val_frame`` are held out."""
    is_val = bank.spots["frame"].to_numpy() == val_frame
    return (RealSpotBank(bank.frames, bank.spots[~is_val].reset_index(drop=True)),
            RealSpotBank(bank.frames, bank.spots[is_val].reset_index(drop=True)))


def _load_trunk(net: DoubleNet, path: str) -> None:
    spot, _ = load_model(path)
    net.features.load_state_dict(spot.features.state_dict())


@torch.no_grad()
def _validate(net: DoubleNet, x: torch.Tensor, truth: pd.DataFrame) -> dict[str, float]:
    net.eval()
    out = torch.cat([net(x[i:i + 512]) for i in range(0, len(x), 512)]).numpy()
    net.train()
    pred = decode_outputs(out)
    dbl = truth["n_spots"].to_numpy() == 2
    ok = (pred["n_components"].to_numpy() == 2) == dbl
    goal = dbl & (truth["separation"].to_numpy() >= 3) & (truth["ratio"].to_numpy() <= 5)
    goal_single = ~dbl
    e1 = np.hypot(pred["row1"] - truth["row1"], pred["col1"] - truth["col1"]).to_numpy()
    return {"acc": float(ok.mean()), "acc_goal": float(np.r_[ok[goal], ok[goal_single]].mean()),
            "pos1_median_goal": float(np.median(e1[goal]))}


def train_double_net(config: DoubleTrainConfig, bank: RealSpotBank | None, out_path: str | Path,
                     *, val_bank: RealSpotBank | None = None, progress: bool = True) -> dict:
    """Train a :class:`DoubleNet` within ``config.seconds`` and save it to ``out_path``.

    Returns
    -------
    dict
        Training record (config, steps, examples, history of validation metrics), also stored in
        the model file's metadata.
    """
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = DoubleNet(DoubleArchitecture())
    if config.trunk:
        _load_trunk(net, config.trunk)
    if config.freeze_trunk:
        for p in net.features.parameters():
            p.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr)
    vx, vt = make_doubles(config.val_size, rng=np.random.default_rng(10_000 + config.seed),
                          bank=val_bank or bank, real_fraction=config.real_fraction,
                          double_fraction=config.double_fraction)
    vx = normalise(vx)
    history: list[dict] = []
    t0 = time.monotonic()
    c0 = time.process_time()
    last_val = c0
    steps = 0
    net.train()
    if config.freeze_trunk:
        net.features.eval()  # keep the spot CNN's batch-norm statistics
    bar = tqdm(total=int(config.seconds), unit="cpu-s", desc="double-net training", disable=not progress)
    while True:
        elapsed = time.process_time() - c0
        if elapsed >= config.seconds or time.monotonic() - t0 >= config.wall_seconds:
            break
        for g in opt.param_groups:  # cosine decay over the time budget
            g["lr"] = config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * elapsed / config.seconds)))
        cut, truth = make_doubles(config.batch, rng=rng, bank=bank, real_fraction=config.real_fraction,
                                  double_fraction=config.double_fraction)
        out = net(normalise(cut))
        loss, parts = double_loss(out, targets_from_truth(truth))
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        now = time.process_time()
        bar.update(min(int(now - c0), int(config.seconds)) - bar.n)
        bar.set_postfix(loss=f"{float(loss):.3f}", cls=f"{parts['cls']:.3f}", reg=f"{parts['reg']:.3f}")
        if now - last_val >= config.val_every:
            last_val = now
            m = _validate(net, vx, vt) | {"step": steps, "cpu_seconds": round(now - c0, 1),
                                          "wall_seconds": round(time.monotonic() - t0, 1)}
            history.append(m)
            logger.info("validation %s", m)
    bar.close()
    m = _validate(net, vx, vt) | {"step": steps, "cpu_seconds": round(time.process_time() - c0, 1),
                                  "wall_seconds": round(time.monotonic() - t0, 1)}
    history.append(m)
    record = {"config": asdict(config), "steps": steps, "examples": steps * config.batch,
              "history": history, "torch": torch.__version__}
    save_double_model(out_path, net.eval(), info=record)
    logger.info("saved %s after %d steps (%d examples): %s", out_path, steps, steps * config.batch, m)
    return record


def _main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train the double-spot network on synthetic doubles made from "
                                "real BM32 spots (frame nw1_0001; nw1_0000 held out) and simulated spots.")
    p.add_argument("--data", default="../shared/data/bm32", help="folder with the BM32 frames and peak lists")
    p.add_argument("--out", default="models/doubles_net.safetensors", help="output weights (.safetensors)")
    p.add_argument("--seconds", type=float, default=900.0,
                   help="training budget, CPU seconds of this process")
    p.add_argument("--wall-seconds", type=float, default=1800.0, help="wall-clock cap, s")
    p.add_argument("--val-every", type=float, default=60.0, help="CPU seconds between validations")
    p.add_argument("--trunk", default=None, help="spot-CNN weights whose trunk initialises the network")
    p.add_argument("--freeze-trunk", action="store_true", help="train the head only (extended-head variant)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    bank = RealSpotBank.from_bm32(a.data)
    train_bank, val_bank = split_bank(bank, val_frame=0)
    cfg = DoubleTrainConfig(seconds=a.seconds, wall_seconds=a.wall_seconds, val_every=a.val_every,
                            trunk=a.trunk, freeze_trunk=a.freeze_trunk, threads=a.threads,
                            seed=a.seed)
    train_double_net(cfg, train_bank, a.out, val_bank=val_bank)


if __name__ == "__main__":
    _main()
