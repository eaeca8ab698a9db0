"""FrameAnalyzer's pipeline choice (numpy analyze_frames or the torch FramePipeline) and its options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from laue_live._schema import spot_column_names, spot_dtypes
from laue_live.analysis import FrameAnalyzer

from .conftest import synthetic_frame


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
