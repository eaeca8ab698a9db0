"""Frame -> spot table: peak search, cutouts, descriptors, in the schema of :mod:`laue_live._schema`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from laue_live._schema import conform_spot_table, empty_spot_table
from laue_live.spots._characterize import characterize
from laue_live.spots._cutouts import CUTOUT_SIZE, _check_peaks, cutout_edge_mask, extract_cutouts
from laue_live.spots._descriptors import is_good_spot
from laue_live.spots._peaks import find_peaks
from laue_live.spots._validate import validate_frame

__all__ = ["analyze_frame", "analyze_frames", "spot_table_from_descriptors"]

log = logging.getLogger(__name__)


def _peaks_of(frame: np.ndarray, peaks, peak_params: dict | None, frame_number: int) -> np.ndarray:
    if peaks is not None:
        return _check_peaks(peaks)
    params = dict(peak_params or {})
    saturation = params.get("saturation", 65535.0)
    lo, hi = frame.min(), frame.max()
    if saturation is not None and lo >= saturation:
        log.warning("frame %d is all saturated (every pixel >= %g ADU): empty spot table", frame_number,
                    saturation)
        return np.zeros((0, 2), dtype=np.int64)
    if lo == hi:
        log.warning("frame %d is constant (%g ADU everywhere): empty spot table", frame_number, float(lo))
        return np.zeros((0, 2), dtype=np.int64)
    p = find_peaks(frame, validate=False, **params)
    if len(p) == 0:
        log.warning("frame %d: no peaks above threshold: empty spot table", frame_number)
    return p


def spot_table_from_descriptors(desc, peaks: np.ndarray, edge: np.ndarray, frame_number: int = 0):
    """Assemble a schema spot table from a :func:`characterize` table and the peaks it came from.

    Parameters
    ----------
    desc
        DataFrame of descriptors, one row per peak.
    peaks
        (N, 2) int initial peaks ``s`` (row, col).
    edge
        (N,) bool: cutout padded at the frame edge.
    frame_number
        Value of the ``frame`` column.

    Returns
    -------
    pandas.DataFrame
        Exactly :data:`laue_live._schema.SPOT_COLUMNS`. ``good`` follows :func:`is_good_spot` and
        additionally requires a converged fit.
    """
    n = len(peaks)
    if n == 0:
        t = empty_spot_table()
        t.attrs.update(desc.attrs)
        return t
    d_row = desc["d_row"].to_numpy(np.float64)
    d_col = desc["d_col"].to_numpy(np.float64)
    conv = desc["converged"].to_numpy(bool)
    df = desc.reset_index(drop=True).assign(
        frame=frame_number,
        spot=np.arange(n, dtype=np.int32),
        row0=peaks[:, 0],
        col0=peaks[:, 1],
        row=peaks[:, 0] + d_row,
        col=peaks[:, 1] + d_col,
        good=is_good_spot(desc["sim"].to_numpy(), d_row, d_col) & conv,
        edge=np.asarray(edge, dtype=bool),
        parent=-1,
        component=0,
    )
    out = conform_spot_table(df)
    out.attrs.update(desc.attrs)
    return out


def analyze_frame(frame, method: str = "fit", *, frame_number: int = 0, peaks=None,
                  peak_params: dict | None = None, device=None, doubles: bool = False, doubles_model=None,
                  **kw):
    """Spot table of one frame: peak search, 32 x 32 cutouts, descriptors.

    Parameters
    ----------
    frame
        2D detector frame (integer or float), ADU.
    method
        ``"fit"`` (exact Gaussian fit) or ``"cnn"``; see :func:`characterize`.
    frame_number
        Value of the ``frame`` column.
    peaks
        Optional (N, 2) initial peaks (row, col) to use instead of :func:`find_peaks`.
    peak_params
        Keyword arguments of :func:`find_peaks` (``threshold``, ``block``, ...).
    device
        torch device for the fit / CNN.
    doubles
        Describe overlapping spots: each spot the single-spot model calls bad is examined by the
        double-spot model (:mod:`laue_live.doubles`); a double becomes two rows sharing ``parent``,
        ``component`` 1 and 2, each with its own descriptors. Off by default (see docs/doubles.md).
    doubles_model
        Path or name of the double-spot model (default: the shipped one).
    **kw
        Passed to :func:`characterize` (``sim_variant``, ``max_iter``, ``model``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per spot, columns exactly :data:`laue_live._schema.SPOT_COLUMNS` (0-based positions,
        pixel centres at integers). Empty (with those columns) for a constant, all-saturated or
        spotless frame, with a logged warning.

    Raises
    ------
    FrameError
        Wrong dtype, dimensionality, size, NaN/Inf (see :func:`validate_frame`), or bad ``peaks``.
    """
    return analyze_frames([frame], method, frame_numbers=[frame_number],
                          peaks=None if peaks is None else [peaks], peak_params=peak_params, device=device,
                          doubles=doubles, doubles_model=doubles_model, **kw)[0]


def analyze_frames(frames: Sequence, method: str = "fit", *, frame_numbers: Sequence[int] | None = None,
                   peaks: Sequence | None = None, peak_params: dict | None = None, device=None,
                   doubles: bool = False, doubles_model=None, **kw):
    """Spot tables of several frames, with the cutouts of all frames characterized in one batch.

    Parameters
    ----------
    frames
        Sequence of 2D frames.
    method, peak_params, device, doubles, doubles_model, **kw
        As in :func:`analyze_frame`.
    frame_numbers
        ``frame`` column value of each frame (default 0, 1, 2, ...).
    peaks
        Optional sequence of (N_i, 2) peak arrays, one per frame.

    Returns
    -------
    list of pandas.DataFrame
        One schema spot table per frame, in order.

    Raises
    ------
    FrameError
        If any frame is invalid (checked before any work is done).
    """
    frames = [validate_frame(f) for f in frames]
    numbers = list(range(len(frames))) if frame_numbers is None else [int(k) for k in frame_numbers]
    if len(numbers) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(numbers)} frame numbers")
    if peaks is not None and len(peaks) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(peaks)} peak arrays")
    all_peaks = [_peaks_of(f, None if peaks is None else peaks[i], peak_params, numbers[i])
                 for i, f in enumerate(frames)]
    cut = [extract_cutouts(f, p, CUTOUT_SIZE) for f, p in zip(frames, all_peaks, strict=False)]
    edges = [cutout_edge_mask(f.shape, p, CUTOUT_SIZE) for f, p in zip(frames, all_peaks, strict=False)]
    counts = [len(p) for p in all_peaks]
    stack = np.concatenate(cut) if cut else np.zeros((0, CUTOUT_SIZE, CUTOUT_SIZE), np.float32)
    if len(stack) == 0:
        if method not in ("fit", "cnn"):
            raise ValueError(f"unknown method {method!r}: expected 'fit' or 'cnn'")
        return [empty_spot_table().assign(frame=np.asarray([], np.int64)) for _ in frames]
    desc = characterize(stack, method, device=device, **kw)
    tables = []
    start = 0
    for i, n in enumerate(counts):
        part = desc.iloc[start:start + n]
        part.attrs = dict(desc.attrs)
        table = spot_table_from_descriptors(part, all_peaks[i], edges[i], numbers[i])
        if doubles and n:
            # lazy: the double-spot network is loaded only by callers that ask for it
            from laue_live.doubles import describe_doubles

            table = describe_doubles(cut[i], table, model=doubles_model, device=device or "cpu")
        tables.append(table)
        start += n
    return tables
