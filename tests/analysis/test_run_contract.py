"""The analysis-run contract (laue_live._run): one reading of the raw run's documents for every reader."""

from __future__ import annotations

import numpy as np
import pytest

from laue_live._run import (
    ANALYSIS_KIND,
    find_image_field,
    frame_index,
    imshow_extent,
    position_fields,
    scan_geometry,
)

# a start document as bluesky's grid_scan writes it (2 rows of 3 points, the fast axis snaked)
GRID_START = {"uid": "raw", "shape": [2, 3], "extents": [[0.0, 1.0], [0.0, 2.0]], "snaking": [False, True],
              "motors": ["sample_y", "sample_x"]}


def test_image_field_is_the_2d_data_key_preferring_image_names():
    keys = {"x": {"shape": []}, "det_stats": {"shape": [4, 4]}, "det_image": {"shape": [1, 128, 160]},
            "line": {"shape": [1, 500]}}
    assert find_image_field(keys) == "det_image"
    assert find_image_field({k: v for k, v in keys.items() if k != "det_image"}) == "det_stats"
    assert find_image_field(keys, "det_stats") == "det_stats"
    assert find_image_field(keys, "absent") is None
    assert find_image_field({"x": {"shape": []}, "line": {"shape": [1, 500]}}) is None


def test_position_fields_follow_the_scan_motors():
    keys = ["sample_y", "sample_y_setpoint", "sample_x_user_readback", "sample_x_setpoint", "det_image"]
    assert position_fields(GRID_START, keys) == ("sample_y", "sample_x_user_readback")
    # laue_live's raster plan names x and y itself; a motor with no key gives None
    start = {"motors": ["a", "b"], "laue_live": {"x_motor": "stage_x", "y_motor": "stage_y"}}
    assert position_fields(start, ["stage_x_pos", "stage_x_setpoint"]) == ("stage_x_pos", None)
    assert position_fields({}, keys) == (None, None)


def test_scan_geometry_from_grid_scan_the_raster_plan_and_nothing():
    geom = scan_geometry(GRID_START)
    assert (geom.shape, geom.ndim, geom.snaking) == ((2, 3), 2, (False, True))
    assert geom.motors == ["sample_y", "sample_x"] and geom.extents == [[0.0, 1.0], [0.0, 2.0]]
    nested = scan_geometry({"laue_live": {"scan_shape": [4, 5]}})
    assert (nested.shape, nested.ndim) == ((4, 5), 2)
    line = scan_geometry({"shape": [7], "snaking": [True]})
    assert (line.shape, line.ndim, line.snaking) == ((1, 7), 1, (False, True))
    for bad in ({}, {"shape": [0, 3]}, {"shape": [2.5, 3]}, {"shape": "2x3"}, {"shape": [1, 2, 3]}):
        assert scan_geometry(bad).shape is None, bad


@pytest.mark.parametrize("snake", [False, True])
def test_frame_index_places_frames_as_the_raster_plan_moves(snake):
    frames = np.arange(12)
    rows, cols = frame_index(frames, (3, 4), snake)
    odd = [3, 2, 1, 0] if snake else [0, 1, 2, 3]  # snake: odd rows run x backwards
    assert rows.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert cols.tolist() == [0, 1, 2, 3] + odd + [0, 1, 2, 3]
    assert [frame_index(f, (3, 4), snake) for f in range(12)] == list(zip(rows.tolist(), cols.tolist(),
                                                                         strict=True))
    assert frame_index(5, (3, 4), snake) == (1, 2 if snake else 1)


def test_imshow_extent_centres_cells_on_the_stage_positions():
    # 3 columns from 0 to 2 (step 1), 2 rows from 0 to 1 (step 1): half a step beyond each end
    assert imshow_extent([[0.0, 1.0], [0.0, 2.0]], (2, 3)) == (-0.5, 2.5, 1.5, -0.5)
    assert imshow_extent([[1.0, 0.0], [2.0, 0.0]], (2, 3)) == (2.5, -0.5, -0.5, 1.5)  # scanned backwards
    assert imshow_extent([[0.0, 0.0], [3.0, 3.0]], (1, 1)) == (2.5, 3.5, 0.5, -0.5)  # one point
    assert imshow_extent(None, (2, 3)) is None and imshow_extent([[0, 1]], (2, 3)) is None


def test_every_reader_takes_the_raster_from_the_same_place(tmp_path):
    from laue_live.views import LiveSpotMap

    view = LiveSpotMap("n_spots")
    view("start", {**GRID_START, "uid": "a", "kind": ANALYSIS_KIND, "raw_uid": "raw", "time": 0.0})
    assert view.shape == scan_geometry(GRID_START).shape and view.snaking is True
    assert view.extent == imshow_extent(GRID_START["extents"], (2, 3))
