"""``laue-live import-frames``: frames recorded without Bluesky become a raw run the whole stack reads."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import tifffile

from laue_live import SettingsError
from laue_live.cli import app
from laue_live.testing import n_spots, synthetic_frame


def test_folder_of_tiffs_becomes_a_raw_run_that_reprocess_and_maps_read(cli, cli_env, tiled_client, tmp_path):
    from laue_live.catalog import quality_map, reprocess_run

    folder = tmp_path / "scan"
    folder.mkdir()
    frames = [synthetic_frame(i) for i in range(6)]
    for i, f in enumerate(frames):
        tifffile.imwrite(folder / f"frame_{i:04d}.tif", f)
    r = cli.invoke(app, ["import-frames", str(folder), "--grid", "3,2", "--step", "0.5,2", "--sample", "demo",
                         "--material", "Si", "--detector", "sCMOS"], env=cli_env)
    assert r.exit_code == 0, r.output
    uid = r.output.split("raw run ")[1].split()[0]
    run = tiled_client.raw[uid]
    start = run.metadata["start"]
    assert start["plan_name"] == "import_frames" and start["sample"] == "demo"
    assert start["laue_live"]["scan_shape"] == [2, 3] and start["laue_live"]["detector"] == "sCMOS"
    assert start["shape"] == [2, 3] and run.metadata["stop"]["exit_status"] == "success"
    img = run["primary"]["laue_image"]
    assert img.shape == (6, *frames[0].shape) and img.dtype == np.uint16  # uint16 kept
    np.testing.assert_array_equal(np.asarray(img[4]), frames[4])
    table = run["primary"].base["internal"].read()
    np.testing.assert_allclose(table["x"], [0, 0.5, 1.0] * 2)
    np.testing.assert_allclose(table["y"], [0, 0, 0, 2, 2, 2])
    # the whole stack works on it: reprocess, quality map
    res = reprocess_run(tiled_client, uid, method="fit", progress=False)
    assert res.stop["frames_analysed"] == 6 and res.stop["spots"] == sum(n_spots(i) for i in range(6))
    m = quality_map(tiled_client.analysis[res.analysis_uid], "n_spots", catalog=tiled_client)
    assert m.tolist() == [[2, 3, 4], [2, 3, 4]]


def test_hdf5_stack_with_positions_in_the_file_and_csv(cli, cli_env, tiled_client, tmp_path):
    h5 = tmp_path / "stack.h5"
    with h5py.File(h5, "w") as f:
        f["/entry/data/data"] = np.stack([synthetic_frame(i) for i in range(4)])
        f["/entry/measurement/sx"] = [1.0, 2.0, 3.0, 4.0]
        f["/entry/measurement/sy"] = [5.0, 5.0, 6.0, 6.0]
    r = cli.invoke(app, ["import-frames", f"{h5}::/entry/data/data", "--x-dataset", "/entry/measurement/sx",
                         "--y-dataset", "/entry/measurement/sy"], env=cli_env)
    assert r.exit_code == 0, r.output
    uid = r.output.split("raw run ")[1].split()[0]
    table = tiled_client.raw[uid]["primary"].base["internal"].read()
    assert table["x"].tolist() == [1, 2, 3, 4] and table["y"].tolist() == [5, 5, 6, 6]
    csv = tmp_path / "pos.csv"
    rows = {"file": [f"stack.h5[{i}]" for i in (3, 2, 1, 0)], "x": [9, 8, 7, 6], "y": [0, 0, 0, 0]}
    pd.DataFrame(rows).to_csv(csv, index=False)
    r = cli.invoke(app, ["import-frames", str(h5), "--positions", str(csv)], env=cli_env)
    assert r.exit_code == 0, r.output
    uid = r.output.split("raw run ")[1].split()[0]
    assert tiled_client.raw[uid]["primary"].base["internal"].read()["x"].tolist() == [6, 7, 8, 9]


def test_bad_inputs_one_line_and_a_truncated_frame_ends_the_run_cleanly(cli, cli_env, tiled_client, tmp_path):
    from laue_live.catalog import scan_positions
    from laue_live.io import frame_sources

    folder = tmp_path / "scan"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"f{i}.tif", synthetic_frame(i))
    r = cli.invoke(app, ["import-frames", str(folder), "--grid", "2,2"], env=cli_env)
    assert r.exit_code == 1 and "grid 2 x 2 = 4 points, but there are 3 frames" in r.output
    csv = tmp_path / "p.csv"
    pd.DataFrame({"x": [1, 2], "y": [1, 2]}).to_csv(csv, index=False)
    with pytest.raises(SettingsError, match="2 rows for 3 frames"):
        scan_positions(frame_sources(folder), csv=csv)
    r = cli.invoke(app, ["import-frames", str(tmp_path / "nothing")], env=cli_env)
    assert r.exit_code == 1 and "no such frame file or folder" in r.output
    # the third frame is truncated: the two before it are kept in a run stopped with the reason
    data = (folder / "f2.tif").read_bytes()
    (folder / "f2.tif").write_bytes(data[: len(data) // 2])
    before = set(tiled_client.raw)
    r = cli.invoke(app, ["import-frames", str(folder)], env=cli_env)
    assert r.exit_code == 1 and "truncated or corrupt" in r.output and "Traceback" not in r.output
    (new,) = set(tiled_client.raw) - before
    run = tiled_client.raw[new]
    assert run.metadata["stop"]["exit_status"] == "fail" and "f2.tif" in run.metadata["stop"]["reason"]
    assert run["primary"]["laue_image"].shape[0] == 2
