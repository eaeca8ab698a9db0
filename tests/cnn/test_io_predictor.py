import logging

import numpy as np
import pytest
import torch

from laue_live import ModelError, SettingsError
from laue_live.cnn import (
    ARCHITECTURES,
    Architecture,
    Predictor,
    SpotCNN,
    get_predictor,
    load_model,
    read_metadata,
    save_model,
)


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    torch.manual_seed(0)
    m = SpotCNN(ARCHITECTURES["lean"]).eval()
    path = save_model(tmp_path / "m.safetensors", m, info={"version": "1.2"})
    m2, meta = load_model(path)
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert meta["normalisation"] == "minmax"
    assert meta["architecture"]["widths"] == [8, 8, 16, 16, 32, 64]
    assert meta["info"]["version"] == "1.2"
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))


def test_truncated_file_raises_model_error(tmp_path, tiny_model_file):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(tiny_model_file.read_bytes()[:5000])
    with pytest.raises(ModelError, match="corrupted|truncated|cannot read"):
        load_model(bad)


def test_garbage_and_missing_files_raise_model_error(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelError):
        read_metadata(junk)
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope.safetensors")


def test_other_architecture_raises_model_error(tmp_path):
    from safetensors.torch import save_file

    path = save_model(tmp_path / "paper.safetensors", SpotCNN(ARCHITECTURES["paper"]))
    with pytest.raises(ModelError, match="expected"):
        load_model(path, expect=ARCHITECTURES["lean"])
    # weights of one architecture under a header declaring another
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["laue_live"])
    meta["architecture"] = Architecture(widths=(8, 8, 16, 16, 32, 64)).to_dict()
    lean_state = {k: v for k, v in SpotCNN(ARCHITECTURES["paper"]).state_dict().items()}
    save_file(lean_state, str(tmp_path / "mix.safetensors"), metadata={"laue_live": json.dumps(meta)})
    with pytest.raises(ModelError, match="do not match"):
        load_model(tmp_path / "mix.safetensors")


def test_foreign_safetensors_file_raises_model_error(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, str(tmp_path / "other.safetensors"), metadata={"foo": "bar"})
    with pytest.raises(ModelError, match="no laue-live metadata"):
        load_model(tmp_path / "other.safetensors")


def test_predictor_cpu_fallback_logs_and_predicts(tiny_model_file, toy_spots, monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cut, _ = toy_spots
    with caplog.at_level(logging.INFO, logger="laue_live"):
        p = Predictor(tiny_model_file, device="auto", batch_size=10)
    assert p.device.type == "cpu" and p.amp is False
    assert any("CPU" in r.getMessage() for r in caplog.records)
    df = p.predict(cut[:25])  # several batches
    assert len(df) == 25
    assert ((df["sim"] >= 0) & (df["sim"] <= 1)).all()
    assert (df["d_row"].abs() <= 1.1 + 1e-6).all()
    np.testing.assert_allclose(df["area"], np.pi * df["sigma_row"] * df["sigma_col"], rtol=1e-4)
    np.testing.assert_allclose(
        df["asp"],
        np.minimum(df["sigma_row"], df["sigma_col"]) / np.maximum(df["sigma_row"], df["sigma_col"]),
        rtol=1e-4,
    )
    # batching does not change results
    np.testing.assert_allclose(
        p.predict_desc(cut[:25]), Predictor(tiny_model_file, "cpu").predict_desc(cut[:25]), atol=1e-5
    )
    assert len(p.predict(cut[:0])) == 0


def test_explicit_cuda_without_cuda_is_a_clear_error(tiny_model_file, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    # one resolve_device for the whole package (laue_live._xp): a device setting is a SettingsError
    with pytest.raises(SettingsError, match="CUDA is not available"):
        Predictor(tiny_model_file, device="cuda")


def test_get_predictor_is_cached(tiny_model_file):
    assert get_predictor(tiny_model_file, "cpu") is get_predictor(str(tiny_model_file), "cpu")


def test_wrong_cutout_shape_is_refused(tiny_model_file):
    with pytest.raises(ValueError, match="shape"):
        get_predictor(tiny_model_file, "cpu").predict(np.zeros((2, 16, 16)))


def test_sigma_orientation_follows_the_cutout(tiny_model_file):
    from laue_live.cnn import table_from_desc

    r = np.arange(32)[:, None] - 16
    c = np.arange(32)[None, :] - 16
    wide_rows = 1000 + 5000 * np.exp(-0.5 * ((r / 3.0) ** 2 + (c / 1.0) ** 2))
    desc = np.array([[0.9, 0.5, 0.5, 1 / 3, 3 * np.pi / (5 * np.pi)]] * 2)
    df = table_from_desc(desc, np.stack([wide_rows, wide_rows.T]))
    assert df["sigma_row"][0] > df["sigma_col"][0] and df["sigma_row"][1] < df["sigma_col"][1]
    np.testing.assert_allclose(df["sigma_row"][0], 3.0, rtol=1e-5)
    np.testing.assert_allclose(df["peak_intensity"], 6000.0)


def test_int8_predictor_close_to_float32(tiny_model_file, toy_spots):
    from laue_live.cnn import int8_available

    if not int8_available():
        pytest.skip("no int8 engine in this torch build")
    cut, _ = toy_spots
    q = Predictor(tiny_model_file, "cpu")
    f = Predictor(tiny_model_file, "cpu", quantize=False)
    assert q.quantized and not f.quantized
    np.testing.assert_allclose(q.predict_desc(cut), f.predict_desc(cut), atol=0.03)


def test_file_without_calibration_runs_float32_and_refuses_int8(tmp_path):
    path = save_model(tmp_path / "nocal.safetensors", SpotCNN(ARCHITECTURES["lean"]))
    assert not Predictor(path, "cpu").quantized
    with pytest.raises(ModelError, match="calibration"):
        Predictor(path, "cpu", quantize=True)


def test_int8_predictions_are_not_rounded_to_the_uint8_output_grid():
    """The int8 network keeps its last layer and sigmoid in float32 (no 1/256 steps in the table)."""
    import numpy as np

    from laue_live.cnn import get_predictor

    p = get_predictor(None, "cpu")
    if not p.quantized:
        import pytest

        pytest.skip("no int8 engine in this torch build")
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:32, :32]
    cut = np.stack([1000 + a * np.exp(-((yy - 16 - dy) ** 2 + (xx - 16 - dx) ** 2) / (2 * s * s))
                    for a, dy, dx, s in zip(rng.uniform(500, 20000, 64), rng.uniform(-0.5, 0.5, 64),
                                            rng.uniform(-0.5, 0.5, 64), rng.uniform(0.8, 2.5, 64),
                                            strict=True)]).astype(np.float32)
    d = p.predict(cut, polish=0)  # the network's own outputs (the polish would give the fit's)
    on_grid = np.isclose((d["sim"].to_numpy() * 256) % 1, 0, atol=1e-4) | (d["sim"].to_numpy() == 0)
    assert on_grid.mean() < 0.2
    assert d["d_row"].nunique() > 50
