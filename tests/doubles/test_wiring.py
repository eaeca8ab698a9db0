"""analyze_frame(doubles=True): double spots of a real frame become component rows, the rest stays."""

import numpy as np

from laue_live import analyze_frame
from laue_live._schema import spot_column_names


def test_analyze_frame_with_doubles_adds_component_rows_only_for_bad_spots(bm32_frame):
    single = analyze_frame(bm32_frame)
    with_doubles = analyze_frame(bm32_frame, doubles=True)
    assert list(with_doubles.columns) == spot_column_names()
    # good single spots are never touched
    good = single[single.good]
    kept = with_doubles[with_doubles.component == 0]
    assert set(good.spot) <= set(kept.spot)
    comps = with_doubles[with_doubles.component > 0]
    if len(comps):
        # components come in pairs sharing a parent that was a bad single spot
        assert (comps.groupby("parent").size() == 2).all()
        assert set(comps.parent) <= set(single.loc[~single.good, "spot"])
        assert not set(comps.parent) & set(kept.spot)
    # every original spot is either kept or split
    assert len(kept) + comps.parent.nunique() == len(single)
    assert np.isfinite(with_doubles[["row", "col"]].to_numpy()).all()
