"""Training from the catalog: raw runs selected by query, frames streamed, exact fit cached."""

from __future__ import annotations

import numpy as np
import pytest

from laue_live import cnn
from laue_live.catalog import CatalogCutoutSource, read_frames
from laue_live.testing import SHAPE


@pytest.mark.slow
def test_catalog_source_streams_frames_and_caches_the_fit(tiled_client, write_raw_run, tmp_path,
                                                          spots_in_small_frame):
    si = write_raw_run(tiled_client.raw, rows=2, cols=2, sample="Si", material="Si")
    write_raw_run(tiled_client.raw, rows=1, cols=2, sample="GaN", material="GaN")  # not selected
    frames = list(read_frames(tiled_client.raw[si]))
    assert [i for i, _ in frames] == [0, 1, 2, 3]
    assert frames[0][1].dtype == np.uint16 and frames[0][1].shape == SHAPE  # as the detector wrote it

    src = CatalogCutoutSource(tiled_client, query={"sample": "Si"}, cache_dir=tmp_path / "cache",
                              progress=False)
    chunks = list(src.chunks())
    assert len(chunks) == 4  # one chunk per frame of the Si run only
    for i, (cutouts, table) in enumerate(chunks):
        assert cutouts.shape == (spots_in_small_frame(i), 32, 32) and cutouts.dtype == np.float32
        assert len(table) == len(cutouts)
        assert (table["frame"] == i).all()
        assert {"sim", "d_row", "d_col", "asp", "area", "sigma_row", "sigma_col"} <= set(table.columns)
        assert table["converged"].all() and (table["sim"] > 0.5).all()  # clean Gaussian spots
    assert src.stats == {"frames": 4, "cache_hits": 0, "fitted": 4, "spots": sum(len(c) for c, _ in chunks)}
    assert len(list((tmp_path / "cache" / si).glob("*.npz"))) == 4

    # A second training on the same runs reads the cache: no refit, no frame read, same data.
    again = CatalogCutoutSource(tiled_client, query={"sample": "Si"}, cache_dir=tmp_path / "cache",
                                progress=False)
    chunks2 = list(again.chunks())
    assert again.stats["fitted"] == 0 and again.stats["cache_hits"] == 4
    for (c1, t1), (c2, t2) in zip(chunks, chunks2, strict=True):
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_allclose(t1["sim"].to_numpy(), t2["sim"].to_numpy())
    # Other analysis parameters are another cache key: they refit.
    other = CatalogCutoutSource(tiled_client, runs=[si], cache_dir=tmp_path / "cache", progress=False,
                                find_peaks_kwargs={"threshold": 80.0}, max_frames_per_run=1)
    assert other.params_hash != src.params_hash
    assert len(list(other.chunks())) == 1 and other.stats["fitted"] == 1


def test_catalog_source_follows_the_cnn_protocol(tiled_client, tmp_path):
    src = CatalogCutoutSource(tiled_client, cache_dir=tmp_path, progress=False)
    assert isinstance(src, cnn.CutoutSource)
    assert list(src.chunks()) == []  # an empty catalog yields nothing, without error
