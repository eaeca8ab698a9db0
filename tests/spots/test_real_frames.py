"""Real BM32 frames against LaueTools 3.2.19's PeakSearch results (1-based, peak_X = column)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from laue_live._schema import SPOT_COLUMNS, spot_column_names
from laue_live.describe import analyze_frame, analyze_frames

FRAMES = ["0000", "0001"]


@pytest.fixture(scope="module")
def real(bm32_dir):
    import tifffile

    frames = [tifffile.imread(bm32_dir / f"nw1_{k}.tif") for k in FRAMES]
    refs = [pd.read_csv(bm32_dir / f"peaks_GaN_Si_nw1_{k}_box16.csv") for k in FRAMES]
    tables = analyze_frames(frames, frame_numbers=[0, 1])
    return frames, refs, tables


@pytest.mark.parametrize("i", [0, 1])
def test_finds_lauetools_peaks_and_agrees_on_position(real, i):
    frames, refs, tables = real
    t, ref = tables[i], refs[i]
    assert list(t.columns) == spot_column_names()
    assert all(str(t[c.name].dtype) == c.dtype for c in SPOT_COLUMNS)
    # LaueTools: 1-based, X = column -> 0-based (row, col) = (Y - 1, X - 1)
    lt = np.c_[ref["peak_Y"] - 1, ref["peak_X"] - 1]
    dist, j = cKDTree(t[["row", "col"]].to_numpy()).query(lt)
    found = dist <= 1.5
    assert found.mean() >= 0.90, f"found {found.mean():.1%} of LaueTools' peaks"
    m = t.iloc[j]
    well = found & m["good"].to_numpy() & m["converged"].to_numpy() & ~m["edge"].to_numpy()
    assert well.sum() >= 0.5 * len(ref)
    assert np.median(dist[well]) <= 0.1, f"median distance {np.median(dist[well]):.3f} px"
    # the sigmas are those of a Gaussian: LaueTools' major/minor widths bracket ours on good spots
    assert np.median(np.abs(np.fmax(m["sigma_row"], m["sigma_col"]).to_numpy()[well]
                            - ref["peak_fwaxmaj"].to_numpy()[well])) < 0.3


def test_table_invariants(real):
    frames, _, tables = real
    for f, t in zip(frames, tables, strict=False):
        assert (t["spot"].to_numpy() == np.arange(len(t))).all()
        assert np.allclose(t["row"], t["row0"] + t["d_row"], atol=1e-4)
        assert np.allclose(t["col"], t["col0"] + t["d_col"], atol=1e-4)
        assert (t["peak_intensity"].to_numpy() == f[t["row0"], t["col0"]]).all()
        assert (t["parent"] == -1).all() and (t["component"] == 0).all()
        assert t["good"].mean() > 0.4 and t["converged"].mean() > 0.9
        r0, c0 = t["row0"], t["col0"]
        edge = (r0 < 16) | (c0 < 16) | (r0 > f.shape[0] - 16) | (c0 > f.shape[1] - 16)
        assert (t["edge"] == edge).all()
    assert tables[1]["frame"].eq(1).all()


def test_single_frame_equals_batched(real):
    frames, _, tables = real
    t = analyze_frame(frames[0], frame_number=0)
    pd.testing.assert_frame_equal(t, tables[0], check_exact=False, rtol=1e-5, atol=1e-4)
