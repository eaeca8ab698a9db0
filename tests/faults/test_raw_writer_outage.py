"""`laue-live serve --write-raw`: the Tiled server stops mid-scan; the service analyses every frame anyway."""

from __future__ import annotations

import threading

import pytest
from bluesky import RunEngine
from bluesky.plans import grid_scan
from ophyd.sim import motor1, motor2

from laue_live.catalog import LocalTiledServer, open_catalog
from laue_live.service import AnalysisService, ServiceSettings
from laue_live.stream import DocumentPublisher, SafeProxy, SpotSubscriber

from ._helpers import InlineDetector, n_spots
from .test_tiled_outage import short_client_retries  # noqa: F401 - the fixture

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

NX, NY = 3, 2
DOWN_AT = 2  # the server stops before frame 2 is taken
WAIT = 120.0  # seconds: bound on the slowest wait on a loaded 2-core machine


@pytest.mark.filterwarnings("ignore:The callback:UserWarning")  # event_model on the writer's refused start
def test_write_raw_sink_failing_is_logged_and_counted_not_fatal(tmp_path, tiled_data_dir, fault_report,
                                                                short_client_retries):  # noqa: F811
    server = LocalTiledServer(tiled_data_dir).start()
    down = threading.Event()

    def on_trigger(i):  # on the RunEngine thread, before frame i is taken
        if i == DOWN_AT:
            server.stop()
            down.set()

    try:
        catalog = open_catalog(server.settings)
        with SafeProxy() as proxy:
            proxy.start_in_thread()
            settings = ServiceSettings(input_address=proxy.out_address, publish_address="127.0.0.1:0",
                                       method="fit", state_dir=tmp_path / "state", status_interval=3600,
                                       write_raw=True, drain_timeout=5)
            service = AnalysisService(settings, catalog=catalog)
            thread = service.run_in_thread()
            tables = {}
            with SpotSubscriber(service.publish_address) as sub, \
                    DocumentPublisher(proxy.in_address) as publisher:
                assert sub.wait_ready(30) and publisher.wait_for_subscribers(1, 30)
                RE = RunEngine({}, call_returns_result=False)
                RE.subscribe(publisher)
                RE(grid_scan([InlineDetector(name="laue", on_trigger=on_trigger)],
                             motor2, 0, 1, NY, motor1, 0, 1, NX))
                while len(tables) < NX * NY:
                    got = sub.next_frame(WAIT)
                    assert got is not None, f"only frames {sorted(tables)} analysed"
                    _run, frame, table = got
                    tables[frame] = len(table)
            assert thread.is_alive(), "the service ended when Tiled went away"
            status = service.status()
            service.stop()
            thread.join(WAIT)
    finally:
        server.stop()
    assert down.is_set() and not thread.is_alive() and service.state == "stopped"
    assert tables == {i: n_spots(i) for i in range(NX * NY)}, "every frame analysed and published"
    raw = status["raw_writer"]
    assert raw["errors"] == 1 and raw["runs_failed"] == 1, raw  # once per run, then the run is skipped
    assert raw["skipped"] > 0 and "Error" in raw["last_error"]
    assert status["callback_errors"] == 0  # the raw writer's guard took it; nothing reached the dispatcher
    fault_report.add(
        "Tiled",
        f"serve --write-raw: Tiled server stopped at frame {DOWN_AT} of {NX * NY}, not restarted",
        f"service went on: all {NX * NY} frames analysed and published; the raw writer's failure logged "
        f"once and counted in the status ({raw['skipped']} later documents of that run skipped)",
        0,
    )
