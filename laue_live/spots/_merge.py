"""One row per spot: rows that describe the same spot, or a spot off the detector, are dropped.

Both the CPU path (:func:`laue_live.analyze_frames`) and the torch pipeline
(:class:`laue_live.pipeline.FramePipeline`) end with :func:`merge_same_spot_rows`, so that their
tables agree.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["SAME_SPOT_RADIUS", "merge_same_spot_rows", "off_detector_rows"]

#: Two rows whose fitted positions lie closer than this (px) describe the same spot.
SAME_SPOT_RADIUS = 1.5


def merge_same_spot_rows(table, radius: float = SAME_SPOT_RADIUS, *, shape: tuple[int, int] | None = None,
                         mask=None, return_kept: bool = False):
    """Keep one row per spot: of rows whose positions lie within ``radius`` px, keep the best.

    Two initial peaks further apart than the peak search's ``merge_radius`` can still be one spot:
    a streak with two maxima, or a faint shoulder whose fit walks onto the main spot. Both fits
    then converge to nearly the same position. Per frame, among single spots (``component == 0``),
    a row is dropped when a better row lies within ``radius``; so are rows whose position is off
    the detector (:func:`off_detector_rows`, when ``shape`` is given). Better is the smaller
    ``|Pos - s|`` (the fit that stayed on its own brightest pixel), then the brighter
    ``peak_intensity``, then the lower ``spot`` index. Dropped rows still exclude others (not a
    greedy sweep). ``spot`` is renumbered 0, 1, ... in the kept order.

    Parameters
    ----------
    table
        Schema spot table (one or several frames).
    radius
        Same-spot distance, px.
    shape, mask
        Frame shape and pixel mask (one frame's table): also drop :func:`off_detector_rows`.
    return_kept
        Also return the bool (len(table),) array of the rows kept.

    Returns
    -------
    pandas.DataFrame
        The table without the duplicate rows (the input object itself when none is found).
    """
    off = np.zeros(len(table), dtype=bool) if shape is None else off_detector_rows(table, shape, mask)
    pos = table[["row", "col"]].to_numpy(np.float64)
    single = (table["component"].to_numpy() == 0) & np.isfinite(pos).all(axis=1) & ~off
    frame = table["frame"].to_numpy()
    d = np.hypot(table["d_row"].to_numpy(np.float64), table["d_col"].to_numpy(np.float64))
    rank = np.empty(len(table), dtype=np.int64)
    rank[np.lexsort((table["spot"].to_numpy(), -table["peak_intensity"].to_numpy(np.float64),
                     np.nan_to_num(d, nan=np.inf)))] = np.arange(len(table))
    drop = off.copy()
    for f in np.unique(frame[single]):
        k = np.flatnonzero(single & (frame == f))
        if k.size < 2:
            continue
        pairs = cKDTree(pos[k]).query_pairs(radius, output_type="ndarray")
        if len(pairs):
            a, b = k[pairs[:, 0]], k[pairs[:, 1]]
            drop[np.where(rank[a] > rank[b], a, b)] = True
    if not drop.any():
        return (table, ~drop) if return_kept else table
    out = _drop_rows(table, drop)
    return (out, ~drop) if return_kept else out


def off_detector_rows(table, shape: tuple[int, int], mask=None) -> np.ndarray:
    """Rows whose fitted position lies where the detector has no usable pixels.

    A spot detected on the inner side of a masked region (a MarCCD's round window, a beamstop) or
    of the frame's edge can have its centre beyond it: its fit extrapolates from the visible wing.
    Such a row is reported nowhere on the detector. A position counts as off the detector when
    its pixel (rounded) is masked or outside the frame and so are at least 6 of the 9 pixels
    around it (a spot centred on an isolated dead pixel or a 1-px dead line stays).

    Parameters
    ----------
    table
        Spot table (``row``, ``col``).
    shape
        ``(rows, cols)`` of the frame.
    mask
        bool pixel mask of the frame (True = masked), or None.

    Returns
    -------
    numpy.ndarray
        bool (len(table),): True for rows off the detector (NaN positions: False).
    """
    h, w = shape
    pos = table[["row", "col"]].to_numpy(np.float64)
    ok = np.isfinite(pos).all(axis=1)
    r = np.rint(np.where(ok, pos[:, 0], 0)).astype(np.int64)
    c = np.rint(np.where(ok, pos[:, 1], 0)).astype(np.int64)
    m = None if mask is None else np.asarray(mask, dtype=bool)

    def off(rr, cc):
        out = (rr < 0) | (rr >= h) | (cc < 0) | (cc >= w)
        if m is not None:
            inside = ~out
            out[inside] = m[rr[inside], cc[inside]]
        return out

    centre = off(r, c)
    count = sum(off(r + dr, c + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1))
    return ok & centre & (count >= 6)


def _drop_rows(table, drop: np.ndarray):
    """``table`` without the rows ``drop``, ``spot`` renumbered per frame (``parent`` follows)."""
    out = table[~drop].copy()
    # renumber per frame; components keep pointing at their parent's new index
    for f in np.unique(out["frame"].to_numpy()):
        sel = out["frame"].to_numpy() == f
        old = out.loc[sel, "spot"].to_numpy()
        new = np.arange(sel.sum(), dtype=np.int32)
        remap = dict(zip(old.tolist(), new.tolist(), strict=True))
        out.loc[sel, "spot"] = new
        par = out.loc[sel, "parent"].to_numpy()
        out.loc[sel, "parent"] = np.array([remap.get(int(p), -1) for p in par], dtype=np.int32)
    out = out.reset_index(drop=True)
    out.attrs.update(table.attrs)
    return out
