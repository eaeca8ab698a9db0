"""Queries: runs by metadata and date, spot tables by frame range and quality, quality maps."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from laue_live import SettingsError
from laue_live.catalog import (
    find_runs,
    frame_summary,
    get_spot_table,
    list_analysis_runs,
    plot_quality_map,
    quality_map,
    raster_geometry,
)


@pytest.fixture(scope="module")
def tiled_client(tiled_server):
    """One catalog for this module's read-only tests (overrides the per-test one)."""
    from laue_live.catalog import CatalogSettings, open_catalog

    return open_catalog(CatalogSettings(uri=tiled_server.uri, api_key=tiled_server.api_key,
                                        raw_path="queries/raw", analysis_path="queries/analysis"))


@pytest.fixture(scope="module")
def three_runs(tiled_client, write_analysis_run):
    a, _ = write_analysis_run(tiled_client, 6, 5, raw_uid="raw-1", sample="Si", material="Si", seed=1)
    b, _ = write_analysis_run(tiled_client, 4, 3, raw_uid="raw-2", sample="GaN-nw", material="GaN", seed=2)
    c, docs = write_analysis_run(tiled_client, 6, [0, 2, 4, 6, 8, 10], raw_uid="raw-1", sample="Si",
                                 material="Si", seed=3, shape=[2, 3], extents=[[0.0, 1.0], [0.0, 2.0]],
                                 snaking=[False, True], motors=["sample_y", "sample_x"])
    return a, b, c, docs


def test_find_runs_by_metadata_and_date(tiled_client, three_runs):
    a, b, c, _ = three_runs
    assert set(list_analysis_runs(tiled_client)["uid"]) == {a, b, c}
    assert set(find_runs(tiled_client, sample="Si")["uid"]) == {a, c}
    assert set(find_runs(tiled_client, material="GaN")["uid"]) == {b}
    assert set(find_runs(tiled_client, raw_uid="raw-1", sample="Si")["uid"]) == {a, c}
    today = dt.date.today()
    assert len(find_runs(tiled_client, since=today - dt.timedelta(days=1))) == 3
    assert len(find_runs(tiled_client, until=today - dt.timedelta(days=1))) == 0
    assert len(find_runs(tiled_client, since=(today + dt.timedelta(days=2)).isoformat())) == 0
    newest = list_analysis_runs(tiled_client, limit=1)
    assert newest["uid"].tolist() == [c]
    with pytest.raises(SettingsError, match="ISO"):
        find_runs(tiled_client, since="last tuesday")


def test_spot_table_frames_good_only_columns(tiled_client, three_runs):
    _, _, c, docs = three_runs
    run = tiled_client.analysis[c]
    full = get_spot_table(run)
    assert len(full) == 30
    part = get_spot_table(run, frames=(2, 4))
    assert sorted(part["frame"].unique()) == [2, 3, 4] and len(part) == 4 + 6 + 8
    assert len(get_spot_table(run, frames=5)) == 10
    good = get_spot_table(run, good_only=True)
    assert good["good"].all() and len(good) == int(full["good"].sum()) and 0 < len(good) < 30
    few = get_spot_table(c, columns=["sim", "row"], catalog=tiled_client)
    assert list(few.columns) == ["frame", "sim", "row"] and len(few) == 30
    with pytest.raises(KeyError, match="unknown"):
        get_spot_table(run, columns=["nope"])


def test_frame_summary_and_quality_map(tiled_client, three_runs, tmp_path):
    _, _, c, _ = three_runs
    run = tiled_client.analysis[c]
    summary = frame_summary(run)
    assert summary["frame"].tolist() == list(range(6))
    assert summary["n_spots"].tolist() == [0, 2, 4, 6, 8, 10]
    geom = raster_geometry(run)
    assert geom["shape"] == (2, 3) and geom["snaking"] == (False, True)
    grid = quality_map(run, "n_spots")
    # Frames 0..2 fill row 0 left to right; the snaked row 1 runs right to left (frames 3, 4, 5).
    np.testing.assert_array_equal(grid, [[0, 2, 4], [10, 8, 6]])
    frac = quality_map(run, "good_fraction")
    assert np.isnan(frac[0, 0]) and 0 < np.nanmax(frac) <= 100  # per cent, as on the dashboard
    png = plot_quality_map(run, tmp_path / "map.png", "n_spots")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000


def test_quality_map_uses_the_raw_runs_raster(tiled_server, write_raw_run, write_analysis_run):
    from laue_live.catalog import CatalogSettings, open_catalog

    tiled_client = open_catalog(CatalogSettings(uri=tiled_server.uri, api_key=tiled_server.api_key,
                                                raw_path="queries2/raw", analysis_path="queries2/analysis"))
    raw_uid = write_raw_run(tiled_client.raw, rows=2, cols=3, sample="Si")
    raw_start = tiled_client.raw[raw_uid].metadata["start"]
    assert raw_start["shape"] == [2, 3]  # recorded by bluesky's grid_scan
    uid, _ = write_analysis_run(tiled_client, 5, 2, raw_uid=raw_uid)  # no shape of its own
    run = tiled_client.analysis[uid]
    with pytest.raises(KeyError):
        quality_map(run)
    grid = quality_map(run, "n_spots", catalog=tiled_client)
    assert grid.shape == (2, 3)
    assert np.isnan(grid[1, 2]) and np.nansum(grid) == 10  # frame 5 was never analysed
