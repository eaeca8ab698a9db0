"""Frames -> spot tables on the CPU: peak search, cutouts, one descriptor call for all frames, doubles."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from laue_live._schema import empty_spot_table
from laue_live.describe._characterize import characterize, check_method, choose_method
from laue_live.describe._steps import Describer, DoublesStep, doubles_step
from laue_live.spots import (
    merge_same_spot_rows,
    prepare_frame,
    spot_angles,
    spot_table_from_descriptors,
    validate_frame,
)

__all__ = ["analyze_frame", "analyze_frames", "describe_frames"]


def describe_frames(frames: Sequence, describe: Describer, *, frame_numbers: Sequence[int] | None = None,
                    peaks: Sequence | None = None, peak_params: dict | None = None,
                    doubles: DoublesStep | None = None, corrections=None,
                    calibration=None) -> list[pd.DataFrame]:
    """Spot tables of several frames, the cutouts of all frames described in one call.

    Parameters
    ----------
    frames
        Sequence of 2D frames, ADU.
    describe
        Cutouts -> descriptor table (:class:`~laue_live.describe.Describer`), called once with the
        cutouts of every frame (not at all if no frame has a spot); with ``mask=`` (bool, same
        shape, True on masked detector pixels) when a cutout holds masked pixels.
    frame_numbers
        ``frame`` column value of each frame (default 0, 1, 2, ...).
    peaks
        Optional sequence of (N_i, 2) initial peaks, one per frame, instead of the peak search.
    peak_params
        Keyword arguments of :func:`laue_live.spots.find_peaks`.
    doubles
        Optional :class:`~laue_live.describe.DoublesStep`, applied to each frame's table that has spots.
    corrections
        :class:`laue_live.spots.FrameCorrections` (dark, flat field, pixel mask); default: the
        automatic mask only (0-reading and hot pixels).
    calibration
        :class:`laue_live.geometry.Calibration`: fills ``two_theta`` and ``chi`` (NaN without).

    Returns
    -------
    list of pandas.DataFrame
        One schema spot table per frame, in order; one row per spot
        (:func:`laue_live.spots.merge_same_spot_rows`: no two single spots within 1.5 px, none off
        the detector).

    Raises
    ------
    FrameError
        If any frame is invalid (checked before any work is done), bad ``peaks``, corrections of
        another shape, or every pixel masked.
    """
    frames = [validate_frame(f) for f in frames]
    numbers = list(range(len(frames))) if frame_numbers is None else [int(k) for k in frame_numbers]
    if len(numbers) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(numbers)} frame numbers")
    if peaks is not None and len(peaks) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(peaks)} peak arrays")
    prep = [prepare_frame(f, peaks=None if peaks is None else peaks[i], peak_params=peak_params,
                          corrections=corrections, frame_number=numbers[i]) for i, f in enumerate(frames)]
    if sum(len(p.peaks) for p in prep) == 0:
        return [empty_spot_table().assign(frame=np.asarray([], np.int64)) for _ in frames]
    cut = np.concatenate([p.cutouts for p in prep])
    if any(p.pixel_mask is not None for p in prep):
        pmask = np.concatenate([np.zeros(p.cutouts.shape, bool) if p.pixel_mask is None else p.pixel_mask
                                for p in prep])
        desc = describe(cut, mask=pmask)
    else:
        desc = describe(cut)
    tables = []
    start = 0
    for i, p in enumerate(prep):
        n = len(p.peaks)
        table = spot_table_from_descriptors(desc.iloc[start:start + n], p.peaks, p.edge, numbers[i],
                                            attrs=desc.attrs, masked=p.masked, calibration=calibration)
        table, kept = merge_same_spot_rows(table, shape=p.shape, mask=p.mask, return_kept=True)
        if doubles is not None and n:
            table = doubles(p.cutouts[kept], table)
            if calibration is not None:
                table["two_theta"], table["chi"] = spot_angles(table["row"], table["col"], calibration)
        tables.append(table)
        start += n
    return tables


def analyze_frame(frame, method: str = "fit", *, frame_number: int = 0, peaks=None,
                  peak_params: dict | None = None, device=None, doubles: bool = False, doubles_model=None,
                  corrections=None, calibration=None, **kw) -> pd.DataFrame:
    """Spot table of one frame: peak search, 32 x 32 cutouts, descriptors.

    Parameters
    ----------
    frame
        2D detector frame (integer or float), ADU.
    method
        ``"fit"`` (exact Gaussian fit) or ``"cnn"``; see :func:`laue_live.characterize`.
    frame_number
        Value of the ``frame`` column.
    peaks
        Optional (N, 2) initial peaks (row, col) to use instead of :func:`laue_live.find_peaks`.
    peak_params
        Keyword arguments of :func:`laue_live.find_peaks` (``threshold``, ``block``, ...; checked by
        :func:`laue_live.spots.check_peak_params`).
    corrections
        :class:`laue_live.spots.FrameCorrections` (dark, flat field, pixel mask); default: the
        automatic mask only (0-reading and hot pixels).
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
        Passed to :func:`laue_live.characterize` (``sim_variant``, ``max_iter``, ``model``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per spot, columns exactly :data:`laue_live._schema.SPOT_COLUMNS` (0-based positions,
        pixel centres at integers). Empty (with those columns) for a constant, all-saturated or
        spotless frame, with a logged warning.

    Raises
    ------
    FrameError
        Wrong dtype, dimensionality, size, NaN/Inf (see :func:`laue_live.validate_frame`), or bad
        ``peaks``.
    """
    return analyze_frames([frame], method, frame_numbers=[frame_number],
                          peaks=None if peaks is None else [peaks], peak_params=peak_params, device=device,
                          doubles=doubles, doubles_model=doubles_model, corrections=corrections,
                          calibration=calibration, **kw)[0]


def analyze_frames(frames: Sequence, method: str = "fit", *, frame_numbers: Sequence[int] | None = None,
                   peaks: Sequence | None = None, peak_params: dict | None = None, device=None,
                   doubles: bool = False, doubles_model=None, corrections=None, calibration=None,
                   **kw) -> list[pd.DataFrame]:
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
    ValueError
        Unknown ``method``.
    FrameError
        If any frame is invalid (checked before any work is done).
    """
    check_method(method)
    if method == "auto":
        method = choose_method(device, kw.get("model"))
        if method == "fit":
            kw = {k: v for k, v in kw.items() if k not in ("model", "polish")}
    describe = functools.partial(characterize, method=method, device=device, **kw)
    step = doubles_step(doubles_model, device) if doubles else None
    return describe_frames(frames, describe, frame_numbers=frame_numbers, peaks=peaks,
                           peak_params=peak_params, doubles=step, corrections=corrections,
                           calibration=calibration)
