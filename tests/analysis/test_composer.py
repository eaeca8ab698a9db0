"""The spot pages carry numpy columns (no per-value Python objects), and every consumer takes them."""

from __future__ import annotations

import numpy as np

from laue_live import SPOT_COLUMNS
from laue_live.analysis import AnalysisRunComposer
from laue_live.catalog import ResumeSink, make_analysis_writer, read_stream_table
from laue_live.stream import dumps, loads

from .conftest import n_spots, synthetic_frame

_MD = {"method": "fit", "model": {"name": "gaussian-fit", "version": "x"}}


def test_spot_pages_carry_numpy_columns_that_every_sink_takes(catalog, analyzer):
    docs: list[tuple[str, dict]] = []
    writer = make_analysis_writer(catalog, max_delay_s=0.1)
    composer = AnalysisRunComposer([lambda n, d: docs.append((n, d)), writer], {"uid": "raw-arrays"}, _MD)
    tables = analyzer([synthetic_frame(i) for i in range(3)])
    for i, table in enumerate(tables[:2]):
        composer.frame(i, table)
    writer.flush()
    pages = [d for n, d in docs if n == "event_page"]
    assert len(pages) == 2
    for page in pages:
        for c in SPOT_COLUMNS:
            col = page["data"][c.name]
            assert isinstance(col, np.ndarray) and col.dtype == np.dtype(c.dtype), c.name
    # 0MQ codec: typed buffers, same values and dtypes back
    back = loads(dumps(pages[0]))
    for c in SPOT_COLUMNS:
        np.testing.assert_array_equal(np.asarray(back["data"][c.name]), pages[0]["data"][c.name])
    # the Tiled writer and, for the rest of the run, the resume sink
    run = catalog.analysis[composer.uid]
    resume = ResumeSink(run)
    for name, doc in docs:
        if name == "descriptor":
            resume(name, doc)
    composer.sinks = [resume]
    composer.frame(2, tables[2])
    composer.stop()
    writer.close()
    spots = read_stream_table(catalog.analysis[composer.uid], "spots").sort_values(["frame", "spot"])
    assert spots.groupby("frame").size().to_dict() == {i: n_spots(i) for i in range(3)}
    first = spots[spots["frame"] == 0]
    for c in ("row", "col", "sim", "good"):
        np.testing.assert_allclose(first[c].to_numpy(float), pages[0]["data"][c].astype(float), rtol=1e-6)
