"""What a map shows (laue_live._maps): values, spot families, statistics, geometry, for every map."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from laue_live import SettingsError
from laue_live._maps import frame_value, map_extent, map_geometry, map_value, run_values


def _run():
    summary = pd.DataFrame({"frame": [0, 1, 2], "n_spots": [4, 0, 3], "n_good": [2, 0, 3],
                            "mean_sim": [0.6, np.nan, 0.9], "seconds": [0.1, 0.1, 0.2],
                            "failed": [False, False, True], "error": ["", "", "NaN in frame"],
                            "indexed_fraction": [0.5, np.nan, 0.8]})
    spots = pd.DataFrame({"frame": [0, 0, 0, 0, 2, 2, 2],
                          "sigma_row": [1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0],
                          "good": [True, True, False, False, True, True, True],
                          "edge": [False, False, False, True, False, False, False],
                          "saturated": [False] * 7, "component": [0, 0, 1, 2, 0, 0, 0]})
    return summary, spots


def test_spot_statistics_over_one_family():
    summary, spots = _run()
    cases = {("good", "median"): 1.5, ("bad", "mean"): 3.5, ("edge", "max"): 4.0, ("double", "min"): 3.0,
             ("all", "count"): 4.0, ("good", "sum"): 3.0}
    for (family, stat), expected in cases.items():
        value = map_value("sigma_row", family, stat)
        out = run_values(summary, spots, value)["values"]["sigma_row"]
        assert out[0] == expected, (family, stat)
        # frame 1 has no spot: NaN, but a count or a sum is 0; frame 2 failed: NaN
        assert (out[1] == 0.0) if stat in ("count", "sum") else math.isnan(out[1]), (family, stat)
        assert math.isnan(out[2])
        # the live map's per-frame path gives the same number
        table0 = {k: v[spots["frame"] == 0].to_numpy() for k, v in spots.items()}
        assert frame_value(value, summary.iloc[0].to_dict(), table0) == expected
    assert map_value("sigma_row", "good", "median").title == "median sigma_row of good spots (px)"
    assert map_value("sigma_row", "all", "count").title == "number of all spots (per frame)"


def test_any_numeric_per_frame_column_and_clear_refusals():
    summary, spots = _run()
    value = map_value("indexed_fraction", frame_columns=summary.columns)
    assert run_values(summary, None, value)["values"]["indexed_fraction"][:2] == [0.5, pytest.approx(np.nan,
                                                                                                  nan_ok=True)]
    assert run_values(summary, spots, map_value("good_fraction"))["values"]["good_fraction"][0] == 50.0
    with pytest.raises(SettingsError, match="'error' is an identifier or text"):
        map_value("error", frame_columns=summary.columns)
    with pytest.raises(SettingsError, match="unknown map value 'bogus'"):
        map_value("bogus")
    with pytest.raises(SettingsError, match="--spots goes with a spot column"):
        map_value("n_good", "good")
    with pytest.raises(SettingsError, match="unknown statistic 'mode'"):
        map_value("sim", "good", "mode")


def test_geometry_in_micrometres_and_the_extent_of_the_cells():
    start = {"shape": [2, 3], "laue_live": {"scan_shape": [2, 3], "x_range": [0.0, 0.004],
                                            "y_range": [0.0, 0.002], "units": "mm", "x_motor": "sx",
                                            "y_motor": "sy"}}
    g = map_geometry(start)
    assert g["unit"] == "µm" and g["x"].tolist() == [0.0, 2.0, 4.0] and g["y"].tolist() == [0.0, 2.0]
    assert map_extent(g) == (-1.0, 5.0, 3.0, -1.0)  # 2 µm cells centred on the stage positions
    one = map_geometry({"shape": [1, 1], "extents": [[3.0, 3.0], [5.0, 5.0]], "motors": ["y", "x"]})
    assert map_extent(one) == (4.5, 5.5, 3.5, 2.5)  # a single point: half a unit around it
