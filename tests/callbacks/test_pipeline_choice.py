"""The live analysis on the torch pipeline, and the pipeline option of ``serve`` and ``demo``."""

from __future__ import annotations

import numpy as np
from bluesky.plans import count

from laue_live.callbacks import make_run_router

from .conftest import n_spots


def test_router_runs_the_live_analysis_on_the_torch_pipeline(RE, inline_det):
    docs: list[tuple[str, dict]] = []
    router = make_run_router([lambda n, d: docs.append((n, d))], method="fit", pipeline="torch", device="cpu")
    assert router.factory.analyzer.pipeline == "torch"
    RE.subscribe(router)
    RE(count([inline_det], 3))
    assert router.wait(60)
    (start,) = [d for n, d in docs if n == "start"]
    assert start["analysis_params"]["pipeline"] == "torch"
    rows: dict[int, int] = {}
    for n, d in docs:
        if n == "event_page":
            for f in np.asarray(d["data"]["frame"]).tolist():
                rows[f] = rows.get(f, 0) + 1
    assert rows == {i: n_spots(i) for i in range(3)}
    (stop,) = [d for n, d in docs if n == "stop"]
    assert stop["exit_status"] == "success" and stop["frames_analysed"] == 3


def test_serve_and_demo_offer_the_pipeline_option():
    from typer.testing import CliRunner

    from laue_live.cli import app
    from laue_live.service import ServiceSettings

    runner = CliRunner()
    for cmd in ("serve", "demo"):
        res = runner.invoke(app, [cmd, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0 and "--pipeline" in res.output, cmd
    assert ServiceSettings.from_env({"LAUE_LIVE_PIPELINE": "torch"}).pipeline == "torch"
    assert ServiceSettings.from_env({}).pipeline == "auto"
