"""The stream trainer learns: a small network on a small fixed stream reaches what a broken one cannot.

One training run of the real trainer (scene chunks rendered into a temporary cache, Sim drawn
uniform, augmentation, AdamW) and three sabotaged ones: the input's rows and columns swapped
against the targets, the optimizer not stepping, the targets shuffled across the batch. The same
check (position error and descriptor error on held-out cutouts, computed here, not by the trainer)
passes for the first and fails for each of the others.
"""

import numpy as np
import pytest
import torch

from laue_live.cnn import SpotSet, normalise_torch
from laue_live.cnn._accuracy import clean_gaussians
from laue_live.spots import fit_descriptors
from laue_live.training import SceneStream, StreamConfig, train_stream
from laue_live.training import _train_stream as ts

CHUNK = 1024
# ~1.5x the honest run (measured: position 0.063 px, Asp/Area* error 0.040); an untrained network
# gives 0.38 px and 0.36, rows/cols swapped 0.52 px, no optimizer step 0.39 px and 0.34, shuffled
# targets 0.37 px and 0.20
POS_BOUND = 0.1
DESC_BOUND = 0.06


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream")
    for seed, ks in ((0, (0, 1)), (1, (0,))):
        s = SceneStream(d, seed=seed, chunk=CHUNK, workers=0)
        for k in ks:
            s.get(k)
    return d


@pytest.fixture(scope="module")
def heldout():
    cut, _ = clean_gaussians(60, seed=3)
    return SpotSet(cut, fit_descriptors(cut), "heldout")


def _config(**kw) -> StreamConfig:
    base = {"network": "tiny-nocentroid", "samples": 64 * 240, "batch_size": 64, "chunk": CHUNK,
            "n_chunks": 2,
            "warmup_steps": 20, "val_every": 80, "workers": 0, "seed": 3}
    return StreamConfig(**{**base, **kw})


def _check(model, s: SpotSet) -> tuple[float, float]:
    """Mean position error (px) and mean |error| of Asp and Area* on held-out cutouts (vs the fit).

    The network has no centroid shortcut (``tiny-nocentroid``): positions must come from the pixels.
    """
    with torch.no_grad():
        y = model.eval()(normalise_torch(torch.as_tensor(s.cutouts))[:, None]).numpy()
    t = s.table
    d_row, d_col = y[:, 1] * 2.2 - 1.1, y[:, 2] * 2.2 - 1.1
    pos = float(np.hypot(d_row - t["d_row"], d_col - t["d_col"]).mean())
    desc = float(
        np.mean(
            [
                np.abs(y[:, 3] - t["asp"]).mean(),
                np.abs(y[:, 4] - np.clip(t["area"] / (5 * np.pi), 0, 1)).mean(),
            ]
        )
    )
    return pos, desc


def _train(cache):
    torch.set_num_threads(1)
    return train_stream(_config(), cache=cache, progress=False).model


def test_the_trainer_learns_positions_and_descriptors(cache, heldout):
    pos, desc = _check(_train(cache), heldout)
    assert pos < POS_BOUND and desc < DESC_BOUND, (
        f"trained: position error {pos:.4f} px, descriptors {desc:.4f}"
    )


def test_an_untrained_network_fails_the_check(heldout):
    from laue_live.cnn import make_network

    torch.manual_seed(0)
    pos, desc = _check(make_network("tiny-nocentroid"), heldout)
    assert not (pos < POS_BOUND and desc < DESC_BOUND), f"untrained passes: {pos:.4f} px, {desc:.4f}"


def _swap_rows_and_cols(monkeypatch):
    orig = ts._augment

    def swapped(b, gen):
        out = orig(b, gen)
        out["x"] = out["x"].transpose(-1, -2).contiguous()
        return out

    monkeypatch.setattr(ts, "_augment", swapped)


def _optimizer_does_not_step(monkeypatch):
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, closure=None: None)


def _targets_shuffled(monkeypatch):
    orig = ts.targets_of

    def shuffled(t, n_out):
        y = orig(t, n_out)
        return y[torch.randperm(len(y))]

    monkeypatch.setattr(ts, "targets_of", shuffled)


@pytest.mark.parametrize(
    "sabotage",
    [_swap_rows_and_cols, _optimizer_does_not_step, _targets_shuffled],
    ids=["rows-cols-swapped", "optimizer-not-stepping", "targets-shuffled"],
)
def test_a_miswired_trainer_fails_the_check(cache, heldout, monkeypatch, sabotage):
    sabotage(monkeypatch)
    pos, desc = _check(_train(cache), heldout)
    assert not (pos < POS_BOUND and desc < DESC_BOUND), (
        f"{sabotage.__name__} passes: {pos:.4f} px, {desc:.4f}"
    )


def test_an_interrupted_training_resumes_where_it_stopped(cache, tmp_path):
    torch.set_num_threads(1)
    cfg = _config(network="tiny", samples=32 * 24, batch_size=32, warmup_steps=4, val_every=8, seed=5)
    whole = train_stream(cfg, cache=cache, progress=False)
    ckpt = tmp_path / "run.ckpt"
    first = train_stream(cfg, cache=cache, checkpoint=ckpt, time_limit=0.0, progress=False)
    assert not first.history.attrs["finished"] and ckpt.is_file()
    rest = train_stream(cfg, cache=cache, checkpoint=ckpt, progress=False)
    assert rest.history.attrs["finished"]
    assert rest.history["step"].tolist() == whole.history["step"].tolist()
    for (k, a), (_, b) in zip(whole.model.state_dict().items(), rest.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_the_device_is_honoured_and_checked(cache):
    """``device`` moves the network and the batches (here the torch CPU device, as CI has no GPU);
    ``"auto"`` without CUDA trains the same weights as the CPU; a CUDA device that is not there is a
    SettingsError before anything is trained."""
    from laue_live import SettingsError

    torch.set_num_threads(1)
    cfg = _config(network="tiny", samples=32 * 8, batch_size=32, warmup_steps=2, val_every=4, seed=7)
    cpu = train_stream(cfg, cache=cache, progress=False, device=torch.device("cpu"))
    if torch.cuda.is_available():
        on_gpu = train_stream(cfg, cache=cache, progress=False, device="cuda")
        assert next(on_gpu.model.parameters()).device.type == "cpu"  # returned on the CPU either way
        return
    auto = train_stream(cfg, cache=cache, progress=False, device="auto")
    for (k, a), (_, b) in zip(cpu.model.state_dict().items(), auto.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(SettingsError, match="CUDA is not available"):
        train_stream(cfg, cache=cache, progress=False, device="cuda")
