"""Peak search: initial peak ``s`` (brightest pixel) of every spot of a frame.

The threshold follows the frame's local background *and its noise*: both are measured on a coarse
grid of ``block x block`` pixel blocks, so that a broad fluorescence hump (higher level, higher
Poisson noise), a ~20 ADU MarCCD background and a ~1000 ADU sCMOS pedestal are all thresholded in
units of their own noise. The algorithm is a short fixed sequence of whole-array operations so that
it is ported 1:1 to torch (:mod:`laue_live.pipeline._peaks`); see :func:`find_peaks`.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from laue_live._errors import SettingsError
from laue_live._rules import SATURATION
from laue_live.spots._validate import validate_frame

__all__ = ["find_peaks", "estimate_background", "check_peak_params", "DEFAULT_PEAK_PARAMS", "PEAK_PARAM_HELP"]

log = logging.getLogger(__name__)

#: Defaults of :func:`find_peaks`, justified on the real frames of ``../shared`` (docs/spots.md).
DEFAULT_PEAK_PARAMS: dict[str, float | int] = {
    "threshold": 7.0,
    "block": 16,
    "min_pixels": 2,
    "merge_radius": 4.0,
    "min_noise": 1.0,
    "saturation": SATURATION,
}

#: One line per parameter of :func:`find_peaks` (CLI ``--help``, service settings, docs).
PEAK_PARAM_HELP: dict[str, str] = {
    "threshold": "a spot pixel must exceed the local background by this many local noise sigmas",
    "block": "side of the background blocks, px: larger than a spot; background and noise are "
             "medians over 3 x 3 blocks",
    "min_pixels": "smallest number of connected pixels above the threshold (isolated hot pixels are "
                  "dropped)",
    "merge_radius": "maxima closer than this to a brighter one are the same spot, px",
    "min_noise": "floor of the local noise, ADU (noise-free or heavily quantized frames)",
    "saturation": "pixel value at which the detector saturates, ADU (an all-saturated frame has no "
                  "spots)",
}

def check_peak_params(params: dict | None) -> dict:
    """Complete ``params`` with :data:`DEFAULT_PEAK_PARAMS` and check every value.

    Returns
    -------
    dict
        All six parameters, typed (``block`` and ``min_pixels`` int, the others float;
        ``saturation`` may be None).

    Raises
    ------
    SettingsError
        An unknown name, or a value of the wrong type or range (one line naming it).
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(DEFAULT_PEAK_PARAMS))
    if unknown:
        raise SettingsError(f"unknown peak parameter(s) {unknown}; known: {sorted(DEFAULT_PEAK_PARAMS)}")
    out = {**DEFAULT_PEAK_PARAMS, **params}
    rules = {"threshold": (float, 0.0, False), "block": (int, 4, True), "min_pixels": (int, 1, True),
             "merge_radius": (float, 0.0, True), "min_noise": (float, 0.0, False),
             "saturation": (float, 0.0, False)}
    for name, (kind, lo, closed) in rules.items():
        v = out[name]
        if name == "saturation" and v is None:
            continue
        try:
            if isinstance(v, bool) or (kind is int and float(v) != int(v)):
                raise ValueError
            v = kind(v)
        except (TypeError, ValueError):
            what = "an integer" if kind is int else "a number"
            raise SettingsError(f"peak parameter {name} must be {what}, got {out[name]!r}") from None
        if not np.isfinite(v) or (v < lo if closed else v <= lo):
            raise SettingsError(f"peak parameter {name} must be {'>=' if closed else '>'} {lo}, got {v!r}")
        out[name] = v
    if out["block"] % 2:
        raise SettingsError(f"peak parameter block must be even, got {out['block']}")
    return out


#: A block holds enough pixels for its statistics from this fraction of its area on.
_MIN_BLOCK_FILL = 0.25


