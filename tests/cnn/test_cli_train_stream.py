"""``laue-live train`` (stream protocol): bad options are one clear line and exit code 2."""

import pytest
from typer.testing import CliRunner

from laue_live.cli._app import _register, app


@pytest.mark.parametrize(
    "args, message",
    [
        (["--network", "bogus"], "--network"),
        (["--real-fraction", "1.5"], "--real-fraction"),
        (["--eval-frames", "no/such/frame.tif", "--report", "r"], "not found"),
        (["--real-frames", "no/such/frame.tif"], "not found"),
        (["--compare", "nofile"], "LABEL=MODEL_FILE"),
        (["--protocol", "other"], "--protocol"),
    ],
)
def test_bad_stream_options_are_refused_clearly(tmp_path, args, message):
    _register()
    r = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "m.safetensors"), "--stream-dir",
                                 str(tmp_path / "s"), *args])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
