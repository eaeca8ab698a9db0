"""Indexing runs already in the catalog: index_run (alongside, resumable), reprocess with indexing, the CLI.

The spot "analysis" here maps each small synthetic frame to a prepared spot table of known Si grains
(laue_live.testing.grain_spot_table), so the indexing is real but no full frame is rendered.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bluesky.plans import grid_scan
from bluesky_tiled_plugins import TiledWriter
from ophyd.sim import motor1, motor2
from typer.testing import CliRunner

from laue_live._errors import SettingsError
from laue_live._run import IndexingRequest
from laue_live.analysis import AnalysisRunComposer, resolve_indexing
from laue_live.catalog import (
    get_grains,
    get_spot_table,
    index_run,
    indexing_info,
    indexing_summary,
    make_analysis_writer,
    quality_map,
    read_stream_table,
    reprocess_run,
)
from laue_live.cli import app
from laue_live.geometry import BM32_CALIBRATION, random_rotation
from laue_live.indexing import Indexer, u_matrices
from laue_live.testing import grain_spot_table, synthetic_frame

N = 4
RNG = np.random.default_rng(7)
GRAINS = [random_rotation(RNG) for _ in range(N)]
CAL = BM32_CALIBRATION.to_dict()
TABLES = [grain_spot_table([("Si", u, None)], frame=i, rng=i) for i, u in enumerate(GRAINS)]
_KEYS = {synthetic_frame(i).tobytes(): i for i in range(N)}


def lookup_analyzer(frames):
    """The spot table prepared for each synthetic frame (frame i -> TABLES[i])."""
    return [TABLES[_KEYS[np.asarray(f).tobytes()]] for f in frames]


def _raw_run(RE, catalog, det, **md):
    RE.subscribe(TiledWriter(catalog.raw, batch_size=1))
    (uid,) = RE(grid_scan([det], motor1, 0, 1, 2, motor2, 0, 1, 2), **md)
    return uid


def _expected():
    indexer = Indexer("Si", BM32_CALIBRATION)
    return [indexer.index(t) for t in TABLES]


def _unindexed_run(catalog, failed=(2,)):
    """An analysis run of TABLES (frame 2 failed), written without indexing (no material named)."""
    writer = make_analysis_writer(catalog, max_delay_s=0.1)
    composer = AnalysisRunComposer([writer], {"uid": "raw-x", "shape": [2, 2]}, {"method": "fit"})
    for i, t in enumerate(TABLES):
        composer.frame(i, None if i in failed else t, error="synthetic failure" if i in failed else "")
    composer.stop("success")
    writer.close()
    return composer.uid


def test_index_run_writes_grains_alongside_and_resumes(catalog):
    uid = _unindexed_run(catalog)
    with pytest.raises(SettingsError, match="material"):
        index_run(catalog, uid, progress=False)  # nothing names a material or a calibration
    first = index_run(catalog, uid, material="Si", calibration=CAL, frames=[0, 1], progress=False)
    assert first.counts["indexed"] == 2 and first.frames_skipped == 2  # frames 2 and 3 not asked for
    rest = index_run(catalog, uid, progress=False)  # the run's own setup from its metadata now
    assert rest.frames_skipped == 2 and rest.counts["indexed"] == 1 and rest.counts["failed"] == 1
    again = index_run(catalog, uid, progress=False)
    assert again.frames_skipped == N and sum(again.counts.values()) == 0
    with pytest.raises(SettingsError, match="already indexed"):
        index_run(catalog, uid, material="Ge", calibration=CAL, progress=False)

    run = catalog.analysis[uid]
    summary = indexing_summary(run)
    assert list(summary["frame"]) == list(range(N))
    assert list(summary["status"]) == ["indexed", "indexed", "failed", "indexed"]
    assert "spot analysis failed" in summary["reason"][2]
    assert len(read_stream_table(run, "indexing")) == N  # no row twice
    info = indexing_info(run)
    assert info["enabled"] and info["material"] == ["Si"] and info["frames_indexed"] == 3
    grains = get_grains(run)
    expected = _expected()
    assert list(grains["frame"]) == [0, 1, 3]
    for f in (0, 1, 3):
        assert np.allclose(u_matrices(grains[grains["frame"] == f])[0], expected[f].grains[0].U, atol=1e-9)
    spots = get_spot_table(run, indexed=True)
    f0 = spots[spots["frame"] == 0].set_index("spot")
    ref = expected[0].spots.set_index("spot")
    assert np.array_equal(f0["grain"].to_numpy(), ref.loc[f0.index, "grain"].to_numpy())
    assert np.array_equal(f0[["h", "k", "l"]].to_numpy(), ref.loc[f0.index, ["h", "k", "l"]].to_numpy())
    assert (spots.loc[spots["frame"] == 2, "grain"] == -1).all()


def test_reprocess_indexes_and_resume_completes_the_indexing(RE, catalog, inline_det):
    uid = _raw_run(RE, catalog, inline_det, material="Si", calibration=CAL)
    res = reprocess_run(catalog, uid, analyzer=lookup_analyzer, progress=False)
    run = catalog.analysis[res.analysis_uid]
    assert res.stop["frames_indexed"] == N and run.metadata["start"]["indexing"]["enabled"]
    assert list(get_grains(run)["frame"]) == list(range(N))
    # --no-index / a wrong material named by the user: no grains, or no_grain rows
    res = reprocess_run(catalog, uid, analyzer=lookup_analyzer, progress=False, indexing=False)
    assert "indexing" not in catalog.analysis[res.analysis_uid].metadata["start"]

    # a live analysis that died after two frames, the second not yet indexed
    raw_start = dict(catalog.raw[uid].metadata["start"])
    resolved = resolve_indexing(IndexingRequest("Si", CAL))
    writer = make_analysis_writer(catalog, max_delay_s=0.1)
    composer = AnalysisRunComposer([writer], raw_start, {"method": "fit", "model": {"name": "m"}},
                                   image_field="laue_image", indexing=resolved.metadata())
    composer.frame(0, TABLES[0])
    composer.indexed(0, Indexer("Si", BM32_CALIBRATION).index(TABLES[0]))
    composer.frame(1, TABLES[1])
    writer.close()
    res = reprocess_run(catalog, uid, analyzer=lookup_analyzer, resume=True, progress=False)
    assert res.resumed and res.analysis_uid == composer.uid and res.frames_skipped == 2
    run = catalog.analysis[composer.uid]
    summary = read_stream_table(run, "indexing")
    assert sorted(summary["frame"]) == list(range(N))  # frame 1 from Tiled, 2 and 3 live: each once
    assert sorted(read_stream_table(run, "frames")["frame"]) == list(range(N))
    stop = run.metadata["stop"]
    assert stop["frames_indexed"] == N and stop["grains"] == N and stop["exit_status"] == "success"
    assert list(get_grains(run)["frame"]) == list(range(N))


def test_cli_index_and_query_grains(catalog, tiled_server, tmp_path):
    cli = CliRunner()
    settings = tmp_path / "catalog.yml"
    settings.write_text(f"raw_path: {catalog.settings.raw_path}\n"
                        f"analysis_path: {catalog.settings.analysis_path}\n")
    env = {"LAUE_LIVE_TILED_URI": tiled_server.uri, "LAUE_LIVE_TILED_API_KEY": tiled_server.api_key,
           "LAUE_LIVE_CATALOG_SETTINGS": str(settings)}
    uid = _unindexed_run(catalog, failed=())
    det = tmp_path / "calib.det"
    det.write_text(", ".join(str(v) for v in BM32_CALIBRATION.params) + "\n# pixelsize : 0.0734\n"
                   "# framedim : (2018, 2016)\n")
    r = cli.invoke(app, ["index", "--run", "nosuchrun", "-m", "Si", "-d", str(det)], env=env)
    assert r.exit_code == 1 and "error:" in r.output and "Traceback" not in r.output
    r = cli.invoke(app, ["index", "--run", uid[:8], "-m", "Si", "-d", str(det), "--out",
                         str(tmp_path / "g.csv")], env=env)
    assert r.exit_code == 0, r.output
    assert f"{N} indexed" in r.output
    assert pd.read_csv(tmp_path / "g.csv")["frame"].tolist() == list(range(N))
    r = cli.invoke(app, ["query", "grains", uid[:8]], env=env)
    assert r.exit_code == 0, r.output
    assert f"{N} indexed" in r.output and "Si" in r.output
    r = cli.invoke(app, ["query", "map", uid, "--value", "misorientation", "--out", str(tmp_path / "m.png"),
                         "--csv", str(tmp_path / "m.csv")], env=env)
    assert r.exit_code == 0, r.output
    grid = np.loadtxt(tmp_path / "m.csv", delimiter=",")
    assert np.allclose(grid, quality_map(catalog.analysis[uid], "misorientation"), equal_nan=True)
    assert grid[0, 0] == 0 and (grid[np.isfinite(grid)] >= 0).all() and np.nanmax(grid) > 1  # 4 random grains
    r = cli.invoke(app, ["query", "map", uid, "--value", "orientation", "--out", str(tmp_path / "o.png")],
                   env=env)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o.png").read_bytes()[:4] == b"\x89PNG" and f"{N} frames with a grain" in r.output
    r = cli.invoke(app, ["query", "map", uid, "--value", "nonsense"], env=env)
    assert r.exit_code == 2 and "unknown" in r.output


def test_journal_replay_writes_each_indexing_row_once(catalog, tmp_path):
    """A Tiled outage in the middle of an indexed run: the journal completes every stream, no row twice."""
    from laue_live.catalog import DocumentJournal, replay_spool

    docs = []
    resolved = resolve_indexing(IndexingRequest("Si", CAL))
    composer = AnalysisRunComposer([lambda n, d: docs.append((n, d))], {"uid": "raw-j", "shape": [2, 2]},
                                   {"method": "fit"}, indexing=resolved.metadata())
    indexer = Indexer("Si", BM32_CALIBRATION)
    cut = 0
    for i, t in enumerate(TABLES):
        composer.frame(i, t)
        composer.indexed(i, indexer.index(t))
        if i == 1:
            cut = len(docs)  # Tiled went away after frame 1's indexing row
    composer.stop("success")
    writer = make_analysis_writer(catalog, max_delay_s=0.1)
    for name, doc in docs[:cut]:
        writer(name, doc)
    writer.close()
    journal = DocumentJournal(tmp_path / "spool")
    for name, doc in docs:
        journal(name, doc)
    journal.close()
    (res,) = replay_spool(tmp_path / "spool", catalog.analysis)
    assert not res.created and res.stopped and res.frames_replayed == 2 and res.other_rows_replayed > 0
    run = catalog.analysis[composer.uid]
    for stream in ("indexing", "grains"):
        assert sorted(read_stream_table(run, stream)["frame"]) == list(range(N)), stream
    labels = read_stream_table(run, "indexed_spots")
    assert not labels.duplicated(["frame", "spot"]).any() and set(labels["frame"]) == set(range(N))
    for name, doc in docs:  # the same journal again: nothing more is written
        journal(name, doc)
    journal.close()
    (again,) = replay_spool(tmp_path / "spool", catalog.analysis)
    assert again.frames_replayed == again.spot_rows_replayed == again.other_rows_replayed == 0
