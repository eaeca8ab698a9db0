"""FrameAnalyzer's pipeline choice (numpy analyze_frames or the torch FramePipeline) and its options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bluesky.plans import count

from laue_live._schema import spot_column_names, spot_dtypes
from laue_live.analysis import FrameAnalyzer
from laue_live.callbacks import make_run_router

from .conftest import n_spots, synthetic_frame


def _same_tables(ref, out):
    assert len(out) == len(ref)
    for r, o in zip(ref, out, strict=True):
        assert list(o.columns) == spot_column_names() and dict(o.dtypes) == spot_dtypes()
        assert len(o) == len(r) > 0
        for c in r.columns:
            a, b = r[c].to_numpy(), o[c].to_numpy()
            if a.dtype.kind == "f":
                np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4, equal_nan=True, err_msg=c)
            else:
                np.testing.assert_array_equal(b, a, err_msg=c)


def test_torch_pipeline_gives_the_numpy_tables():
    frames = [synthetic_frame(i) for i in range(3)]
    numpy_an = FrameAnalyzer("fit", pipeline="numpy")
    torch_an = FrameAnalyzer("fit", pipeline="torch", device="cpu")
    assert (numpy_an.pipeline, torch_an.pipeline) == ("numpy", "torch")
    _same_tables(numpy_an(frames), torch_an(frames))
    assert torch_an.describe()["params"]["pipeline"] == "torch"
    assert numpy_an.describe()["params"]["pipeline"] == "numpy"


def test_auto_pipeline_follows_cuda_and_bad_choices_are_refused():
    assert FrameAnalyzer("fit").pipeline == ("torch" if torch.cuda.is_available() else "numpy")
    assert FrameAnalyzer("fit", func=lambda frames: []).pipeline == "custom"
    with pytest.raises(ValueError, match="pipeline"):
        FrameAnalyzer("fit", pipeline="jax")


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

    from laue_live.cli._app import _register, app
    from laue_live.service import ServiceSettings

    _register()
    runner = CliRunner()
    for cmd in ("serve", "demo"):
        res = runner.invoke(app, [cmd, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0 and "--pipeline" in res.output, cmd
    assert ServiceSettings.from_env({"LAUE_LIVE_PIPELINE": "torch"}).pipeline == "torch"
    assert ServiceSettings.from_env({}).pipeline == "auto"
