"""A double spot becomes two rows sharing a parent id; the LaueTools export carries both."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from laue_live import ModelError, SpotTableError
from laue_live._schema import spot_column_names
from laue_live.describe import characterize
from laue_live.doubles import DoublePredictor, describe_doubles, linear_amplitudes, make_doubles
from laue_live.spots import read_lauetools_dat, spot_table_from_descriptors, write_lauetools_dat


@pytest.fixture(scope="module")
def predictor(double_model) -> DoublePredictor:
    return DoublePredictor(double_model)


def _table(cut: np.ndarray):
    peaks = np.array([[100 + 50 * i, 200 + 30 * i] for i in range(len(cut))])
    desc = characterize(cut, "fit")
    return spot_table_from_descriptors(desc, peaks, np.zeros(len(cut), bool), frame_number=3), peaks


def test_double_spots_become_two_component_rows(rng, predictor, tmp_path):
    n = 3
    dcut, dtru = make_doubles(n, rng=rng, sep=np.full(n, 6.0), ratio=np.full(n, 2.0))
    scut, stru = make_doubles(n, rng=rng, double_fraction=0.0)
    cut = np.concatenate([scut[:1], dcut[:1], scut[1:], dcut[1:]])
    truth = pd.concat([stru.iloc[:1], dtru.iloc[:1], stru.iloc[1:], dtru.iloc[1:]], ignore_index=True)
    table, peaks = _table(cut)
    out = describe_doubles(cut, table, predictor=predictor, candidates="all")
    assert list(out.columns) == spot_column_names()
    assert len(out) == len(table) + n  # each double: one row out, two in
    assert out.attrs["doubles"]["n_split"] == n
    singles = out[out.component == 0]
    assert (singles.parent == -1).all()
    comps = out[out.component > 0]
    dbl_spots = table.spot[truth.n_spots.to_numpy() == 2].to_numpy()
    assert sorted(comps.parent.unique()) == sorted(dbl_spots)
    assert out.spot.is_unique and (out.frame == 3).all()
    for parent, grp in comps.groupby("parent"):
        assert sorted(grp.component) == [1, 2]
        i = int(np.flatnonzero(table.spot.to_numpy() == parent)[0])
        t = truth.iloc[i]
        for k in (1, 2):
            row = grp[grp.component == k].iloc[0]
            # frame coordinates: the cutout's (16, 16) is the parent's initial peak
            assert abs(row.row - (peaks[i, 0] - 16 + t[f"row{k}"])) < 0.15
            assert abs(row.col - (peaks[i, 1] - 16 + t[f"col{k}"])) < 0.15
            assert row.good and row.sim > 0.5
            assert np.hypot(row.row - row.row0, row.col - row.col0) <= 0.9
        assert grp[grp.component == 1].amplitude.iat[0] > grp[grp.component == 2].amplitude.iat[0]
    # the LaueTools export carries both components
    back = read_lauetools_dat(write_lauetools_dat(out, tmp_path / "doubles.dat"))
    assert len(back) == len(out)
    xs = np.sort(back.iloc[:, 0].to_numpy())
    np.testing.assert_allclose(xs, np.sort(out.col.to_numpy() + 1), atol=1e-3)


def test_candidates_bad_leaves_good_spots_alone(rng, predictor):
    cut, truth = make_doubles(4, rng=rng, sep=np.full(4, 6.0), ratio=np.full(4, 1.5))
    table, _ = _table(cut)
    table["good"] = True  # pretend the single model called them all good
    out = describe_doubles(cut, table, predictor=predictor, candidates="bad")
    assert len(out) == len(table) and (out.component == 0).all()


def test_bad_input_gives_clear_errors(rng, predictor, tmp_path):
    cut, _ = make_doubles(3, rng=rng)
    table, _ = _table(cut)
    with pytest.raises(SpotTableError, match="one cutout per table row"):
        describe_doubles(cut[:2], table, predictor=predictor)
    with pytest.raises(SpotTableError, match="lacks"):
        describe_doubles(cut, table.drop(columns="sim0"), predictor=predictor)
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError):
        DoublePredictor(bad)
    empty = describe_doubles(np.zeros((0, 32, 32)), table.iloc[:0], predictor=predictor)
    assert len(empty) == 0


def test_linear_amplitudes_are_exact_on_noiseless_doubles():
    from laue_live.doubles import gaussian_model

    p = np.array([[5000.0, 15.7, 16.2, 1.1, 0.9, 1500.0, 18.9, 13.0, 1.3, 1.0, 1000.0]])
    img = gaussian_model(p)
    comp = pd.DataFrame({"n_components": [2], "row1": [15.7], "col1": [16.2], "sigma_row1": [1.1],
                         "sigma_col1": [0.9], "row2": [18.9], "col2": [13.0], "sigma_row2": [1.3],
                         "sigma_col2": [1.0]})
    np.testing.assert_allclose(linear_amplitudes(img, comp)[0], [5000.0, 1500.0, 1000.0], rtol=1e-6)


def test_components_closer_than_the_networks_minimum_stay_one_spot(predictor):
    # close, similar doubles: the exact two-Gaussian fit (method="fit") can pull the two components
    # together; such a pair is one spot, not two near-identical rows (before: 30 of 245 pairs of 400
    # such cutouts 1.0-2.0 px apart)
    cut, _ = make_doubles(100, rng=np.random.default_rng(1), sep_range=(0.5, 4.0), ratio_range=(1, 3))
    table, _ = _table(cut)
    out = describe_doubles(cut, table, predictor=predictor, method="fit", candidates="all")
    comp = out[out["component"] > 0]
    first = comp[comp["component"] == 1].set_index("parent")
    second = comp[comp["component"] == 2].set_index("parent")
    sep = np.hypot(first["row"] - second["row"], first["col"] - second["col"])
    assert len(sep) == out.attrs["doubles"]["n_split"] > 25
    assert sep.min() >= predictor.min_separation
    assert not out.duplicated(["frame", "row", "col"]).any()
