"""Live indexing in a real RunEngine scan: grains in a real Tiled, on real 0MQ and in the views.

The scan is the demo's simulated detector on a Si single crystal of known orientation and strain
(frames rendered, analysed with the exact fit); the raster plan records the material and the
calibration in the start document, which is what switches the indexing on.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from bluesky.plans import grid_scan
from ophyd.sim import motor1, motor2
from tiled.queries import Key

from laue_live.analysis import IndexerCache
from laue_live.callbacks import make_run_router
from laue_live.catalog import (
    get_grains,
    get_spot_table,
    indexing_summary,
    make_analysis_writer,
    orientation_map,
    quality_map,
)
from laue_live.geometry import BM32_CALIBRATION, rotation_matrix
from laue_live.indexing import Indexer, misorientation_deg, u_matrices
from laue_live.plans import raster_scan
from laue_live.sim import SimLaueDetector, SingleCrystal, make_sim_stage
from laue_live.stream import SpotPublisher, SpotSubscriber
from laue_live.views import LiveGrainMap

U_TRUE = rotation_matrix([1.0, 2.0, 3.0], 17.0)
STRAIN_TRUE = np.diag([1.0, -0.5, -0.5]) * 1e-3
NX, NY = 3, 2


def _analysis_run(catalog, raw_uid):
    res = catalog.analysis.search(Key("raw_uid") == raw_uid)
    assert len(res) == 1
    return res.values().first()


@pytest.mark.slow
def test_scan_indexed_live_into_tiled_0mq_and_views(RE, catalog, analyzer):
    from laue_live.describe import analyze_frame

    x, y = make_sim_stage()
    det = SimLaueDetector("laue", sample=SingleCrystal("Si", orientation=U_TRUE, strain=STRAIN_TRUE, seed=3),
                          x_motor=x, y_motor=y)
    images = {}
    RE.subscribe(lambda name, doc: images.__setitem__(doc["seq_num"] - 1, doc["data"][det.image_key]),
                 "event")
    writer = make_analysis_writer(catalog, max_delay_s=0.2)
    pub = SpotPublisher("127.0.0.1:0")
    sub = SpotSubscriber(pub.address, grains=True)
    assert pub.wait_for_subscribers(1, 30) and sub.wait_ready(30)
    views = {v: LiveGrainMap(v) for v in ("orientation", "misorientation", "strain_xx")}
    router = make_run_router([writer, pub, *views.values()], analyzer=analyzer)
    RE.subscribe(router)
    (uid,) = RE(raster_scan([det], x, 0, 4, NX, y, 0, 2, NY))
    assert router.wait(300), "analysis and indexing did not finish"
    writer.close()
    received = [sub.next_grains(30) for _ in range(NX * NY)]
    sub.close()
    pub.close()

    run = _analysis_run(catalog, uid)
    start, stop = run.metadata["start"], run.metadata["stop"]
    assert start["indexing"]["enabled"] and start["indexing"]["material"] == ["Si"]
    assert stop["frames_indexed"] == NX * NY and stop["frames_not_indexed"] == 0 and stop["grains"] == NX * NY
    summary = indexing_summary(run)
    assert list(summary["frame"]) == list(range(NX * NY)) and set(summary["status"]) == {"indexed"}
    grains = get_grains(run)
    assert list(grains["frame"]) == list(range(NX * NY)) and np.isfinite(grains[["x", "y"]]).all().all()

    # orientation and strain within tolerance of the truth (rendered frames, exact fit)
    indexer = Indexer("Si", BM32_CALIBRATION)
    for u in u_matrices(grains):
        assert misorientation_deg(u, U_TRUE, indexer.rotations) < 0.03  # measured 0.003-0.019 deg
    strains = grains[["strain_xx", "strain_yy", "strain_zz"]].to_numpy()
    assert np.abs(strains - np.diag(STRAIN_TRUE)).max() < 4.5e-4  # measured 2.8e-4

    # the rows in Tiled are what the indexer gives for the frame's spot table
    spots = get_spot_table(run, indexed=True)
    for frame, image in images.items():
        expected = indexer.index(analyze_frame(image, "fit"))
        (g,) = expected.grains
        row = grains[grains["frame"] == frame].iloc[0]
        assert np.allclose(u_matrices(grains[grains["frame"] == frame])[0], g.U, atol=1e-6)
        assert row["n_matched"] == g.n_matched
        assert row["deviation_px"] == pytest.approx(g.deviation_px, abs=1e-6)
        mine = spots[spots["frame"] == frame].set_index("spot")
        theirs = expected.spots.set_index("spot")
        assert (mine["grain"] >= 0).sum() == (theirs["grain"] >= 0).sum()
        for c in ("grain", "h", "k", "l"):
            assert np.array_equal(mine[c].to_numpy(), theirs.loc[mine.index, c].to_numpy()), (frame, c)

    # the same grains on 0MQ, one laue.grains message per frame, in order
    assert [m.frame for m in received] == list(range(NX * NY))
    for m in received:
        assert m.summary["status"] == "indexed" and m.run["raw_uid"] == uid
        mine = grains[grains["frame"] == m.frame]
        assert np.allclose(u_matrices(m.grains), u_matrices(mine))
        assert len(m.spots) == int((spots[spots["frame"] == m.frame]["grain"] >= 0).sum())

    # live views and catalog maps agree
    mis = quality_map(run, "misorientation", catalog=catalog)
    assert mis.shape == (NY, NX) and np.isfinite(mis).all() and mis.max() < 0.03
    assert np.allclose(np.nan_to_num(views["misorientation"].data), mis, atol=1e-9)
    rgb, sectors = orientation_map(run, "z", catalog=catalog)
    assert np.isfinite(rgb).all() and list(sectors) == ["Si"]
    assert np.allclose(views["orientation"].data, rgb, atol=1e-9)
    assert views["strain_xx"].n_updates == NX * NY
    assert np.allclose(views["strain_xx"].data, quality_map(run, "strain_xx", catalog=catalog))


class _GatedCache(IndexerCache):
    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def get(self, resolved):
        self.entered.set()
        assert self.gate.wait(120), "gate never opened"
        return super().get(resolved)


def test_held_indexing_never_holds_the_scan_or_the_spots(RE, catalog, inline_det, analyzer):
    """The indexing held on purpose: the scan ends and every spot table is in Tiled first; released,
    every frame gets its indexing row (these small synthetic frames hold no Si grain: no_grain)."""
    cache = _GatedCache()
    writer = make_analysis_writer(catalog, max_delay_s=0.2)
    summaries, all_analysed = [], threading.Event()

    def count_summaries(name, doc):  # the frames stream's events: one per analysed frame
        if name == "descriptor" and doc["name"] == "frames":
            summaries.append(doc["uid"])
        elif name == "event" and doc["descriptor"] in summaries[:1]:
            summaries.append(doc["seq_num"])
            if len(summaries) == 7:
                all_analysed.set()

    router = make_run_router([writer, count_summaries], analyzer=analyzer, indexer_cache=cache)
    RE.subscribe(router)
    md = {"material": "Si", "calibration": BM32_CALIBRATION.to_dict()}
    (uid,) = RE(grid_scan([inline_det], motor1, 0, 1, 3, motor2, 0, 2, 2), **md)
    assert cache.entered.wait(60)
    cb = router.callbacks[-1]
    assert cb.worker.indexing is not None
    # all six frames analysed and written while the indexing has not started
    assert all_analysed.wait(120) and writer.flush(60)
    run = _analysis_run(catalog, uid)
    assert sorted(run["frames"].base["internal"].read()["frame"]) == list(range(6))
    assert len(indexing_summary(run)) == 0
    cache.gate.set()
    assert router.wait(120)
    writer.close()
    summary = indexing_summary(_analysis_run(catalog, uid))
    assert list(summary["frame"]) == list(range(6))
    assert set(summary["status"]) == {"no_grain"} and (summary["reason"] != "").all()
    assert cb.stats()["indexing"]["not_indexed"] == 0
