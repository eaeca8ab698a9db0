"""Frame -> spot table: peak search, cutouts, descriptors, in the schema of :mod:`laue_live._schema`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from laue_live._schema import conform_spot_table, empty_spot_table
from laue_live.spots._characterize import characterize
from laue_live.spots._cutouts import CUTOUT_SIZE
from laue_live.spots._descriptors import is_good_spot
from laue_live.spots._prepare import prepare_frame
from laue_live.spots._table import merge_same_spot_rows, spot_angles
from laue_live.spots._validate import validate_frame

__all__ = ["analyze_frame", "analyze_frames", "spot_table_from_descriptors"]

log = logging.getLogger(__name__)


def spot_table_from_descriptors(desc, peaks: np.ndarray, edge: np.ndarray, frame_number: int = 0, *,
                                masked: np.ndarray | None = None, calibration=None):
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
    masked
        (N,) bool: the cutout holds masked pixels (default: none).
    calibration
        :class:`laue_live.geometry.Calibration` for ``two_theta`` and ``chi`` (NaN without).

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
        masked=np.zeros(n, bool) if masked is None else np.asarray(masked, dtype=bool),
        two_theta=np.nan,
        chi=np.nan,
        parent=-1,
        component=0,
    )
    df["two_theta"], df["chi"] = spot_angles(df["row"], df["col"], calibration)
    out = conform_spot_table(df)
    out.attrs.update(desc.attrs)
    return out


def analyze_frame(frame, method: str = "fit", *, frame_number: int = 0, peaks=None,
                  peak_params: dict | None = None, device=None, doubles: bool = False, doubles_model=None,
                  corrections=None, calibration=None, **kw):
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
        Keyword arguments of :func:`find_peaks` (``threshold``, ``block``, ...; checked by
        :func:`check_peak_params`).
    corrections
        :class:`FrameCorrections` (dark, flat field, pixel mask); default: the automatic mask only
        (0-reading and hot pixels).
    calibration
        :class:`laue_live.geometry.Calibration`: fills ``two_theta`` and ``chi`` (NaN without).
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
        pixel centres at integers), no two single spots within 1.5 px of each other
        (:func:`merge_same_spot_rows`). Empty (with those columns) for a constant, all-saturated or
        spotless frame, with a logged warning.

    Raises
    ------
    FrameError
        Wrong dtype, dimensionality, size, NaN/Inf (see :func:`validate_frame`), bad ``peaks``,
        corrections of another shape, or every pixel masked.
    """
    return analyze_frames([frame], method, frame_numbers=[frame_number],
                          peaks=None if peaks is None else [peaks], peak_params=peak_params, device=device,
                          doubles=doubles, doubles_model=doubles_model, corrections=corrections,
                          calibration=calibration, **kw)[0]


def analyze_frames(frames: Sequence, method: str = "fit", *, frame_numbers: Sequence[int] | None = None,
                   peaks: Sequence | None = None, peak_params: dict | None = None, device=None,
                   doubles: bool = False, doubles_model=None, corrections=None, calibration=None, **kw):
    """Spot tables of several frames, with the cutouts of all frames characterized in one batch.

    Parameters
    ----------
    frames
        Sequence of 2D frames.
    method, peak_params, device, doubles, doubles_model, corrections, calibration, **kw
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
    prep = [prepare_frame(f, peaks=None if peaks is None else peaks[i], peak_params=peak_params,
                          corrections=corrections, frame_number=numbers[i]) for i, f in enumerate(frames)]
    cut = [p.cutouts for p in prep]
    counts = [len(p.peaks) for p in prep]
    stack = np.concatenate(cut) if cut else np.zeros((0, CUTOUT_SIZE, CUTOUT_SIZE), np.float32)
    if len(stack) == 0:
        if method not in ("fit", "cnn"):
            raise ValueError(f"unknown method {method!r}: expected 'fit' or 'cnn'")
        return [empty_spot_table().assign(frame=np.asarray([], np.int64)) for _ in frames]
    pmask = None
    if any(p.pixel_mask is not None for p in prep):
        pmask = np.concatenate([p.pixel_mask if p.pixel_mask is not None else np.zeros(p.cutouts.shape, bool)
                                for p in prep])
    if method == "fit":
        kw["mask"] = pmask
    desc = characterize(stack, method, device=device, **kw)
    tables = []
    start = 0
    for i, n in enumerate(counts):
        part = desc.iloc[start:start + n]
        part.attrs = dict(desc.attrs)
        table = spot_table_from_descriptors(part, prep[i].peaks, prep[i].edge, numbers[i],
                                            masked=prep[i].masked, calibration=calibration)
        table, kept = merge_same_spot_rows(table, shape=prep[i].shape, mask=prep[i].mask, return_kept=True)
        if doubles and n:
            # lazy: the double-spot network is loaded only by callers that ask for it
            from laue_live.doubles import describe_doubles

            table = describe_doubles(cut[i][kept], table, model=doubles_model, device=device or "cpu")
            if calibration is not None:
                table["two_theta"], table["chi"] = spot_angles(table["row"], table["col"], calibration)
        tables.append(table)
        start += n
    return tables

