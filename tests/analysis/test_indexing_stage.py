"""The live indexing stage: every frame gets exactly one indexing row, as the indexer gives it, never lost.

Spot tables come from the forward model (laue_live.testing.grain_spot_table: known orientation and
strain, 0.05 px noise, spurious spots), so no frame is rendered; the slow stage is a gate on the
indexers' construction, held and released by the test (bounded waits, no sleeps).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from laue_live._errors import SettingsError
from laue_live._run import IndexingRequest, indexing_request
from laue_live.analysis import (
    AnalysisRunComposer,
    AnalysisWorker,
    FrameTask,
    IndexerCache,
    IndexingConfig,
    IndexingSetup,
    IndexingStage,
    resolve_indexing,
)
from laue_live.geometry import BM32_CALIBRATION, random_rotation
from laue_live.indexing import Indexer, misorientation_deg
from laue_live.testing import grain_spot_table

RNG = np.random.default_rng(20)
U_TRUE = random_rotation(RNG)
STRAIN_TRUE = np.array([[1.0, 0.3, 0.0], [0.3, -0.4, 0.2], [0.0, 0.2, -0.6]]) * 1e-3  # deviatoric
START = {"uid": "raw-index-1", "time": 0.0, "material": "Si", "calibration": BM32_CALIBRATION.to_dict(),
         "shape": [2, 3]}


def _by_index(tables):
    """An analyser of 2-D "frames" ``[[i]]`` that returns the prepared spot table ``i``."""
    return lambda frames: [tables[int(np.asarray(f).ravel()[0])] for f in frames]


def _tables(n, grains=None):
    grains = grains or [("Si", U_TRUE, STRAIN_TRUE)]
    return [grain_spot_table(grains, frame=i, rng=i) for i in range(n)]


def _names(docs):
    return {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}


def _rows(docs, stream):
    names = _names(docs)
    out = []
    for n, d in docs:
        if n in ("event", "event_page") and names.get(d["descriptor"]) == stream:
            data = d["data"]
            if n == "event":
                out.append(dict(data))
            else:
                out += [{k: v[i] for k, v in data.items()} for i in range(len(d["seq_num"]))]
    return out


@pytest.fixture(scope="module")
def resolved():
    return resolve_indexing(IndexingRequest("Si", BM32_CALIBRATION.to_dict()))


@pytest.fixture(scope="module")
def cache(resolved):
    cache = IndexerCache()
    cache.get(resolved)  # built once for the module (~0.3 s)
    return cache


class _GatedCache(IndexerCache):
    """Indexers handed out only once the test opens the gate: a deterministically slow stage."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.entered = threading.Event()
        self.gate = threading.Event()

    def get(self, resolved):
        self.entered.set()
        assert self.gate.wait(60), "gate never opened"
        return self.inner.get(resolved)


