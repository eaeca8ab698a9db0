"""What the indexer takes: empty, partial and bad tables, good/bad spots, settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from laue_live import SettingsError, SpotTableError
from laue_live.geometry import BM32_CALIBRATION, random_rotation
from laue_live.indexing import GRAIN_COLUMNS, Indexer, IndexerSettings
from laue_live.sim import simulated_spot_table


@pytest.fixture(scope="module")
def ix():
    return Indexer("Si", BM32_CALIBRATION)


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(21)
    return simulated_spot_table(
        [("Si", random_rotation(rng), None)], BM32_CALIBRATION, rng, position_noise_px=0.05
    )


def test_empty_and_tiny_tables(ix, table):
    for t in (table.iloc[:0], table.iloc[:5]):
        res = ix.index(t)
        assert res.grains == [] and len(res.spots) == len(t)
        assert list(res.grains_table().columns) == [c[0] for c in GRAIN_COLUMNS]


def test_nan_rows_are_ignored_and_kept(ix, table):
    t = table.copy()
    t.loc[t.index[:3], "row"] = np.nan
    res = ix.index(t)
    assert len(res.grains) == 1 and len(res.spots) == len(t)
    assert (res.spots.loc[t.index[:3], "grain"] == -1).all()


def test_bad_tables(ix):
    with pytest.raises(SpotTableError):
        ix.index(pd.DataFrame({"x": [1.0]}))
    with pytest.raises(SpotTableError):
        ix.index(np.zeros((3, 2)))


def test_bad_settings():
    with pytest.raises(SettingsError):
        IndexerSettings(min_matched=2)
    with pytest.raises(SettingsError):
        IndexerSettings(match_radii_px=(1.0, -1.0, 1.0))
    with pytest.raises(SettingsError):
        Indexer("Si", BM32_CALIBRATION, energy_range=(20, 5))
    with pytest.raises(SettingsError):
        Indexer("Si", [1, 2, 3, 4, 5])


def test_bad_spots_are_labelled_but_not_refined(ix, table):
    t = table.copy()
    t["good"] = True
    bad = t.sort_values("intensity").index[-5:]  # the brightest five, as saturated spots would be
    t.loc[bad, "good"] = False
    res = ix.index(t)
    g = res.grains[0]
    assert not set(bad) & set(g.spots.index)
    assert (res.spots.loc[bad, "grain"] == 0).all()  # labelled from the refined grain
    assert (res.spots.loc[bad, ["h", "k", "l"]].abs().sum(axis=1) > 0).all()
    # bad spots still count as observed: the same fractions as with every spot good
    all_good = ix.index(table).grains[0]
    assert g.matched_fraction == pytest.approx(all_good.matched_fraction)
    assert g.intensity_fraction == pytest.approx(all_good.intensity_fraction)
