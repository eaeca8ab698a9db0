"""`laue-live serve` in its own process analyses runs published by a RunEngine and writes them to Tiled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import count, grid_scan
from ophyd.sim import SynAxis, SynGauss
from tiled.queries import Key

from laue_live.describe import analyze_frame
from laue_live.stream import DocumentPublisher, SafeProxy, SpotSubscriber, decode_spot_table
from laue_live.testing import read_line

from .conftest import SmallDetector, n_spots, synthetic_frame

WAIT = 120.0  # seconds: bound on the slowest wait (service start imports torch and tiled)


def _terminate(proc: subprocess.Popen) -> tuple[str, str]:
    """SIGTERM the service if it still runs (it drains and stops); its stdout and stderr."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=WAIT)


def _catalog_env(tmp_path, tiled_server, tiled_client) -> dict[str, str]:
    """The service's environment: it finds the catalog the way a deployment would (a settings file,
    the key in a file), and nothing of ours leaks in."""
    cfg = tiled_client.settings
    settings_file = tmp_path / "catalog.yml"
    settings_file.write_text(f"uri: {cfg.uri}\napi_key_file: {tiled_server.data_dir / 'api_key'}\n"
                             f"raw_path: {cfg.raw_path}\nanalysis_path: {cfg.analysis_path}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAUE_LIVE_", "TILED_"))}
    env["LAUE_LIVE_CATALOG_SETTINGS"] = str(settings_file)
    return env


def _aborting_plan(det, n_ok: int):
    @bpp.stage_decorator([det])
    @bpp.run_decorator(md={"purpose": "abort test"})
    def inner():
        for _ in range(n_ok):
            yield from bps.trigger_and_read([det])
        raise RuntimeError("simulated hardware fault")

    return (yield from inner())


