import numpy as np
import pandas as pd

from laue_live.cnn._metrics import comparison_table, confusion, position_error_vs_truth, r2, scores


def _tables():
    truth = pd.DataFrame(
        {
            "sim": [0.9, 0.8, 0.1, 0.7],
            "d_row": [0.1, -0.2, 5.0, 0.95],
            "d_col": [0.0, 0.3, -30.0, 0.0],
            "asp": [0.5, 0.8, 0.2, 0.9],
            "area": [3.0, 4.0, 200.0, 5.0],
            "true_d_row": [0.0, -0.2, np.nan, 1.0],
            "true_d_col": [0.0, 0.3, np.nan, 0.0],
        }
    )
    pred = pd.DataFrame(
        {
            "sim": [0.8, 0.4, 0.6, 0.7],
            "d_row": [0.1, -0.2, 0.0, 0.3],
            "d_col": [0.0, 0.3, 0.0, 0.0],
            "asp": [0.5, 0.7, 0.2, 0.9],
            "area": [3.0, 4.0, 10.0, 5.0],
        }
    )
    return truth, pred


def test_r2_is_one_for_perfect_and_zero_for_the_mean():
    y = np.array([[1.0, 2.0], [3.0, 5.0], [0.0, 1.0]])
    assert r2(y, y) == 1.0
    assert abs(r2(y, np.repeat(y.mean(axis=0, keepdims=True), 3, axis=0))) < 1e-12


def test_comparison_clips_and_flags_good():
    cmp = comparison_table(*_tables())
    assert cmp["d_col"][2] == -16.0 and cmp["area"][2] == 25 * np.pi
    assert list(cmp["good"]) == [True, True, False, False]
    assert list(cmp["good_pred"]) == [True, False, True, True]
    s = scores(cmp)
    assert s["n"] == 4
    np.testing.assert_allclose(s["mae_sim"], (0.1 + 0.4 + 0.5 + 0.0) / 4)
    np.testing.assert_allclose(s["mae_asp"], 0.1 / 4)
    c = confusion(cmp)
    assert (c["good_as_good"], c["good_as_bad"], c["bad_as_good"], c["bad_as_bad"]) == (1, 1, 2, 0)
    assert c["pct_bad_as_good"] == 50.0
    assert np.isnan(scores(cmp[cmp["sim"] > 2])["mae_sim"])


def test_position_error_against_truth():
    cmp = comparison_table(*_tables())
    pe = position_error_vs_truth(cmp)
    assert pe.loc["cnn", "n"] == 3  # the spot without truth is left out
    np.testing.assert_allclose(pe.loc["fit", "median"], 0.05)
    np.testing.assert_allclose(pe.loc["cnn", "median"], 0.1)
