"""Live views with the Agg backend: one map update per analysed frame, spots marked by quality."""

from __future__ import annotations

import threading

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from laue_live import SPOT_COLUMNS  # noqa: E402
from laue_live.views import FrameTicker, LiveSpotFrame, LiveSpotMap, frame_index  # noqa: E402

RAW = {"uid": "raw-0001", "shape": [3, 4], "snaking": [False, True], "scan_id": 42, "time": 0.0,
       "extents": [[0.0, 20.0], [0.0, 30.0]], "motors": ["stage_y", "stage_x"]}


def _table(frame: int, n: int, n_good: int):
    rng = np.random.default_rng(frame)
    t = {c.name: np.zeros(n, dtype=c.dtype) for c in SPOT_COLUMNS}
    t["frame"][:] = frame
    t["spot"] = np.arange(n, dtype="int32")
    t["row"] = rng.uniform(0, 100, n)
    t["col"] = rng.uniform(0, 120, n)
    t["sim"] = np.linspace(0.2, 0.9, n).astype("float32")
    t["good"][:n_good] = True
    import pandas as pd

    return pd.DataFrame(t)


def _analysis(sinks, n_frames=12, fail=(5,)):
    from laue_live.analysis import AnalysisRunComposer

    composer = AnalysisRunComposer(sinks, RAW, {"method": "fit", "model": {"name": "exact-fit"}})
    expected = {}
    for i in range(n_frames):
        if i in fail:
            composer.frame(i, None, error="synthetic failure")
            expected[i] = np.nan
        else:
            n, good = 3 + i, i % 4
            composer.frame(i, _table(i, n, good), x=float(i), y=0.0)
            expected[i] = good
    composer.stop("success")
    return composer, expected


def test_frame_index_follows_grid_scan_snaking():
    assert [frame_index(i, (2, 3)) for i in range(6)] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    snaked = [(0, 0), (0, 1), (0, 2), (1, 2), (1, 1), (1, 0)]
    assert [frame_index(i, (2, 3), True) for i in range(6)] == snaked


def test_live_map_gets_one_update_per_frame(tmp_path):
    view = LiveSpotMap("n_good")
    _, expected = _analysis([view])
    assert view.n_updates == 12
    assert view.shape == (3, 4) and view.snaking
    for frame, value in expected.items():
        cell = view.data[frame_index(frame, (3, 4), snaking=True)]
        assert (np.isnan(cell) and np.isnan(value)) or cell == value, frame
    assert view.n_draws >= 12  # documents came on the main thread: drawn at once
    assert view.ax.get_title() == "Good spots per frame: scan 42, fit analysis (11 of 12 frames)"
    # Cells centred on stage positions, in motor units, like LiveGrid: x 0..30 in 4, y 0..20 in 3.
    assert view._image.get_extent() == [-5.0, 35.0, 25.0, -5.0]
    assert (view.ax.get_xlabel(), view.ax.get_ylabel()) == ("stage_x (motor units)", "stage_y (motor units)")
    assert view._colorbar.ax.get_ylabel() == "good spots (per frame)"
    view.savefig(tmp_path / "map.png")
    assert (tmp_path / "map.png").stat().st_size > 1000


def test_live_map_of_a_spot_column_averages_good_spots():
    view = LiveSpotMap("sim", good_only=True)
    _analysis([view], n_frames=4, fail=())
    # frame 0 has no good spot -> NaN; frame 1 has one good spot: sim of its first row.
    assert np.isnan(view.data[0, 0])
    assert view.data[0, 1] == pytest.approx(0.2)
    assert view.n_updates == 4


def test_updates_from_a_worker_thread_are_drawn_on_flush():
    view = LiveSpotMap("mean_sim")
    worker = threading.Thread(target=_analysis, args=([view],))
    worker.start()
    worker.join(30)
    assert view.n_updates == 12 and view.n_draws == 0  # nothing drawn off the main thread
    view.flush()
    assert view.n_draws == 1 and np.isfinite(view.data).sum() == 11


def test_live_frame_marks_spots_by_quality(tmp_path):
    view = LiveSpotFrame()
    # The raw run's frame 2 arrives inline, then its analysis.
    desc = {"uid": "d-raw", "run_start": RAW["uid"], "name": "primary",
            "data_keys": {"laue_image": {"shape": [100, 120], "dtype": "array", "source": "sim"}}}
    view("start", RAW)
    view("descriptor", desc)
    image = np.random.default_rng(0).poisson(100, (100, 120)).astype("u2")
    view("event", {"descriptor": "d-raw", "seq_num": 3, "data": {"laue_image": image}})
    _analysis([view], n_frames=3, fail=())
    assert view.n_updates == 3
    latest = view.latest
    assert latest["frame"] == 2 and latest["image"] is image
    assert int(latest["table"]["good"].sum()) == 2 and len(latest["table"]["row"]) == 5
    title = view.ax.get_title()
    assert "frame 2: 2 good / 5 spots" in title
    legend = view.ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["good (2)", "bad (3)"] and legend.get_title().get_text().startswith("5 spots")
    view.savefig(tmp_path / "frame.png")


