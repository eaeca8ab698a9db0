"""method="auto": the method the shipped model's evaluation measured better on the device."""

import numpy as np
import pytest

from laue_live.cnn import SpotNet, default_model_path, read_metadata, save_model
from laue_live.describe import characterize, choose_method


@pytest.fixture
def model_with(tmp_path):
    def make(auto):
        info = {"version": "test"} if auto is None else {"version": "test", "auto": auto}
        return save_model(
            tmp_path / f"m{len(list(tmp_path.iterdir()))}.safetensors", SpotNet().eval(), info=info
        )

    return make


def test_the_recorded_decision_is_followed_per_device(model_with):
    m = model_with({"cpu": "cnn", "accuracy_met": True})
    assert choose_method("cpu", m) == "cnn"
    assert choose_method(None, m) == "cnn"
    assert choose_method("cuda", m) == "cnn"  # no GPU measurement: the CNN, which met the targets
    m = model_with({"cpu": "fit", "accuracy_met": True})
    assert choose_method("cpu", m) == "fit"
    assert choose_method("cuda:0", m) == "cnn"
    m = model_with({"cpu": "fit", "accuracy_met": False})
    assert choose_method("cuda", m) == "fit"


def test_without_a_record_or_a_model_auto_is_the_fit(model_with, tmp_path):
    assert choose_method("cpu", model_with(None)) == "fit"
    assert choose_method("cuda", model_with(None)) == "fit"
    assert choose_method("cpu", tmp_path / "missing.safetensors") == "fit"
    assert choose_method("cpu", model_with({"cpu": "bogus"})) == "fit"


def test_the_shipped_model_records_its_cpu_choice_and_auto_runs_it():
    from laue_live.cnn._accuracy import clean_gaussians

    auto = read_metadata(default_model_path())["info"]["auto"]
    assert auto["cpu"] in ("fit", "cnn") and isinstance(auto["accuracy_met"], bool)
    cut, _ = clean_gaussians(4, seed=1)
    expected = characterize(cut[:16], method=auto["cpu"], device="cpu")
    got = characterize(cut[:16], method="auto", device="cpu")
    np.testing.assert_array_equal(got["d_row"].to_numpy(), expected["d_row"].to_numpy())
