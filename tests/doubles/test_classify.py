"""The shipped double-spot network tells easy doubles from singles and locates both components."""

from __future__ import annotations

import numpy as np
import pandas as pd

from laue_live.doubles import DoublePredictor, make_doubles, match_errors, split_bank


def test_easy_doubles_and_singles_are_classified(double_model, real_bank):
    rng = np.random.default_rng(99)
    _, held_out = split_bank(real_bank, val_frame=0)  # real spots the network was not trained on
    n = 60
    dcut, dtru = make_doubles(n, rng=rng, bank=held_out, sep=rng.uniform(4, 8, n), ratio=rng.uniform(1, 3, n))
    scut, stru = make_doubles(n, rng=rng, bank=held_out, double_fraction=0.0)
    pred = DoublePredictor(double_model)
    pd_ = pred.predict(dcut, refine=True)
    ps = pred.predict(scut)
    acc = np.r_[pd_.n_components == 2, ps.n_components == 1].mean()
    assert acc >= 0.95
    called = (pd_.n_components == 2).to_numpy()
    e1, e2 = match_errors(pd_[called].reset_index(drop=True), dtru[called].reset_index(drop=True))
    assert np.median(np.r_[e1, e2]) < 0.1
    ratio_err = np.abs(np.log(pd_.ratio[called].to_numpy() / dtru.ratio[called].to_numpy()))
    assert np.median(ratio_err) < np.log(1.25)
    assert isinstance(pd_, pd.DataFrame) and (pd_.p_double.between(0, 1)).all()


def test_model_file_carries_json_metadata(double_model):
    pred = DoublePredictor(double_model)
    meta = pred.metadata
    assert meta["format"] == "laue-live-double-spot-net" and meta["normalisation"] == "minmax"
    assert meta["info"]["steps"] > 0