def test_ticker_warns_on_poor_frames():
    ticker = FrameTicker(min_good=3, min_mean_sim=0.3)
    run = {"uid": "a" * 8, "raw_uid": "r" * 8, "shape": [3, 4], "method": "fit"}
    first = ticker.lines(run, 0, _table(0, 10, 8), {"n_spots": 10, "n_good": 8, "mean_sim": 0.5}, now=0.0)
    assert first[0].startswith("== analysis run") and first[1].startswith("frame      0:")
    warn = ticker.lines(run, 212, _table(212, 10, 3), {"n_spots": 10, "n_good": 2, "mean_sim": 0.12}, now=1.0)
    assert warn == ["WARNING frame 212: 2 good spots, mean Sim 0.12"]
    failed = ticker.lines(run, 213, _table(0, 0, 0), {"failed": True, "error": "NaN in frame"}, now=2.0)
    assert "analysis failed: NaN in frame" in failed[0]
    assert ticker.warnings == 2
    assert ticker.rates(now=2.0)[0] == pytest.approx(1.0)


def test_live_frame_reads_external_hdf5_frames(tmp_path):
    """Frames that live in the detector's HDF5 file (StreamResource/StreamDatum) are shown too."""
    import h5py
    from bluesky import RunEngine

    from laue_live.analysis import AnalysisRunComposer
    from laue_live.plans import raster_scan
    from laue_live.sim import SimLaueDetector, make_sim_stage

    x, y = make_sim_stage()
    det = SimLaueDetector("laue", x_motor=x, y_motor=y, mode="hdf5", write_dir=tmp_path)
    view = LiveSpotFrame()
    RE = RunEngine({})
    starts = []
    RE.subscribe(lambda name, doc: starts.append(doc), "start")
    RE.subscribe(view)
    RE(raster_scan([det], x, 0, 1, 2, y, 0, 0, 1))
    composer = AnalysisRunComposer([view], starts[0], {"method": "fit", "model": {"name": "exact-fit"}})
    composer.frame(1, _table(1, 5, 2))
    composer.stop("success")
    with h5py.File(det.file_path, "r") as f:
        expected = f["/entry/data/data"][1]
    assert view.latest["frame"] == 1
    np.testing.assert_array_equal(view.latest["image"], expected)


def test_live_grain_maps_orientation_key_strain_and_units(tmp_path):
    from laue_live._run import IndexingRequest
    from laue_live.analysis import AnalysisRunComposer, resolve_indexing
    from laue_live.geometry import BM32_CALIBRATION, random_rotation
    from laue_live.indexing import GRAIN_MAP_VALUES, Indexer, ipf_colors, ipf_sector
    from laue_live.testing import grain_spot_table
    from laue_live.views import GRAIN_VIEW_VALUES, LiveGrainMap

    assert GRAIN_VIEW_VALUES == ("orientation", *GRAIN_MAP_VALUES)
    with pytest.raises(ValueError, match="unknown grain map value"):
        LiveGrainMap("nonsense")
    with pytest.raises(ValueError, match=r"value of the grains: map it with LiveGrainMap\('strain_xx'\)"):
        LiveSpotMap("strain_xx")
    rng = np.random.default_rng(3)
    u = [random_rotation(rng) for _ in range(2)]
    strain = np.diag([1.0, -0.5, -0.5]) * 1e-3
    tables = [grain_spot_table([("Si", u[i % 2], strain)], frame=i, rng=i) for i in range(3)]
    indexer = Indexer("Si", BM32_CALIBRATION)
    resolved = resolve_indexing(IndexingRequest("Si", BM32_CALIBRATION.to_dict()))
    raw = {**RAW, "laue_live": {"units": "um"}}
    views = {v: LiveGrainMap(v) for v in ("orientation", "misorientation", "strain_xx", "n_grains")}
    plain = LiveGrainMap("orientation")
    # a run that is not indexed leaves a grain map empty
    AnalysisRunComposer([plain], raw, {"method": "fit"}).frame(0, tables[0])
    assert plain.data is None and plain.n_updates == 0
    composer = AnalysisRunComposer(list(views.values()), raw, {"method": "fit"}, indexing=resolved.metadata())
    results = []
    for i, t in enumerate(tables):
        composer.frame(i, t)
        results.append(indexer.index(t))
        composer.indexed(i, results[-1])
    composer.indexed(3, None, status="not_indexed", reason="dropped")  # blank, not grey
    composer.stop("success")
    cells = [frame_index(i, (3, 4), snaking=True) for i in range(4)]
    sector = ipf_sector("Si")
    for i in range(3):
        assert np.allclose(views["orientation"].data[cells[i]], ipf_colors(results[i].grains[0].U, sector))
        assert views["strain_xx"].data[cells[i]] == pytest.approx(1e3 * results[i].grains[0].strain[0, 0])
    assert np.isnan(views["orientation"].data[cells[3]]).all() and np.isnan(views["n_grains"].data[cells[3]])
    mis = views["misorientation"].data
    assert mis[cells[0]] == 0 and mis[cells[2]] < 0.01 and mis[cells[1]] > 1  # frames 0, 2: the same grain
    assert views["strain_xx"]._colorbar.ax.get_ylabel() == "deviatoric strain xx (10⁻³)"
    assert views["strain_xx"].ax.get_xlabel() == "stage_x (µm)"
    lo, hi = views["strain_xx"]._image.get_clim()
    assert lo == -hi  # diverging scale centred on zero
    assert views["orientation"]._colorbar is None  # colours, with their key instead of a scale
    key = views["orientation"]._key_axes
    assert key is not None and {t.get_text() for t in key.texts} == {"$[001]$", "$[101]$", "$[111]$"}
    views["orientation"].savefig(tmp_path / "o.png", bbox_inches="tight")
    assert (tmp_path / "o.png").stat().st_size > 1000


