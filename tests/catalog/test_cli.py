"""``laue-live catalog info`` and ``laue-live query ...`` against the session's real server."""

from __future__ import annotations

import pandas as pd
import pytest

from laue_live.cli import app


def test_query_commands(cli, cli_env, tiled_client, write_analysis_run, tmp_path):
    uid, _ = write_analysis_run(tiled_client, 6, [1, 2, 3, 4, 5, 6], sample="Si", material="Si",
                                shape=[2, 3])
    env = cli_env

    r = cli.invoke(app, ["catalog", "info"], env=env)
    assert r.exit_code == 0, r.output
    assert "analysis runs" in r.output and ": 1" in r.output
    assert env["LAUE_LIVE_TILED_API_KEY"] not in r.output

    r = cli.invoke(app, ["query", "runs", "--sample", "Si", "--out", str(tmp_path / "runs.csv")], env=env)
    assert r.exit_code == 0, r.output
    assert uid in r.output
    assert pd.read_csv(tmp_path / "runs.csv")["uid"].tolist() == [uid]
    r = cli.invoke(app, ["query", "runs", "--sample", "nothing"], env=env)
    assert r.exit_code == 0 and "(no rows)" in r.output

    r = cli.invoke(app, ["query", "spots", uid[:8], "--frames", "2:3", "--out", str(tmp_path / "s.parquet")],
                   env=env)
    assert r.exit_code == 0, r.output
    spots = pd.read_parquet(tmp_path / "s.parquet")
    assert len(spots) == 3 + 4 and set(spots["frame"]) == {2, 3}

    r = cli.invoke(app, ["query", "summary", "latest", "--out", str(tmp_path / "f.csv")], env=env)
    assert r.exit_code == 0, r.output
    assert pd.read_csv(tmp_path / "f.csv")["n_spots"].tolist() == [1, 2, 3, 4, 5, 6]

    r = cli.invoke(app, ["query", "map", uid, "--value", "n_spots", "--out", str(tmp_path / "m.png"),
                         "--csv", str(tmp_path / "m.csv")], env=env)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "m.csv").read_text().splitlines()[0].split(",") == ["1", "2", "3"]


def test_cli_errors_are_clear(cli, cli_env):
    r = cli.invoke(app, ["query", "spots", "nosuchrun"], env=cli_env)
    assert r.exit_code == 1 and "no analysis run" in r.output
    r = cli.invoke(app, ["query", "runs"], env={**cli_env, "LAUE_LIVE_TILED_API_KEY": "bad-key!"})
    assert r.exit_code == 2 and "alphanumeric" in r.output
    r = cli.invoke(app, ["query", "runs", "--since", "yesterday-ish"], env=cli_env)
    assert r.exit_code == 2 and "ISO" in r.output


@pytest.mark.parametrize("command", [["catalog", "serve"], ["catalog", "init"], ["query", "runs"]])
@pytest.mark.parametrize("bad", ["file", "under-a-file"])
def test_a_data_dir_that_cannot_be_made_is_one_line(cli, tmp_path, command, bad):
    (tmp_path / "f").write_text("not a directory")
    data_dir = tmp_path / "f" if bad == "file" else tmp_path / "f" / "data"
    env = {"LAUE_LIVE_TILED_URI": "", "LAUE_LIVE_DATA_DIR": ""}
    args = [*command[:1], "--data-dir", str(data_dir), *command[1:]] if command[0] == "query" else \
        [*command, "--data-dir", str(data_dir)]
    r = cli.invoke(app, args, env=env)
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit)
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and str(data_dir) in lines[0], r.output
    assert "file" in lines[0]
