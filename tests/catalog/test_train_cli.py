"""`laue-live train --catalog`: historical raw runs selected by query, fit cached, a few steps trained."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_train_from_catalog_runs_a_few_steps_and_caches_the_fit(tiled_client, write_raw_run, tmp_path,
                                                                 monkeypatch):
    from typer.testing import CliRunner

    from laue_live.cli import app

    write_raw_run(tiled_client.raw, rows=2, cols=2, sample="Si", material="Si")
    write_raw_run(tiled_client.raw, rows=1, cols=2, sample="GaN", material="GaN")  # not selected
    s = tiled_client.settings
    settings_file = tmp_path / "catalog.json"
    settings_file.write_text(json.dumps({"raw_path": s.raw_path, "analysis_path": s.analysis_path}))
    monkeypatch.setenv("LAUE_LIVE_CATALOG_SETTINGS", str(settings_file))
    monkeypatch.setenv("LAUE_LIVE_TILED_API_KEY", s.api_key)  # keys never on the command line
    monkeypatch.setenv("LAUE_LIVE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "m.safetensors"
    args = ["train", "--catalog", s.uri, "--sample", "Si", "--out", str(out), "--epochs", "1",
            "--steps", "3", "--batch-size", "4", "--per-bin", "50", "--threads", "1"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert out.exists() and out.with_suffix(".json").exists()
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["data"]["catalog"] > 0 and info["protocol"]["epochs"] == 1
    cached = list((tmp_path / "cache").rglob("*.npz"))
    assert len(cached) == 4  # the 4 frames of the Si run only, fitted once
    mtimes = {p: p.stat().st_mtime_ns for p in cached}
    r2 = CliRunner().invoke(app, args)
    assert r2.exit_code == 0, r2.output
    assert {p: p.stat().st_mtime_ns for p in cached} == mtimes  # second training read the cache

    bad = CliRunner().invoke(app, ["train", "--catalog", s.uri, "--sample", "nothing-like-this",
                                   "--out", str(tmp_path / "x.safetensors")])
    assert bad.exit_code == 2 and "no cutouts" in bad.output