def test_live_table_prints_a_row_per_frame_and_the_totals():
    import io

    from laue_live.views import LiveSpotTable

    out = io.StringIO()
    table = LiveSpotTable(min_good=2, file=out)
    _analysis([table], n_frames=6)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("analysis run ") and "of scan 42 (3 x 4 raster), fit analysis" in lines[0]
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("|  frame")]
    assert len(rows) == table.rows == 6
    assert rows[5].split("|")[1].strip() == "5" and "FAILED: synthetic failure" in rows[5]
    assert rows[1].endswith("<- few good spots")  # frame 1: one good spot, fewer than 2
    assert rows[3].split("|")[5].strip() == "3"  # frame 3: 3 good spots
    assert lines[-1].endswith(": 6 frames, 25 spots, 6 good, 1 failed")


def test_live_map_of_a_spot_statistic_over_one_family_in_micrometres():
    start = {**RAW, "laue_live": {"scan_shape": [3, 4], "x_range": [0.0, 0.03], "y_range": [0.0, 0.02],
                                  "units": "mm", "x_motor": "sx", "y_motor": "sy", "snake": True}}
    from laue_live.analysis import AnalysisRunComposer

    view = LiveSpotMap("sim", spots="bad", statistic="max")
    composer = AnalysisRunComposer([view], start, {"method": "fit", "model": {"name": "exact-fit"}})
    for i in range(3):
        composer.frame(i, _table(i, 3 + i, i % 4), x=float(i), y=0.0)
    composer.stop("success")
    # frame i: sim = linspace(0.2, 0.9, 3 + i), the first i % 4 rows good: the bad ones end at 0.9
    assert view.data[0, :3].tolist() == pytest.approx([0.9, 0.9, 0.9])
    assert view._colorbar.ax.get_ylabel() == "max sim of bad spots"
    assert (view.ax.get_xlabel(), view.ax.get_ylabel()) == ("sx (µm)", "sy (µm)")
    assert view._image.get_extent() == pytest.approx([-5.0, 35.0, 25.0, -5.0])  # 10 µm steps
    with pytest.raises(ValueError, match="unknown spot family"):
        LiveSpotMap("sim", spots="weird")


def test_ticker_rates_come_from_the_analysis_times_not_the_arrival():
    ticker = FrameTicker(window=100.0)
    run = {"uid": "b" * 8, "raw_uid": "r" * 8, "method": "fit"}
    # ten tables analysed 0.5 s apart reach the terminal together (a late subscriber, a stalled link)
    for i in range(10):
        lines = ticker.lines(run, i, _table(i, 10, 8), {"n_spots": 10, "n_good": 8, "mean_sim": 0.8},
                             now=1000.0, analysed_at=50.0 + 0.5 * i)
    assert lines[-1].endswith("[   2.0 frames/s,       20 spots/s analysed]")
