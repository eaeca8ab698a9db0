"""The service's detector settings: peak parameters, presets, calibration, mask/dark/flat files."""

from __future__ import annotations

import numpy as np
import pytest

from laue_live import FrameFileError, LaueLiveError, SettingsError
from laue_live.analysis import FrameAnalyzer
from laue_live.service import ServiceSettings


def test_settings_load_corrections_and_calibration_from_files_and_env(tmp_path):
    mask = np.zeros((2018, 2016), bool)
    mask[:10] = True
    np.save(tmp_path / "mask.npy", mask)
    det = tmp_path / "calib.det"
    det.write_text("79.612, 977.81, 932.17, 0.477, 0.447, 0.0734, 2018, 2016\n")
    env = {"LAUE_LIVE_PEAK_PARAMS": '{"threshold": 9, "min_pixels": 3}', "LAUE_LIVE_DETECTOR": "bm32",
           "LAUE_LIVE_CALIBRATION": str(det), "LAUE_LIVE_MASK": str(tmp_path / "mask.npy")}
    s = ServiceSettings.from_env(env)
    opts = s.analysis_options()
    assert opts["peak_params"]["threshold"] == 9.0 and opts["peak_params"]["min_pixels"] == 3
    assert opts["calibration"].dd == pytest.approx(79.612)
    assert opts["corrections"].mask[:10].all() and not opts["corrections"].mask[10:].any()
    # the analyser records what it was given in the analysis run's start document
    a = FrameAnalyzer("fit", pipeline="numpy", **opts)
    params = a.describe()["params"]
    assert params["peak_params"]["threshold"] == 9.0 and params["calibration"]["xcen"] == 977.81
    assert params["corrections"] == {"mask": True, "dark": False, "flat": False, "auto_mask": True,
                                     "beamstop": None}


@pytest.mark.parametrize(("kw", "error", "text"), [
    ({"peak_params": {"thresold": 5}}, SettingsError, "unknown peak parameter"),
    ({"peak_params": '{"block": 15}'}, SettingsError, "block must be even"),
    ({"peak_params": "not json"}, SettingsError, "JSON object"),
    ({"detector": "pilatus9000"}, SettingsError, "unknown detector"),
])
def test_bad_settings_are_one_clear_error(kw, error, text):
    with pytest.raises(error, match=text):
        ServiceSettings(**kw)


def test_bad_files_are_one_clear_error(tmp_path):
    np.save(tmp_path / "small.npy", np.zeros((64, 64), bool))
    with pytest.raises(FrameFileError, match="but the frames are"):
        ServiceSettings(detector="MARCCD165", mask_file=tmp_path / "small.npy").analysis_options()
    with pytest.raises(LaueLiveError, match="no such frame file"):
        ServiceSettings(dark_file=tmp_path / "missing.edf").analysis_options()
    with pytest.raises(SettingsError, match="beamstop"):
        ServiceSettings(beamstop="1,2").analysis_options()