@pytest.mark.slow
def test_serve_analyses_runs_from_a_runengine_in_another_process(tmp_path, tiled_server, tiled_client):
    state = tmp_path / "state"
    with SafeProxy() as proxy:
        proxy.start_in_thread()
        env = _catalog_env(tmp_path, tiled_server, tiled_client)
        cmd = [sys.executable, "-c", "from laue_live.cli import main; main()", "-v", "serve",
               "--input", proxy.out_address, "--publish", "127.0.0.1:0", "--method", "fit",
               "--state-dir", str(state), "--status-interval", "3600", "--drain-timeout", "60"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            line = read_line(proc, "spot tables on", WAIT)
            publish = line.split("spot tables on ")[1].split(",")[0].strip()
            assert publish.startswith("127.0.0.1:")

            sub = SpotSubscriber(publish, documents=True, status=True)
            assert sub.wait_ready(WAIT), "the service's publisher did not welcome us"

            RE = RunEngine({}, call_returns_result=False)
            publisher = DocumentPublisher(proxy.in_address)
            # The service's subscription travelled through the proxy to us: it is listening. No sleep.
            assert publisher.wait_for_subscribers(1, WAIT)
            RE.subscribe(publisher)
            starts = []
            RE.subscribe(lambda name, doc: starts.append(doc["uid"]), "start")
            det = SmallDetector(name="laue")
            x, y = SynAxis(name="stage_x"), SynAxis(name="stage_y")
            RE(grid_scan([det], y, 0, 1, 3, x, 0, 1, 4, snake_axes=True))  # 12 frames
            with pytest.raises(RuntimeError, match="simulated hardware fault"):
                RE(_aborting_plan(det, 3))  # aborts after 3 frames
            RE(count([SynGauss("noise", x, "stage_x", 0, 1)], 3))  # no frames: ignored
            RE(grid_scan([det], y, 0, 1, 2, x, 0, 1, 2))  # 4 frames
            publisher.close()
            raw_uids = list(starts)
            expected = {raw_uids[0]: 12, raw_uids[1]: 3, raw_uids[3]: 4}

            # Follow the live stream until the three analysis runs have stopped.
            tables: dict[str, list] = {}
            analysis_stops = []
            deadline = time.monotonic() + WAIT
            while len(analysis_stops) < 3 and time.monotonic() < deadline:
                message = sub.receive(deadline - time.monotonic())
                if message is None:
                    break
                if message.topic == b"laue.spots":
                    raw = message.payload["run"]["raw_uid"]
                    tables.setdefault(raw, []).append((message.payload["frame"],
                                                       len(decode_spot_table(message.payload))))
                elif message.topic == b"laue.doc" and message.name == "stop":
                    analysis_stops.append(message.payload["doc"])
            assert len(analysis_stops) == 3, f"analysis stops seen: {analysis_stops}"
            for raw, n in expected.items():
                assert tables.get(raw) == [(i, n_spots(i)) for i in range(n)], (raw, raw_uids, tables)

            # Status on request (SIGUSR1): the last report tells what was done.
            proc.send_signal(signal.SIGUSR1)
            status = None
            while time.monotonic() < deadline:
                message = sub.receive(deadline - time.monotonic())
                if message is not None and message.topic == b"laue.status":
                    status = message.payload["status"]
                    if status["frames_analysed"] == 19:
                        break
            assert status is not None and status["frames_analysed"] == 19
            assert status["runs_seen"] == 4 and status["runs_ended"] == 4 and status["analysis_runs"] == 3
            assert status["device"] == "cpu" and status["queue_depth"] == 0
            assert status["messages_rejected"] == 0 and status["dropped"] == 0
            assert status["frames_per_s"] >= 0
            sub.close()
        finally:
            out, err = _terminate(proc)
    assert proc.returncode == 0, err[-3000:]
    assert "stopped" in out
    final = json.loads((state / "status.json").read_text())
    assert final["state"] == "stopped" and final["frames_analysed"] == 19
    assert final["unfinished_at_start"] == []

    # Everything is in Tiled, the aborted run included (marked as such).
    for raw, n in expected.items():
        runs = tiled_client.analysis.search(Key("raw_uid") == raw)
        assert len(runs) == 1, raw
        run = runs.values()[0]
        frames = run["spots"].read()["frame"].values
        assert len(frames) == sum(n_spots(i) for i in range(n))
        assert sorted(set(frames.tolist())) == list(range(n))
        stop = run.metadata["stop"]
        assert stop["frames_analysed"] == n
        assert stop["raw_exit_status"] == ("fail" if raw == raw_uids[1] else "success")
    assert len(tiled_client.analysis.search(Key("raw_uid") == raw_uids[2])) == 0


@pytest.mark.slow
def test_serve_with_the_cnn_publishes_and_writes_the_tables_of_analyze_frame(tmp_path, tiled_server,
                                                                             tiled_client):
    """`laue-live serve --method cnn` (the shipped model): each table it publishes over 0MQ and writes
    to Tiled is analyze_frame(method="cnn")'s, row for row."""
    with SafeProxy() as proxy:
        proxy.start_in_thread()
        cmd = [sys.executable, "-c", "from laue_live.cli import main; main()", "serve",
               "--input", proxy.out_address, "--publish", "127.0.0.1:0", "--method", "cnn",
               "--state-dir", str(tmp_path / "state"), "--status-interval", "3600", "--drain-timeout", "60"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_catalog_env(tmp_path, tiled_server, tiled_client))
        try:
            line = read_line(proc, "spot tables on", WAIT)
            sub = SpotSubscriber(line.split("spot tables on ")[1].split(",")[0].strip(), documents=True)
            assert sub.wait_ready(WAIT), "the service's publisher did not welcome us"
            RE = RunEngine({}, call_returns_result=False)
            publisher = DocumentPublisher(proxy.in_address)
            assert publisher.wait_for_subscribers(1, WAIT)
            RE.subscribe(publisher)
            x, y = SynAxis(name="stage_x"), SynAxis(name="stage_y")
            (raw_uid,) = RE(grid_scan([SmallDetector(name="laue")], y, 0, 1, 2, x, 0, 1, 2))  # 4 frames
            publisher.close()
            published, start, stop = {}, None, None
            deadline = time.monotonic() + WAIT
            while stop is None:  # ends on the analysis run's stop document, within WAIT
                message = sub.receive(max(deadline - time.monotonic(), 0))
                assert message is not None, f"no stop document within {WAIT} s; frames {sorted(published)}"
                if message.topic == b"laue.spots":
                    published[message.payload["frame"]] = decode_spot_table(message.payload)
                elif message.topic == b"laue.doc" and message.name == "start":
                    start = message.payload["doc"]
                elif message.topic == b"laue.doc" and message.name == "stop":
                    stop = message.payload["doc"]
            sub.close()
        finally:
            out, err = _terminate(proc)
    assert proc.returncode == 0, err[-3000:]
    assert start is not None and start["method"] == "cnn"
    assert stop["frames_analysed"] == 4 and stop["frames_failed"] == 0
    assert sorted(published) == [0, 1, 2, 3]
    runs = tiled_client.analysis.search(Key("raw_uid") == raw_uid)
    assert len(runs) == 1
    run = runs.values()[0]
    assert run.metadata["start"]["method"] == "cnn" and run.metadata["stop"]["frames_analysed"] == 4
    written = run["spots"].base["internal"].read()
    for i in range(4):
        ref = analyze_frame(synthetic_frame(i), method="cnn", frame_number=i)
        in_tiled = written[written["frame"] == i]
        for where, got in (("published", published[i]), ("in Tiled", in_tiled)):
            got = got.sort_values("spot").reset_index(drop=True)
            assert len(got) == len(ref) == n_spots(i), where
            for c in ref.columns:
                a, b = ref[c].to_numpy(), got[c].to_numpy()
                if a.dtype.kind == "f":  # float32 rounding of the batched network, as through the callback
                    np.testing.assert_allclose(b, a, rtol=2e-7, atol=2e-7, err_msg=f"{where}: frame {i}, {c}")
                else:
                    np.testing.assert_array_equal(b, a, err_msg=f"{where}: frame {i}, {c}")


def test_service_survives_bad_input_and_stops_cleanly(tmp_path):
    """Pickled and malformed messages are counted and skipped; status on request; stop() drains."""
    import pickle

    from laue_live._journal import read_records
    from laue_live.service import RUN_JOURNAL, AnalysisService, ServiceSettings, open_runs

    state = tmp_path / "state"
    state.mkdir()
    # A run journal of the earlier JSON-lines format, cut by a crash: read once, then converted.
    (state / "journal.jsonl").write_text("\n".join(json.dumps(e) for e in (
        {"event": "start", "raw_uid": "r1", "time": 0}, {"event": "start", "raw_uid": "r2", "time": 1},
        {"event": "stop", "raw_uid": "r2", "time": 2})) + '\n{"event": "st')
    with SafeProxy() as proxy:
        proxy.start_in_thread()
        settings = ServiceSettings(input_address=proxy.out_address, publish_address="127.0.0.1:0",
                                   method="fit", state_dir=state, status_interval=3600)
        service = AnalysisService(settings, catalog=None)
        assert service.unfinished_at_start == ["r1"] and not (state / "journal.jsonl").exists()
        thread = service.run_in_thread()
        with SpotSubscriber(service.publish_address, status=True) as sub, \
                DocumentPublisher(proxy.in_address) as publisher:
            assert sub.wait_ready(30)
            assert publisher.wait_for_subscribers(1, 30)
            publisher._send(b" start " + pickle.dumps({"uid": "x"}))  # bluesky's pickle framing
            publisher._send(b"no separators")
            publisher._send(b" nosuchdocument " + b"\x81\xa1v\x01")
            publisher("stop", {"uid": "s", "run_start": "never-started", "exit_status": "success"})
            service.request_status()
            status = None
            for message in sub.messages(30):
                if message.topic == b"laue.status" and message.payload["status"]["runs_ended"] == 1:
                    status = message.payload["status"]
                    break
        assert status is not None, "no status after the request"
        assert status["messages_rejected"] == 3 and status["state"] in ("idle", "analysing")
        service.stop()
        thread.join(60)
    assert not thread.is_alive()
    assert service.state == "stopped"
    assert json.loads((tmp_path / "state" / "status.json").read_text())["state"] == "stopped"
    records = list(read_records(state / RUN_JOURNAL))  # the run journal: compacted, then appended to
    assert [(r["event"], r["raw_uid"]) for r in records] == [("start", "r1"), ("stop", "never-started")]
    assert list(open_runs(records)) == ["r1"]


def test_service_recovers_runs_it_did_not_finish(tmp_path, tiled_client):
    """A raw run left open in the journal (service killed mid-run) is re-analysed from Tiled on start."""
    from bluesky_tiled_plugins import TiledWriter
    from tiled.queries import Key

    from laue_live._journal import Journal, read_records
    from laue_live.service import RUN_JOURNAL, AnalysisService, ServiceSettings, open_runs

    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(TiledWriter(tiled_client.raw, batch_size=1))
    x, y = SynAxis(name="stage_x"), SynAxis(name="stage_y")
    (raw_uid,) = RE(grid_scan([SmallDetector(name="laue")], y, 0, 1, 2, x, 0, 1, 2))
    state = tmp_path / "state"
    state.mkdir()
    Journal(state / RUN_JOURNAL).append({"event": "start", "raw_uid": raw_uid, "time": 0})
    with SafeProxy() as proxy:
        proxy.start_in_thread()
        settings = ServiceSettings(input_address=proxy.out_address, publish_address="127.0.0.1:0",
                                   method="fit", state_dir=state, recover=True, status_interval=3600)
        service = AnalysisService(settings, catalog=tiled_client)
        assert service.unfinished_at_start == [raw_uid]
        thread = service.run_in_thread()
        service.recovery_thread.join(WAIT)
        assert not service.recovery_thread.is_alive()
        service.stop()
        thread.join(WAIT)
    assert not service.recovery[raw_uid].startswith("failed"), service.recovery
    runs = tiled_client.analysis.search(Key("raw_uid") == raw_uid)
    assert len(runs) == 1
    frames = runs.values()[0]["spots"].read()["frame"].values
    assert len(frames) == sum(n_spots(i) for i in range(4))
    # The journal now records the run as done: a further restart has nothing to recover.
    records = list(read_records(state / RUN_JOURNAL))
    last = records[-1]
    assert last == {**last, "event": "stop", "raw_uid": raw_uid, "exit_status": "recovered"}
    assert open_runs(records) == {}


def test_service_indexes_runs_with_the_material_and_calibration_of_its_settings(tmp_path):
    """`laue-live serve --material Si --calibration calib.det`: runs that name neither are indexed with the
    service's; every frame's indexing goes out as a laue.grains message (these synthetic frames hold no
    Si grain: "no grain found" rows with the reason), and the status counts them."""
    from laue_live._errors import SettingsError
    from laue_live.geometry import BM32_CALIBRATION
    from laue_live.service import AnalysisService, ServiceSettings

    det = tmp_path / "calib.det"
    det.write_text(", ".join(str(v) for v in BM32_CALIBRATION.params) + "\n# pixelsize : 0.0734\n"
                   "# framedim : (2018, 2016)\n")
    with pytest.raises(SettingsError, match="unknown material"):
        ServiceSettings(index_material="Unobtainium", calibration_file=det)
    with pytest.raises(SettingsError, match="cannot read calibration"):
        ServiceSettings(index_material="Si", calibration_file=tmp_path / "missing.det")
    with SafeProxy() as proxy:
        proxy.start_in_thread()
        settings = ServiceSettings.from_env(
            {"LAUE_LIVE_MATERIAL": "Si", "LAUE_LIVE_CALIBRATION": str(det)}, input_address=proxy.out_address,
            publish_address="127.0.0.1:0", method="fit", state_dir=tmp_path / "state", status_interval=3600)
        service = AnalysisService(settings, catalog=None)
        thread = service.run_in_thread()
        with SpotSubscriber(service.publish_address, grains=True) as sub, \
                DocumentPublisher(proxy.in_address) as publisher:
            assert sub.wait_ready(WAIT) and publisher.wait_for_subscribers(1, WAIT)
            RE = RunEngine({}, call_returns_result=False)
            RE.subscribe(publisher)
            x, y = SynAxis(name="stage_x"), SynAxis(name="stage_y")
            RE(grid_scan([SmallDetector(name="laue")], y, 0, 1, 2, x, 0, 1, 2))
            got = [sub.next_grains(WAIT) for _ in range(4)]
        assert None not in got
        assert [g.frame for g in got] == [0, 1, 2, 3]
        assert all(g.summary["status"] == "no_grain" and g.summary["reason"] and len(g.grains) == 0
                   for g in got)
        status = service.report()
        assert status["indexing"] and status["frames_no_grain"] == 4 and status["frames_not_indexed"] == 0
        service.stop()
        thread.join(WAIT)
    assert not thread.is_alive()