def _block_sums(x: np.ndarray, block: tuple[int, int], dtype) -> np.ndarray:
    """Sum ``x`` over ``(bh, bw)`` pixel blocks, partial blocks at the bottom/right included.

    Returns an array of shape ``(ceil(h / bh), ceil(w / bw))`` in ``dtype``; no padded copy of
    the frame is made (the partial strips are summed separately).
    """
    bh, bw = block
    h, w = x.shape
    hb0, wb0 = h // bh, w // bw
    hh, ww = hb0 * bh, wb0 * bw
    out = np.zeros((-(-h // bh), -(-w // bw)), dtype=dtype)
    if hb0 and wb0:
        out[:hb0, :wb0] = x[:hh, :ww].reshape(hb0, bh, wb0, bw).sum(axis=1, dtype=dtype).sum(axis=-1)
    if h > hh and wb0:
        out[hb0, :wb0] = x[hh:, :ww].reshape(h - hh, wb0, bw).sum(axis=0, dtype=dtype).sum(axis=-1)
    if w > ww and hb0:
        out[:hb0, wb0] = x[:hh, ww:].reshape(hb0, bh, w - ww).sum(axis=(1, 2), dtype=dtype)
    if h > hh and w > ww:
        out[hb0, wb0] = x[hh:, ww:].sum(dtype=dtype)
    return out


def _median3x3(a: np.ndarray) -> np.ndarray:
    """Median over each block's 3 x 3 neighbourhood, ignoring NaN (NaN where all nine are NaN).

    For an even number of valid neighbours the mean of the two middle values (numpy's median).
    """
    hb, wb = a.shape
    p = np.pad(a, 1, constant_values=np.nan)
    st = np.stack([p[i:i + hb, j:j + wb] for i in range(3) for j in range(3)])
    k = (~np.isnan(st)).sum(axis=0)
    st.sort(axis=0)  # NaN sort last
    lo = np.take_along_axis(st, np.maximum(k - 1, 0)[None] // 2, axis=0)[0]
    hi = np.take_along_axis(st, (k // 2)[None].clip(0, 8), axis=0)[0]
    return np.where(k > 0, 0.5 * (lo + hi), np.nan)


def _squares(x: np.ndarray):
    """Element-wise squares and the dtype to sum them in, exactly for 8/16-bit integer frames."""
    if x.dtype.kind in "ub" or (x.dtype.kind == "u" and x.dtype.itemsize <= 2):
        return np.square(x, dtype=np.uint32), np.uint64  # < 2**32 each, exact sums
    return np.square(x, dtype=np.float64), np.float64


def _block_stats(x: np.ndarray, valid: np.ndarray | None, block: int, min_noise: float):
    """Local background and noise per block (float64 block maps), see :func:`estimate_background`.

    The statistics use every other row of the frame (rows 0, 2, 4, ...: half of each block's
    pixels, enough for a mean and a variance and half the passes over the frame). The sums are
    exact for integer frames up to 16 bits, so the torch port finds the same peaks.
    """
    x = x[::2]
    if valid is not None:
        valid = valid[::2]
    h, w = x.shape
    half = block // 2
    if valid is None:
        rows = np.minimum(half, h - half * np.arange(-(-h // half)))
        cols = np.minimum(block, w - block * np.arange(-(-w // block)))
        n = np.outer(rows, cols).astype(np.float64)
        xv = x
    else:
        n = _block_sums(valid, (half, block), np.float64)
        xv = x * valid if x.dtype.kind in "iu" else np.where(valid, x, 0)
    block = (half, block)
    s1 = _block_sums(xv, block, np.float64)
    sq, acc = _squares(xv)
    s2 = _block_sums(sq, block, acc).astype(np.float64)
    del sq
    enough = n >= max(8.0, _MIN_BLOCK_FILL * block[0] * block[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(enough, s1 / n, np.nan)
        var = np.where(enough, s2 / n - mean * mean, np.nan)
    bg = _median3x3(mean)
    noise = np.maximum(np.sqrt(np.maximum(_median3x3(var), 0.0)), float(min_noise))
    return bg, np.where(np.isnan(bg), np.nan, noise)


def estimate_background(frame, block: int = 16, *, mask=None, min_noise: float = 1.0):
    """Local background level and noise of a frame, per ``block x block`` pixel block.

    Per block: mean and variance of its unmasked pixels in every other row (blocks with less than a
    quarter of those usable have none); then, for each block, the median of those over its 3 x 3
    neighbourhood. A spot raises the mean and the variance of the one to four blocks it touches, so
    the median of nine ignores it while the level and the Poisson noise of a broad hump (hundreds of
    pixels) are followed. Partial blocks at the bottom/right edge use their own pixels.

    Parameters
    ----------
    frame
        2D frame, ADU.
    block
        Block side, px, even (spots must be smaller; see docs/spots.md for streaks).
    mask
        Optional bool array of the frame's shape, True where a pixel is not to be used.
    min_noise
        Floor of the noise, ADU.

    Returns
    -------
    background, noise : numpy.ndarray
        float64, shape ``(ceil(rows / block), ceil(cols / block))``, ADU; NaN where no block within
        the 3 x 3 neighbourhood has usable pixels.
    """
    x = np.asarray(frame)
    valid = None if mask is None else ~np.asarray(mask, dtype=bool)
    return _block_stats(x, valid, int(block), min_noise)


def _integer_level(level: np.ndarray, dtype) -> np.ndarray:
    """For an integer frame, ``floor(level)`` in the frame's dtype: ``x > level`` iff ``x > floor(level)``.

    Comparing in the frame's own integer type avoids converting every pixel to float64; the result
    is the same. Float frames, and levels below the dtype's range, keep the float64 level.
    """
    dt = np.dtype(dtype)
    if dt.kind not in "iu":
        return level
    info = np.iinfo(dt)
    fl = np.floor(level)
    if (fl < info.min).any():
        return level
    return np.minimum(fl, info.max).astype(dt)


def _above(x: np.ndarray, level: np.ndarray, block: int) -> np.ndarray:
    """Bool (h, w): ``x > level`` of its block, compared in block layout (no upsampled level map)."""
    h, w = x.shape
    hb0, wb0 = h // block, w // block
    hh, ww = hb0 * block, wb0 * block
    out = np.empty((h, w), dtype=bool)
    if hb0 and wb0:
        out[:hh, :ww] = (x[:hh, :ww].reshape(hb0, block, wb0, block)
                         > level[:hb0, None, :wb0, None]).reshape(hh, ww)
    if h > hh and wb0:
        strip = x[hh:, :ww].reshape(h - hh, wb0, block)
        out[hh:, :ww] = (strip > level[hb0, None, :wb0, None]).reshape(-1, ww)
    if w > ww and hb0:
        strip = x[:hh, ww:].reshape(hb0, block, w - ww)
        out[:hh, ww:] = (strip > level[:hb0, wb0, None, None]).reshape(hh, -1)
    if h > hh and w > ww:
        out[hh:, ww:] = x[hh:, ww:] > level[hb0, wb0]
    return out


def find_peaks(
    frame,
    *,
    threshold: float = 7.0,
    block: int = 16,
    min_pixels: int = 2,
    merge_radius: float = 4.0,
    min_noise: float = 1.0,
    saturation: float | None = SATURATION,
    mask=None,
    validate: bool = True,
) -> np.ndarray:
    """Find the initial peak ``s`` of every spot: the brightest pixel of each significant component.

    Recipe (each step a whole-array operation, in this order):

    1. Background ``B`` and noise ``N`` per ``block x block`` block (:func:`estimate_background`):
       mean and variance of the block's unmasked pixels, then the median of each over the 3 x 3
       neighbouring blocks; ``N = max(sqrt(variance), min_noise)``.
    2. Candidate pixels: ``frame > B + threshold * N`` of their block, and not masked.
    3. Connected components of the candidates with 8-connectivity (those of
       ``scipy.ndimage.label`` with a 3 x 3 structure; computed on the candidates only).
    4. Drop components with fewer than ``min_pixels`` pixels (isolated hot pixels, zingers).
    5. Brightest pixel of each component: among the candidates, sorted by (label, -value, flat
       index), the first of each label (ties go to the lowest flat index).
    6. Merge close maxima: a candidate is dropped if a brighter one (ties: lower flat index) lies
       within ``merge_radius`` pixels (Euclidean). Unlike a greedy sweep, a candidate dropped this
       way still suppresses fainter ones.
    7. Sort the result by decreasing peak value (ties by flat index).

    Parameters
    ----------
    frame
        2D detector frame (integer or float), ADU (dark-subtracted and flat-fielded if wanted:
        :func:`laue_live.spots.correct_frame`).
    threshold
        Height above the local background, in units of the local noise, that a pixel must exceed to
        belong to a spot. 5 finds >= 98% of LaueTools' indexed spots on the real frames of
        ``../shared`` with about as many spots as LaueTools lists (docs/spots.md).
    block
        Background block side, px (even).
    min_pixels
        Smallest component kept, in pixels above threshold.
    merge_radius
        Maxima closer than this to a brighter one are merged into it, px. ``0`` disables.
    min_noise
        Floor of the local noise, ADU.
    saturation
        Frames whose every pixel is at or above this value (ADU) are all-saturated and hold no
        spots; ``None`` disables the check.
    mask
        Optional bool array of the frame's shape, True for pixels that are not to be used (no active
        area, dead, hot, beamstop): they neither enter the background nor become spot pixels.
    validate
        Check the frame first (:func:`validate_frame`); raises :class:`~laue_live.FrameError`.

    Returns
    -------
    numpy.ndarray
        int64, shape (N, 2): 0-based (row, col) of each spot's brightest pixel, brightest spot first.
    """
    frame = validate_frame(frame) if validate else np.asarray(frame)
    empty = np.zeros((0, 2), dtype=np.int64)
    if saturation is not None and frame.min() >= saturation:
        log.warning("all-saturated frame (every pixel >= %g ADU): no peaks", saturation)
        return empty
    h, w = frame.shape
    valid = None if mask is None else ~np.asarray(mask, dtype=bool)
    bg, noise = _block_stats(frame, valid, block, min_noise)
    level = np.nan_to_num(bg + float(threshold) * noise, nan=np.inf)
    cand = _above(frame, _integer_level(level, frame.dtype), block)
    if valid is not None:
        cand &= valid
    idx = np.flatnonzero(cand)
    if idx.size == 0:
        return empty
    lab = _components(idx, h, w)
    val = frame.ravel()[idx].astype(np.float64)
    if min_pixels > 1:
        keep = np.bincount(lab)[lab] >= min_pixels
        idx, lab, val = idx[keep], lab[keep], val[keep]
        if idx.size == 0:
            return empty
    # brightest pixel of each component, ties to the lowest flat index (idx is sorted, so the first
    # pixel at the component's maximum in idx order is it)
    nlab = int(lab.max()) + 1
    vmax = np.full(nlab, -np.inf)
    np.maximum.at(vmax, lab, val)
    at_max = np.flatnonzero(val == vmax[lab])
    labs, first = np.unique(lab[at_max], return_index=True)
    best = idx[at_max[first]]
    best_val = vmax[labs]
    # brightest first (ties by flat index): suppression then only looks "up" the list
    o = np.lexsort((best, -best_val))
    best = best[o]
    rc = np.stack(np.unravel_index(best, (h, w)), axis=1).astype(np.int64)
    if merge_radius > 0 and len(rc) > 1:
        rc = rc[_suppress(rc, merge_radius)]
    return rc


def _components(idx: np.ndarray, h: int, w: int) -> np.ndarray:
    """8-connected component label (0-based) of each masked pixel, from the masked pixels only.

    ``idx`` are the sorted flat indices of the masked pixels. Each pixel is linked to its masked
    neighbours right, down-left, down and down-right (found by binary search in ``idx``), and the
    components of that sparse graph are the components ``scipy.ndimage.label`` would give with a
    3 x 3 structure, at a cost proportional to the masked pixels rather than to the frame.
    """
    n = idx.size
    col = idx % w
    src, dst = [], []
    # right neighbour: the next masked pixel, if adjacent (idx is sorted)
    right = np.flatnonzero((idx[1:] == idx[:-1] + 1) & (col[:-1] < w - 1))
    src.append(right)
    dst.append(right + 1)
    # the three neighbours below are consecutive flat indices: one binary search finds them all
    pos = np.searchsorted(idx, idx + (w - 1))
    for off, col_ok in ((w - 1, col > 0), (w, None), (w + 1, col < w - 1)):
        p = np.minimum(pos, n - 1)
        hit = idx[p] == idx + off
        pos = pos + hit  # the next target can only sit after a hit
        if col_ok is not None:
            hit &= col_ok
        src.append(np.flatnonzero(hit))
        dst.append(p[hit])
    src, dst = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(src.size, dtype=np.int8), (src, dst)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _suppress(rc: np.ndarray, radius: float) -> np.ndarray:
    """Keep mask: drop each candidate within ``radius`` of an earlier (brighter) one."""
    pairs = cKDTree(rc).query_pairs(radius, output_type="ndarray")
    keep = np.ones(len(rc), dtype=bool)
    if len(pairs):
        keep[pairs.max(axis=1)] = False  # the later index of each close pair is the fainter one
    return keep