def test_every_frame_indexed_as_the_indexer_does(resolved, cache):
    docs = []
    composer = AnalysisRunComposer([lambda n, d: docs.append((n, d))], START, {"method": "fit"},
                                   indexing=resolved.metadata())
    composer.start()
    stage = IndexingStage(composer, resolved, cache=cache)
    tables = _tables(4) + _tables(1, [("Si", U_TRUE, None), ("Si", random_rotation(RNG), None)])
    tables[-1]["frame"] = 4
    for i, t in enumerate(tables):
        assert stage.submit(i, t)
    assert stage.close(60)
    stop = composer.stop("success")
    rows = _rows(docs, "indexing")
    assert [r["frame"] for r in rows] == list(range(5))
    assert [r["status"] for r in rows] == ["indexed"] * 5
    assert stop["frames_indexed"] == 5 and stop["frames_not_indexed"] == 0
    grains = _rows(docs, "grains")
    assert [g["frame"] for g in grains].count(4) == 2  # the two-grain frame: both found
    assert stop["grains"] == len(grains) == 6
    indexer = Indexer("Si", BM32_CALIBRATION)
    for i, t in enumerate(tables):
        expected = indexer.index(t)
        mine = [g for g in grains if g["frame"] == i]
        assert len(mine) == len(expected.grains)
        for g, e in zip(mine, expected.grains, strict=True):
            u = np.array([g[f"u{a}{b}"] for a in (1, 2, 3) for b in (1, 2, 3)]).reshape(3, 3)
            assert np.allclose(u, e.U, atol=1e-12) and g["n_matched"] == e.n_matched
    # orientation and strain of the single-grain frames against the truth
    for g in grains[:4]:
        u = np.array([g[f"u{a}{b}"] for a in (1, 2, 3) for b in (1, 2, 3)]).reshape(3, 3)
        assert misorientation_deg(u, U_TRUE, indexer.rotations) < 0.01  # measured 0.002-0.004 deg
    # the Miller indices on the spots, keyed by (frame, spot), agree with the truth
    # (the same reflections up to the crystal's symmetry: the same scattering directions q = U B hkl)
    labels = _rows(docs, "indexed_spots")
    t0 = tables[0].set_index("spot")
    lab0 = [r for r in labels if r["frame"] == 0]
    assert len(lab0) >= 0.9 * int((t0["true_grain"] == 0).sum())
    g0 = grains[0]
    u0 = np.array([g0[f"u{a}{b}"] for a in (1, 2, 3) for b in (1, 2, 3)]).reshape(3, 3)
    for r in lab0:
        truth = t0.loc[int(r["spot"]), ["true_h", "true_k", "true_l"]].to_numpy(float)
        q_true = U_TRUE @ indexer.B @ truth
        q_ours = u0 @ indexer.B @ np.array([r["h"], r["k"], r["l"]], float)
        assert q_true @ q_ours / np.linalg.norm(q_true) / np.linalg.norm(q_ours) > 0.9999


@pytest.mark.parametrize("policy", ["spill", "drop_newest"])
def test_slow_indexing_never_holds_the_spots_and_loses_nothing(policy, resolved, cache):
    """The analysis worker hands frames to a held indexing stage: all spot rows go out first, every frame
    then gets its indexing row (spill: indexed; drop_newest: recorded not_indexed with the reason)."""
    docs = []
    six_frames = threading.Event()

    def sink(name, doc):
        docs.append((name, doc))
        if len(_rows(docs, "frames")) == 6:
            six_frames.set()

    gated = _GatedCache(cache)
    composer = AnalysisRunComposer([sink], START, {"method": "fit"})
    config = IndexingConfig(policy=policy, queue_size=2, block_timeout=0.01)
    setup = IndexingSetup.for_run(START, config, gated)
    tables = _tables(6)
    worker = AnalysisWorker(composer, _by_index(tables), batch_size=1, indexing=setup)
    for i in range(len(tables)):
        worker.submit(FrameTask(i, source=np.array([[i]])))
    assert gated.entered.wait(60)
    # while the indexing is held, the spot rows and summaries of every frame are emitted
    assert six_frames.wait(60)
    assert len(_rows(docs, "indexing")) == 0 and len(_rows(docs, "spots")) == sum(map(len, tables))
    worker.close("success")
    gated.gate.set()
    assert worker.join(120)
    rows = _rows(docs, "indexing")
    assert sorted(r["frame"] for r in rows) == list(range(6))  # exactly one row per frame
    stop = worker.stop_doc
    stats = worker.indexing.stats
    if policy == "spill":
        assert all(r["status"] == "indexed" for r in rows) and stats.spilled >= 1
        assert stop["frames_indexed"] == 6
    else:
        dropped = [r for r in rows if r["status"] == "not_indexed"]
        assert dropped and all(r["reason"].startswith("dropped") for r in dropped)
        assert stats.dropped == len(dropped) == stop["frames_not_indexed"]
        assert stop["frames_indexed"] + stop["frames_not_indexed"] == 6


def test_run_closed_before_the_indexing_caught_up(resolved, cache):
    docs = []
    gated = _GatedCache(cache)
    composer = AnalysisRunComposer([lambda n, d: docs.append((n, d))], START, {"method": "fit"},
                                   indexing=resolved.metadata())
    composer.start()
    stage = IndexingStage(composer, resolved, cache=gated, close_timeout=0.05)
    for i, t in enumerate(_tables(3)):
        stage.submit(i, t)
    assert gated.entered.wait(60)
    closer = threading.Thread(target=stage.close)
    closer.start()
    assert stage._abandon.wait(60)  # close() waited its 0.05 s: what is left is given up
    gated.gate.set()
    closer.join(60)
    rows = _rows(docs, "indexing")
    assert sorted(r["frame"] for r in rows) == [0, 1, 2]
    assert all(r["status"] == "not_indexed" and "closed" in r["reason"] for r in rows)


