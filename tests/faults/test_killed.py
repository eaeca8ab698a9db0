"""The analysis process is killed (SIGKILL) in the middle of a run, then the run is resumed.

Runs on both table stores (``tiled_store``: DuckDB, PostgreSQL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from bluesky.plans import count
from bluesky_tiled_plugins import TiledWriter
from tiled.queries import Key

from laue_live.catalog import reprocess_run

from ._helpers import InlineDetector, n_spots

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

N = 24

# The analysis process: the library's reprocessing path, with an analysis slowed to ~0.15 s/frame
# (simulated work) so that the kill lands in the middle of the run.
_CHILD = """
import os, sys, time
from laue_live.analysis import FrameAnalyzer
from laue_live.catalog import CatalogSettings, open_catalog, reprocess_run
real = FrameAnalyzer("fit")
def slow(frames):
    time.sleep(0.15 * len(frames))
    return real(frames)
cat = open_catalog(CatalogSettings.load(settings_file=sys.argv[2]), create=False)
reprocess_run(cat, sys.argv[1], analyzer=FrameAnalyzer("fit", func=slow), batch_size=1, progress=False,
              writer_kwargs={"max_delay_s": 0.05})
"""


def _rows(catalog, raw_uid):
    runs = catalog.analysis.search(Key("raw_uid") == raw_uid)
    if not len(runs):
        return None, 0
    run = runs.values().first()
    try:
        return run, len(run["frames"].base["internal"].read(columns=["frame"]))
    except KeyError:
        return run, 0


def test_analysis_killed_mid_run_is_resumed_without_duplicates(
    RE, any_tiled_client, any_tiled_server, tiled_store, tmp_path, fault_report
):
    tiled_client, tiled_server = any_tiled_client, any_tiled_server
    RE.subscribe(TiledWriter(tiled_client.raw, batch_size=1))
    (raw_uid,) = RE(count([InlineDetector(name="laue")], N))
    settings = tmp_path / "catalog.yml"
    settings.write_text(
        f"uri: {tiled_server.uri}\nraw_path: {tiled_client.settings.raw_path}\n"
        f"analysis_path: {tiled_client.settings.analysis_path}\n"
    )
    env = {**os.environ, "LAUE_LIVE_TILED_API_KEY": tiled_server.api_key}  # key by env, never argv
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, raw_uid, str(settings)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        written = 0
        while time.monotonic() < deadline and proc.poll() is None:
            _, written = _rows(tiled_client, raw_uid)
            if written >= 4:
                break
            time.sleep(0.1)  # polling another process's progress in Tiled (bounded)
        assert proc.poll() is None, f"the analysis ended before the kill: {proc.stderr.read()[-2000:]!r}"
        assert written >= 4, "no progress within 90 s"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()
    run, before = _rows(tiled_client, raw_uid)
    assert 4 <= before < N and not run.metadata.get("stop"), "killed mid-run: partial, no stop document"
    # spot rows go in before their summaries: frames with spot rows but no summary yet (killed
    # between the two appends) are summarised from their rows, not analysed or written again
    with_spots = len(set(run["spots"].base["internal"].read(columns=["frame"])["frame"]))
    result = reprocess_run(tiled_client, raw_uid, method="fit", resume=True, progress=False)
    assert result.resumed and result.analysis_uid == run.metadata["start"]["uid"]
    assert before <= result.frames_skipped <= max(before, with_spots)
    runs = tiled_client.analysis.search(Key("raw_uid") == raw_uid)
    assert len(runs) == 1, "resumed in place, not a second analysis run"
    run = runs.values().first()
    frames = run["frames"].base["internal"].read()
    spots = run["spots"].base["internal"].read()
    assert sorted(frames["frame"]) == list(range(N)), "every frame once"
    assert spots.groupby("frame").size().to_dict() == {i: n_spots(i) for i in range(N)}
    assert not spots.duplicated(["frame", "spot"]).any()
    assert run.metadata["stop"]["exit_status"] == "success"
    fault_report.add(
        "analysis process",
        f"SIGKILL after {before} of {N} frames were in Tiled; `reprocess_run(resume=True)` ({tiled_store})",
        f"run completed in place ({result.frames_skipped} frames skipped, "
        f"{N - result.frames_skipped} analysed, incl. {before - result.frames_skipped} whose "
        "summary row was in but spot rows not); every frame once, no row twice",
        0,
    )
