"""The simulated ophyd detector in a real RunEngine: inline frames, HDF5 files, ground truth."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import count

from laue_live import SettingsError
from laue_live.plans import LAUE_MD_KEY, raster_scan
from laue_live.plans._raster import map_index
from laue_live.sim import (
    SHAPES,
    Polycrystal,
    SimLaueDetector,
    SingleCrystal,
    make_sim_stage,
    read_ground_truth,
)


def _run(det, plan):
    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(plan)
    return docs


@pytest.fixture
def stage():
    return make_sim_stage()


@pytest.fixture(scope="module")
def small_sample():
    # 3 grains on a 4 x 4 um map: a 3 x 2 raster crosses grain boundaries
    return Polycrystal("Cu", n_grains=3, extent=((0, 4), (0, 4)), seed=1)


def test_inline_raster_scan(stage, small_sample, tmp_path):
    x, y = stage
    det = SimLaueDetector("laue", sample=small_sample, x_motor=x, y_motor=y, write_dir=tmp_path)
    docs = _run(det, raster_scan([det], x, 0, 4, 3, y, 0, 4, 2, snake=True))
    names = [n for n, _ in docs]
    assert names[0] == "start" and names[-1] == "stop" and names.count("event") == 6
    assert docs[-1][1]["exit_status"] == "success"
    start = docs[0][1]
    md = start[LAUE_MD_KEY]
    assert md["scan_shape"] == [2, 3] and md["snake"] is True and md["fast_axis"] == "x"
    assert md["x_motor"] == "stage_x" and md["y_motor"] == "stage_y"
    assert md["x_range"] == [0.0, 4.0] and md["y_range"] == [0.0, 4.0]
    assert md["image_keys"] == ["laue_image"] and md["material"] == "Cu"
    assert md["sample"]["kind"] == "polycrystal" and md["calibration"]["frame_shape"] == [2018, 2016]
    desc = next(d for n, d in docs if n == "descriptor")
    key = desc["data_keys"]["laue_image"]
    assert key["dtype_numpy"] == "<u2" and key["shape"] == [2018, 2016] and "external" not in key
    assert desc["configuration"]["laue"]["data"]["laue_mode"] == "inline"
    events = [d for n, d in docs if n == "event"]
    frames = [np.asarray(e["data"]["laue_image"]) for e in events]
    assert all(f.dtype == np.uint16 and f.shape == (2018, 2016) for f in frames)
    # snake: the second row runs x backwards, and map_index undoes it
    xs = [e["data"]["stage_x"] for e in events]
    assert xs == [0.0, 2.0, 4.0, 4.0, 2.0, 0.0]
    assert [map_index(i, 3, snake=True) for i in range(6)][3:] == [(1, 2), (1, 1), (1, 0)]
    # truth: side-car parquet named in the configuration, one table per frame
    truth = read_ground_truth(desc["configuration"]["laue"]["data"]["laue_truth_path"])
    assert sorted(truth["frame"].unique()) == list(range(6))
    assert [int((truth["frame"] == i).sum()) for i in range(6)] == [e["data"]["laue_n_spots"] for e in events]
    assert truth.loc[truth["frame"] == 3, "x"].iloc[0] == 4.0
    # the truth describes the pixels: bright unsaturated spots have their maximum next to the true position
    t0 = truth[
        (truth["frame"] == 0)
        & (truth["peak_height"] > 1000)
        & ~truth["saturated"]
        & (truth["shape"] == "gaussian")
    ]
    for _, s in t0.head(5).iterrows():
        r, c = int(round(s["row"])), int(round(s["col"]))
        win = frames[0][r - 2 : r + 3, c - 2 : c + 3]
        rr, cc = np.unravel_index(win.argmax(), win.shape)
        assert abs(rr - 2) <= 1 and abs(cc - 2) <= 1


def test_hdf5_stream_resource_scan(stage, tmp_path):
    x, y = stage
    det = SimLaueDetector(
        "laue", sample=SingleCrystal("Si", seed=0), x_motor=x, y_motor=y, mode="hdf5", write_dir=tmp_path
    )
    docs = _run(det, raster_scan([det], x, 0, 1, 2, y, 0, 1, 2))
    names = [n for n, _ in docs]
    assert (
        names.count("stream_resource") == 1 and names.count("stream_datum") == 4 and names.count("event") == 4
    )
    desc = next(d for n, d in docs if n == "descriptor")
    key = desc["data_keys"]["laue_image"]
    assert key["external"] == "STREAM:" and key["dtype_numpy"] == "<u2" and key["shape"] == [2018, 2016]
    events = [d for n, d in docs if n == "event"]
    assert all("laue_image" not in e["data"] for e in events)
    sr = next(d for n, d in docs if n == "stream_resource")
    assert sr["data_key"] == "laue_image" and sr["mimetype"] == "application/x-hdf5"
    assert sr["parameters"]["dataset"] == "/entry/data/data"
    sds = [d for n, d in docs if n == "stream_datum"]
    assert [d["indices"] for d in sds] == [{"start": i, "stop": i + 1} for i in range(4)]
    assert [d["seq_nums"] for d in sds] == [{"start": i + 1, "stop": i + 2} for i in range(4)]
    assert all(d["descriptor"] == desc["uid"] for d in sds)
    path = sr["uri"].removeprefix("file://localhost")
    with h5py.File(path, "r") as f:
        data = f["/entry/data/data"]
        assert data.shape == (4, 2018, 2016) and data.dtype == np.uint16
        assert json.loads(f["/entry"].attrs["calibration"])["dd"] == 79.612
        assert json.loads(f["/entry"].attrs["sample"])["material"] == "Si"
        frame2 = data[2]
    truth = read_ground_truth(path)
    assert sorted(truth["frame"].unique()) == [0, 1, 2, 3]
    assert read_ground_truth(path, frame=2)["frame"].eq(2).all()
    assert set(truth["shape"]) - {""} <= set(SHAPES)
    # the frame in the file is what the truth says: spots where the truth puts them
    t2 = truth[(truth["frame"] == 2) & (truth["peak_height"] > 2000)]
    vals = [frame2[int(round(r)), int(round(c))] for r, c in zip(t2["row"], t2["col"], strict=True)]
    assert np.median(vals) > 2000
    # same seed, same frames (inline vs file)
    det2 = SimLaueDetector("laue", sample=SingleCrystal("Si", seed=0), x_motor=x, y_motor=y)
    det2.stage()
    for _ in range(3):
        det2.trigger()
    assert np.array_equal(det2.image.get(), frame2)
    det2.unstage()


def test_hdf5_legacy_resource_datum(stage, tmp_path):
    x, y = stage
    det = SimLaueDetector(
        "laue",
        sample=SingleCrystal("Si", seed=0),
        x_motor=x,
        y_motor=y,
        mode="hdf5_legacy",
        write_dir=tmp_path,
    )
    docs = _run(det, count([det], num=2))
    names = [n for n, _ in docs]
    assert names.count("resource") == 1 and names.count("datum") == 2
    events = [d for n, d in docs if n == "event"]
    datums = [d for n, d in docs if n == "datum"]
    assert [e["data"]["laue_image"] for e in events] == [d["datum_id"] for d in datums]
    desc = next(d for n, d in docs if n == "descriptor")
    assert desc["data_keys"]["laue_image"]["external"] == "FILESTORE:"


def test_bad_detector_settings_and_failures(tmp_path):
    with pytest.raises(SettingsError, match="mode"):
        SimLaueDetector("laue", mode="tiff")
    with pytest.raises(SettingsError, match="write_dir"):
        SimLaueDetector("laue", mode="hdf5")
    det = SimLaueDetector("laue", mode="hdf5", write_dir=tmp_path)
    st = det.trigger()  # not staged: no file to write into -> a failed status, not a crash
    with pytest.raises(RuntimeError, match="stage"):
        st.wait(timeout=5)
    x, y = make_sim_stage()
    with pytest.raises(SettingsError, match="nx"):
        list(raster_scan([det], x, 0, 1, 0, y, 0, 1, 2))
    with pytest.raises(SettingsError, match="detector"):
        list(raster_scan([], x, 0, 1, 2, y, 0, 1, 2))
    with pytest.raises(SettingsError, match="finite"):
        list(raster_scan([det], x, 0, float("nan"), 2, y, 0, 1, 2))


@pytest.mark.slow
def test_frames_reach_tiled_as_uint16_inline_and_from_hdf5(tmp_path):
    """TiledWriter -> a real Tiled server: both delivery modes give the same uint16 frames."""
    from bluesky_tiled_plugins import TiledWriter
    from tiled.client import from_uri
    from tiled.server import SimpleTiledServer

    h5dir = tmp_path / "h5"
    with SimpleTiledServer(
        directory=str(tmp_path / "tiled"), api_key="k1", readable_storage=[str(h5dir)]
    ) as ts:
        client = from_uri(ts.uri)
        x, y = make_sim_stage()
        RE = RunEngine({})
        RE.subscribe(TiledWriter(client, batch_size=1))
        frames = {}
        for mode in ("hdf5", "inline"):
            det = SimLaueDetector(
                "laue", sample=SingleCrystal("Si", seed=0), x_motor=x, y_motor=y, mode=mode, write_dir=h5dir
            )
            (uid,) = RE(raster_scan([det], x, 0, 1, 2, y, 0, 1, 1))
            run = client[uid]
            arr = run["primary"]["laue_image"]
            assert arr.shape == (2, 2018, 2016) and arr.dtype == np.uint16
            assert run.metadata["start"][LAUE_MD_KEY]["scan_shape"] == [1, 2]
            frames[mode] = arr[1]
        assert np.array_equal(frames["hdf5"], frames["inline"])


def test_truth_readable_while_the_file_is_written(tmp_path):
    det = SimLaueDetector("laue", mode="hdf5", write_dir=tmp_path)
    det.stage()
    try:
        det.trigger().wait(timeout=30)
        det.trigger().wait(timeout=30)
        mid = read_ground_truth(det.file_path)  # SWMR: readable before unstage
        assert sorted(mid["frame"].unique()) == [0, 1]
        with h5py.File(det.file_path, "r", swmr=True) as f:
            assert f["/entry/data/data"].shape[0] == 2
    finally:
        det.unstage()
    assert len(read_ground_truth(det.file_path)) == len(mid)