def test_wrong_material_gives_no_grain_rows_not_wrong_grains(cache):
    docs = []
    wrong = resolve_indexing(IndexingRequest("GaN", BM32_CALIBRATION.to_dict()))
    composer = AnalysisRunComposer([lambda n, d: docs.append((n, d))], START, {"method": "fit"},
                                   indexing=wrong.metadata())
    composer.start()
    stage = IndexingStage(composer, wrong, cache=cache)
    for i, t in enumerate(_tables(2)):  # Si spots
        stage.submit(i, t)
    stage.close(120)
    rows = _rows(docs, "indexing")
    assert [r["status"] for r in rows] == ["no_grain", "no_grain"]
    assert _rows(docs, "grains") == [] and _rows(docs, "indexed_spots") == []
    assert all(r["reason"] for r in rows)  # why the best candidate failed
    assert any(r["best_n_matched"] > 0 for r in rows)


def test_failed_frames_and_bad_setups_are_recorded(cache):
    docs = []
    # an unknown material: the run goes on without indexing, the start document says why
    setup = IndexingSetup.for_run({**START, "material": "Unobtainium"})
    composer = AnalysisRunComposer([lambda n, d: docs.append((n, d))], START, {"method": "fit"})
    worker = AnalysisWorker(composer, _by_index(_tables(1)), indexing=setup)
    worker.submit(FrameTask(0, source=np.array([[0]])))
    worker.close("success")
    assert worker.join(60)
    start = docs[0][1]
    assert start["indexing"]["enabled"] is False and "Unobtainium" in start["indexing"]["reason"]
    assert "indexing" not in set(_names(docs).values()) and len(_rows(docs, "frames")) == 1
    # a frame whose spot analysis failed: its indexing row says so
    docs.clear()
    composer = AnalysisRunComposer([lambda n, d: docs.append((n, d))], START, {"method": "fit"})
    setup = IndexingSetup.for_run(START, cache=cache)
    worker = AnalysisWorker(composer, _by_index(_tables(1)), indexing=setup)
    worker.submit(FrameTask(0, source=np.array([[0]])))
    worker.submit(FrameTask(1, error="cannot read frame"))
    worker.close("success")
    assert worker.join(60)
    rows = {r["frame"]: r for r in _rows(docs, "indexing")}
    assert rows[0]["status"] == "indexed"
    assert rows[1]["status"] == "failed" and "cannot read frame" in rows[1]["reason"]


def test_indexing_request_precedence_and_bad_values():
    settings = {"material": "Ge", "calibration": "beamline.det"}
    req, _ = indexing_request({"material": "Si"}, settings)
    assert (req.material, req.calibration) == ("Si", "beamline.det")
    assert req.sources == {"material": "start", "calibration": "settings"}
    req, _ = indexing_request({"material": "Si"}, settings, prefer="settings")
    assert req.material == "Ge"
    # the raster plan records material and calibration in its laue_live entry
    req, _ = indexing_request({"laue_live": {"material": "Cu", "calibration": {"dd": 70}}})
    assert req.material == "Cu" and req.calibration == {"dd": 70}
    assert indexing_request({"material": "Si"})[0] is None  # no calibration anywhere
    assert indexing_request({**START, "indexing": False})[0] is None
    assert indexing_request(START, {"enabled": False})[0] is None
    req, _ = indexing_request({**START, "indexing": {"material": "Ge", "max_grains": 2}})
    assert req.material == "Ge" and req.options == {"max_grains": 2}
    for bad in ({"material": "Si", "calibration": [1, 2]},
                {"material": "Xx", "calibration": START["calibration"]},
                {"material": "Si", "calibration": {"dd": 70}},
                {**START, "indexing": {"no_such_option": 1}}):
        request, _ = indexing_request(bad)
        with pytest.raises(SettingsError):
            resolve_indexing(request)
    with pytest.raises(SettingsError):
        IndexingConfig(policy="sometimes")
