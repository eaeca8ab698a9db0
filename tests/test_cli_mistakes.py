"""Every documented mistake on the command line: one line on stderr, no traceback, a non-zero exit code.

The mistakes a beamline user meets (issue 17), run in-process through the real ``laue-live`` typer app
(its root group turns laue-live's errors into one line), against the session's real Tiled server
where a server is needed, and once through the installed console script in its own process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from laue_live.cli import app

NO_KEY = {"LAUE_LIVE_TILED_API_KEY": None, "LAUE_LIVE_TILED_API_KEY_FILE": None, "TILED_API_KEY": None}


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiled_server):
    """Files, a busy port, and a catalog (on the session's server) with a raw run and its analysis."""
    import tifffile
    from bluesky import RunEngine
    from bluesky.plans import count
    from bluesky_tiled_plugins import TiledWriter
    from ophyd.sim import det

    from laue_live.catalog import (
        CatalogSettings,
        make_analysis_writer,
        open_catalog,
        synthetic_analysis_documents,
    )

    d = tmp_path_factory.mktemp("mistakes")
    (d / "a_file").write_text("not a directory")
    frame = np.full((64, 64), 100, np.uint16)
    frame[30:34, 30:34] = 5000
    tifffile.imwrite(d / "frame.tif", frame)
    (d / "truncated.tif").write_bytes((d / "frame.tif").read_bytes()[:600])
    (d / "text.tif").write_text("hello")
    np.save(d / "frame.npy", frame)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    free_port = free.getsockname()[1]
    free.close()  # nothing listens there: a stopped server

    prefix = "mistakes"
    settings = CatalogSettings(uri=tiled_server.uri, api_key=tiled_server.api_key,
                               data_dir=tiled_server.data_dir, raw_path=f"{prefix}/raw",
                               analysis_path=f"{prefix}/analysis")
    cat = open_catalog(settings)
    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(TiledWriter(cat.raw, batch_size=1))
    (raw_uid,) = RE(count([det], 2))  # a raw run whose analysis is complete: nothing to resume
    writer = make_analysis_writer(cat, max_delay_s=0.2)
    for name, doc in synthetic_analysis_documents(6, 3, raw_uid=raw_uid, shape=(2, 3),
                                                  metadata={"shape": [2, 3]}):
        writer(name, doc)
    writer.close()
    (d / "catalog.yml").write_text(f"raw_path: {prefix}/raw\nanalysis_path: {prefix}/analysis\n")
    env = {"LAUE_LIVE_TILED_URI": tiled_server.uri, "LAUE_LIVE_TILED_API_KEY": tiled_server.api_key,
           "LAUE_LIVE_CATALOG_SETTINGS": str(d / "catalog.yml"), "LAUE_LIVE_TILED_API_KEY_FILE": None,
           "TILED_API_KEY": None, "LAUE_LIVE_DATA_DIR": None}
    (d / "wrong_key").write_text("WrongKey0123456789")
    yield {"dir": d, "busy": busy.getsockname()[1], "free": free_port, "uri": tiled_server.uri,
           "env": env, "raw_uid": raw_uid}
    busy.close()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


TRAIN = "train --out {dir}/m.safetensors --stream-dir {dir}/stream"  # nothing written into the checkout
BENCH = "bench --quick --lauetools off"

# (id, args with {placeholders}, environment: "catalog" (the session's server and key) or "none",
#  extra environment, exit code, text the one line must hold)
CASES = [
    # the catalog: a stopped server, no key, a wrong key, data directories that are not there
    ("query-stopped-server", "query --uri http://127.0.0.1:{free} runs", "none", {}, 1, "cannot reach Tiled"),
    ("query-no-key", "query runs", "catalog", NO_KEY, 1, "needs an API key: put it in a file and set "
     "LAUE_LIVE_TILED_API_KEY_FILE"),
    ("query-wrong-key", "query runs", "catalog",
     {"LAUE_LIVE_TILED_API_KEY": None, "LAUE_LIVE_TILED_API_KEY_FILE": "{dir}/wrong_key"}, 1,
     "the API key was refused"),
    ("query-data-dir-missing", "query --data-dir {dir}/nothing-here runs", "none", {}, 1,
     "no laue-live data directory at"),
    ("query-data-dir-is-a-file", "query --data-dir {dir}/a_file runs", "none", {}, 1, "is a file"),
    # the connection options are query's, before its command; after it they are refused as such
    ("query-data-dir-after-the-command", "query runs --data-dir {dir}", "none", {}, 2,
     "No such option: --data-dir"),
    # a mistyped data directory is refused, not made into a new, empty catalog
    ("index-run-data-dir-missing", "index --run latest --data-dir {dir}/not-made-1", "none", {}, 1,
     "no laue-live data directory at"),
    ("reprocess-data-dir-missing", "reprocess latest --data-dir {dir}/not-made-2", "none", {}, 1,
     "no laue-live data directory at"),
    ("reprocess-data-dir-under-a-file", "reprocess latest --data-dir {dir}/a_file/sub", "none", {}, 1,
     "part of its path, {dir}/a_file, is a file"),
    ("query-scan-id-unknown", "query summary 99", "catalog", {}, 1, "no analysis run of scan id 99"),
    ("query-map-text-value", "query map latest --value error --out {dir}/m.png", "catalog", {}, 2,
     "'error' is an identifier or text, not a value to map"),
    ("query-map-unknown-family", "query map latest --value sigma_row --spots weird --out {dir}/m.png",
     "catalog", {}, 2, "unknown spot family 'weird'"),
    ("query-unknown-option", "query runs --bogus", "catalog", {}, 2, "No such option"),
    # analysis methods and devices that do not exist: refused before anything runs or is written
    ("demo-bogus-method", "demo --method bogus --data-dir {dir}/demo --no-dashboard", "none", {}, 2,
     "unknown analysis method 'bogus'"),
    ("reprocess-bogus-method", "reprocess -1 --method bogus", "catalog", {}, 2,
     "unknown analysis method 'bogus'"),
    ("reprocess-resume-nothing", "reprocess latest --resume --method fit", "catalog", {}, 2,
     "nothing to resume"),
    ("demo-data-dir-is-a-file", "demo --data-dir {dir}/a_file", "none", {}, 2, "is a file"),
    ("demo-data-dir-under-a-file", "demo --data-dir {dir}/a_file/sub", "none", {}, 2,
     "part of its path is a file"),
    # frames
    ("analyze-truncated-tiff", "analyze {dir}/truncated.tif", "none", {}, 1, "truncated or corrupt"),
    ("analyze-not-a-tiff", "analyze {dir}/text.tif", "none", {}, 1, "not a detector image format"),
    ("analyze-missing-frame", "analyze {dir}/nope.tif", "none", {}, 1, "no such frame file"),
    ("analyze-bad-method", "analyze {dir}/frame.npy --method bogus", "none", {}, 2,
     "Invalid value for --method"),
    ("analyze-cuda-without-cuda-fit", "analyze {dir}/frame.npy --method fit --device cuda", "none", {}, 1,
     "CUDA is not available here"),
    ("sim-figure-missing-frame", "sim figure --real {dir}/nope.tif --det {dir}/nope.det", "none", {}, 1,
     "no such frame file"),
    # sockets
    ("serve-publish-port-in-use",
     "serve --no-tiled --method fit --input 127.0.0.1:{free} --publish 127.0.0.1:{busy} --state-dir {dir}/st",
     "none", {}, 2, "the port is already in use"),
    ("serve-proxy-port-in-use", "serve --no-tiled --method fit --with-proxy 127.0.0.1:{busy} "
     "--input 127.0.0.1:{free} --publish 127.0.0.1:0 --state-dir {dir}/st2", "none", {}, 2,
     "the port is already in use"),
    ("proxy-port-in-use", "proxy --in 127.0.0.1:{busy} --out 127.0.0.1:0", "none", {}, 2,
     "the port is already in use"),
    ("watch-host-without-port", "watch localhost", "none", {}, 2, "'localhost:5579'"),
    ("watch-port-without-host", "watch 5579", "none", {}, 2, "'127.0.0.1:5579'"),
    # training the spot CNN (issue 15): refused before anything is rendered, trained or written
    ("train-unknown-network", TRAIN + " --network bogus", "none", {}, 2, "--network must be one of"),
    ("train-unknown-protocol", TRAIN + " --protocol other", "none", {}, 2,
     "--protocol must be 'stream' or 'paper'"),
    ("train-samples-zero", TRAIN + " --samples 0", "none", {}, 2, "--samples must be >= 1, got 0"),
    ("train-chunks-zero", TRAIN + " --chunks 0", "none", {}, 2, "--chunks must be >= 1, got 0"),
    ("train-real-fraction-one", TRAIN + " --real-fraction 1", "none", {}, 2,
     "--real-fraction must be in [0, 1)"),
    ("train-negative-lr", TRAIN + " --lr -0.001", "none", {}, 2, "--lr must be > 0"),
    ("train-zero-time-limit", TRAIN + " --time-limit 0", "none", {}, 2, "--time-limit must be > 0"),
    ("train-missing-real-frame", TRAIN + " --real-frames {dir}/nope.tif", "none", {}, 2,
     "frame file(s) not found"),
    ("train-compare-without-model", TRAIN + " --report {dir}/r --compare shipped={dir}/nope.safetensors",
     "none", {}, 2, "--compare wants LABEL=MODEL_FILE with an existing file"),
    ("train-stream-dir-is-a-file", "train --out {dir}/m.safetensors --stream-dir {dir}/a_file", "none", {}, 2,
     "--stream-dir {dir}/a_file is a file, not a folder"),
    ("train-report-under-a-file", TRAIN + " --report {dir}/a_file/r", "none", {}, 2,
     "part of its path is a file"),
    ("train-out-is-a-folder", "train --out {dir} --stream-dir {dir}/stream", "none", {}, 2, "is a folder"),
    ("train-unknown-device", TRAIN + " --device gpu0", "none", {}, 2, "unknown device 'gpu0'"),
    ("train-cuda-without-cuda", TRAIN + " --device cuda", "none", {}, 2, "CUDA is not available here"),
    ("train-paper-zero-epochs", TRAIN + " --protocol paper --epochs 0", "none", {}, 2,
     "--epochs must be >= 1"),
    # the benchmark: refused before anything is rendered or measured
    ("bench-missing-model", BENCH + " --model {dir}/nope.safetensors", "none", {}, 1,
     "model file {dir}/nope.safetensors does not exist"),
    ("bench-not-a-model", BENCH + " --model {dir}/text.tif", "none", {}, 1,
     "is not a readable safetensors file"),
    ("bench-zero-frames", BENCH + " --frames 0", "none", {}, 2, "--frames must be >= 1"),
    ("bench-json-under-a-file", BENCH + " --json {dir}/a_file/b.json", "none", {}, 2,
     "--json's folder {dir}/a_file is a file, not a folder"),
]


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


@pytest.mark.parametrize(("args", "where", "extra", "code", "text"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_mistake_is_one_line_and_an_exit_code(runner, world, args, where, extra, code, text):
    if "--device cuda" in args and _cuda():
        pytest.skip("this machine has CUDA")
    fill = {"dir": world["dir"], "busy": world["busy"], "free": world["free"]}
    env = dict(world["env"]) if where == "catalog" else {
        "LAUE_LIVE_TILED_URI": None, "LAUE_LIVE_CATALOG_SETTINGS": None, "LAUE_LIVE_DATA_DIR": None, **NO_KEY}
    env.update({k: (v.format(**fill) if isinstance(v, str) else v) for k, v in extra.items()})
    result = runner.invoke(app, args.format(**fill).split(), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert text.format(**fill) in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not list(world["dir"].glob("not-made-*")), "a mistyped data directory became a catalog"


def test_the_console_script_says_it_in_one_line_too(tmp_path):
    script = Path(sys.executable).with_name("laue-live")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAUE_LIVE_", "TILED_"))}
    proc = subprocess.run([str(script), "query", "--data-dir", str(tmp_path / "nothing-here"), "runs"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: no laue-live data directory at {tmp_path / 'nothing-here'}: give the one of your runs "
        "(--data-dir or LAUE_LIVE_DATA_DIR), or a server (--uri or LAUE_LIVE_TILED_URI)"]
    assert not (tmp_path / "nothing-here").exists()  # no empty catalog made where there was none
