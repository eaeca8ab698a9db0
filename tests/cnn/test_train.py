import numpy as np
import pytest
import torch

from laue_live.cnn import ArraySource, SpotSet, TrainConfig, collect, train


def test_a_few_training_steps_reduce_the_loss_and_are_reproducible(toy_spots):
    cut, table = toy_spots
    kw = dict(arch="lean", epochs=3, steps=4, batch_size=16, val_size=32, progress=False, seed=7)
    a = train(SpotSet(cut, table, "toy"), **kw)
    b = train(ArraySource(cut, table, "toy"), **kw)
    assert list(a.history.columns) == ["epoch", "train_loss", "val_loss", "seconds"]
    assert len(a.history) == 3
    np.testing.assert_allclose(a.history["train_loss"], b.history["train_loss"], rtol=1e-6)
    for (k, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert torch.equal(x, y), k
    assert a.history["train_loss"].iloc[-1] < a.history["train_loss"].iloc[0] + 0.05
    assert np.isfinite(a.history["val_loss"]).all()
    info = a.info()
    assert info["protocol"]["epochs"] == 3 and info["protocol"]["lr"] == 1e-3


def test_unknown_option_and_too_little_data_are_refused(toy_spots):
    cut, table = toy_spots
    with pytest.raises(TypeError, match="unknown training option"):
        train(SpotSet(cut, table), epochs=1, steps=1, bogus=3, progress=False)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(SpotSet(cut[:20], table[:20]), epochs=1, steps=1, batch_size=32, progress=False)


def test_spot_set_round_trip_and_invalid_rows(tmp_path, toy_spots):
    cut, table = toy_spots
    t = table.copy()
    t.loc[3, "sim"] = np.nan
    s = SpotSet(cut, t, "x")
    assert len(collect(s)) == len(s) - 1
    s2 = SpotSet.load(s.save(tmp_path / "s.npz"))
    assert s2.name == "x" and np.array_equal(s2.cutouts, s.cutouts)
    np.testing.assert_array_equal(s2.desc, s.desc)


def test_default_config_is_the_papers_protocol():
    c = TrainConfig()
    assert (c.epochs, c.steps, c.batch_size, c.lr, c.bins, c.per_bin) == (70, 100, 32, 1e-3, 12, 2000)


def test_a_model_trained_too_briefly_is_reported_unusable(toy_spots):
    import pandas as pd

    cut, table = toy_spots
    cut, table = np.concatenate([cut] * 3), pd.concat([table] * 3, ignore_index=True)  # 288 spots
    brief = train(SpotSet(cut, table, "toy"), arch="lean", epochs=1, steps=1, batch_size=16, progress=False,
                  seed=3)
    v = brief.validation
    assert v["n"] == 28 and 0 < v["true_good_fraction"] < 1  # 10% of the spots held out
    # one step: about one Sim for every cutout, so every spot one class (measured: 0% called good)
    reason = brief.usable()
    assert reason.startswith(f"it calls {100 * v['good_fraction']:.0f}% of the 28 validation spots"), v
    assert brief.info()["validation"] == v
