"""The whole per-frame path on one torch device: frames in, spot tables out.

Per batch of frames: host ``uint16`` -> device (pinned staging buffers and a copy stream on CUDA,
so that the copy of batch ``i + 1`` overlaps the compute of batch ``i``) -> float conversion and
block background -> threshold and sparse connected components -> cutouts gathered on the device ->
exact fit or CNN -> one descriptor block ``(N, 18)`` float64 (12 descriptors, frame/row/col, 3
flags) and the per-frame counts back to the host in two copies -> one schema DataFrame per frame
(:func:`laue_live.spots.spot_table_from_descriptors`, as on the CPU path) -> with ``doubles=True``,
the double-spot step of :mod:`laue_live.doubles` on each frame's table.
There is no per-spot Python; the host waits on the device only where a size is data-dependent
(the number of masked pixels and of peaks, the convergence of the labelling and of the fit): with
the CNN 7 times per batch (see :mod:`laue_live.pipeline._peaks`; the exact fit adds its own),
never per frame when frames are batched.

The descriptor columns are those of the CPU path, written once against the array layer
(:func:`laue_live.spots.fit_columns`, :func:`laue_live.cnn.cnn_columns`), so the results equal
:func:`laue_live.analyze_frames` (same peaks, same cutouts, same descriptors up to float rounding;
the CNN in reduced precision differs by a few 1e-3): ``tests/pipeline``.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from laue_live._errors import FrameError
from laue_live._rules import SATURATION
from laue_live._schema import empty_spot_table
from laue_live._xp import resolve_device
from laue_live.cnn import cnn_columns, polish_valid, start_from_desc
from laue_live.doubles import describe_doubles, get_double_predictor
from laue_live.pipeline._cnn import CNNRunner
from laue_live.pipeline._cutouts import gather_cutouts
from laue_live.pipeline._peaks import frames_to_float, peaks_from_float
from laue_live.spots import (
    DESCRIPTOR_COLUMNS,
    FLAG_COLUMNS,
    FrameCorrections,
    check_peak_params,
    fit_columns,
    fit_gaussians,
    merge_same_spot_rows,
    spot_angles,
    spot_table_from_descriptors,
    validate_frame,
)

__all__ = ["FramePipeline", "HOST_FLOAT_COLUMNS", "STAGES"]

log = logging.getLogger(__name__)

#: Stage names of :attr:`FramePipeline.timings` (seconds per batch, recorded with ``profile=True``).
STAGES = ("h2d", "peaks", "cutouts", "describe", "d2h", "table")

#: Float columns of the descriptor block, in the order of the (N, 12) float64 array sent to the host.
HOST_FLOAT_COLUMNS = tuple(c for c in DESCRIPTOR_COLUMNS if c not in FLAG_COLUMNS)


@dataclass
class _Staged:
    """A batch of frames on its way to (or on) the device."""

    numbers: list[int]
    errors: dict[int, str]  # position in the batch -> why that frame failed
    good: list[int]  # positions of the frames that are in ``tensor``
    tensor: torch.Tensor | None = None
    event: Any = None
    masks: list = field(default_factory=list)  # host pixel mask (or None) of each good frame
    mask: torch.Tensor | None = None  # (B, H, W) bool on the device, None when no frame has one


@dataclass
class _Result:
    staged: _Staged
    host: tuple[torch.Tensor, ...] | None = None  # block, counts (maybe still copying)
    cutouts: torch.Tensor | None = None  # on the host, for the double-spot step (maybe still copying)
    event: Any = None
    timings: dict[str, float] = field(default_factory=dict)


class FramePipeline:
    """Frames -> spot tables on one torch device, batched and pipelined.

    Parameters
    ----------
    method
        ``"fit"`` (exact Gaussian fit, :func:`laue_live.spots.fit_gaussians`) or ``"cnn"``.
    device
        ``"auto"`` (CUDA if present), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a torch device.
    model
        CNN model file (``method="cnn"``); None for the shipped default.
    precision
        CNN precision: ``"auto"`` (fp16 on CUDA; on the CPU the int8 network when the model file is
        quantizable, else bf16 on CPUs with AVX-512 BF16, else fp32), ``"fp32"``, ``"bf16"``,
        ``"int8"``, ``"fp16"``. See :class:`laue_live.pipeline.CNNRunner`.
    batch_frames
        Frames per device batch (default: 1 on the CPU, where it gives the lowest latency; 16 on
        CUDA, where it amortises launches and synchronisations).
    peak_params
        Overrides of the peak-search parameters of :func:`laue_live.spots.find_peaks`
        (``threshold``, ``block``, ``min_pixels``, ``merge_radius``, ``min_noise``, ``saturation``).
    corrections
        :class:`laue_live.spots.FrameCorrections` (dark, flat field, pixel mask), applied on the
        host as :func:`laue_live.analyze_frames` does; default: the automatic mask only.
    calibration
        :class:`laue_live.geometry.Calibration` for the ``two_theta`` and ``chi`` columns.
    sim_variant
        ``"background"`` (default) or ``"raw"`` Sim0 (fit only; see :func:`laue_live.characterize`).
    fit_options
        Passed to :func:`laue_live.spots.fit_gaussians` (``dtype``, ``max_iter``, ``xtol``, ``ftol``).
    doubles
        Describe overlapping spots as :func:`laue_live.analyze_frames` does with ``doubles=True``:
        each spot the single-spot model calls bad is examined by the double-spot model
        (:func:`laue_live.doubles.describe_doubles`, on ``device``), and a double becomes two rows.
        The cutouts of each batch then come back to the host too.
    doubles_model
        Weights of the double-spot model (default: the shipped one).
    on_error
        ``"raise"`` (default, as :func:`laue_live.analyze_frames`): an invalid frame raises
        :class:`~laue_live.FrameError`; ``"record"``: it gets an empty table whose
        ``attrs["error"]`` says why, and the other frames go on.
    profile
        Record per-stage wall times in :attr:`timings` (synchronises the device between stages:
        for benchmarks only).
    cnn
        An existing :class:`~laue_live.pipeline.CNNRunner` to share (method ``"cnn"``).
    cnn_compile
        ``torch.compile`` the CNN: ``"auto"`` (on CUDA in fp16/bf16), True or False; see
        :class:`~laue_live.pipeline.CNNRunner` (bucketed batch sizes, eager fallback).
    threads
        torch intra-op threads while a batch is analysed on the CPU (restored afterwards; None:
        leave torch's setting). Default 1: measured on the 2-core machines, 2 threads made the
        peak search up to 20x slower whenever other jobs held the cores (threads wait for each
        other at every operation), and the fit already runs on one thread. Run one pipeline per
        core (e.g. Dask workers) for throughput.

    Examples
    --------
    >>> pipe = FramePipeline("fit", device="cpu")          # doctest: +SKIP
    >>> tables = pipe.process([frame0, frame1])            # doctest: +SKIP
    >>> for table in pipe.stream(frame_iterator): ...      # doctest: +SKIP
    """

    def __init__(
        self,
        method: str = "fit",
        device: str | torch.device = "auto",
        *,
        model=None,
        precision: str = "auto",
        batch_frames: int | None = None,
        peak_params: dict | None = None,
        sim_variant: str = "background",
        fit_options: dict | None = None,
        doubles: bool = False,
        doubles_model=None,
        on_error: str = "raise",
        profile: bool = False,
        cnn=None,
        threads: int | None = 1,
        cnn_compile: bool | str = "auto",
        corrections: FrameCorrections | None = None,
        calibration=None,
    ) -> None:
        if method not in ("fit", "cnn"):
            raise ValueError(f"unknown method {method!r}: expected 'fit' or 'cnn'")
        if sim_variant not in ("background", "raw"):
            raise ValueError(f"sim_variant must be 'background' or 'raw', got {sim_variant!r}")
        if on_error not in ("raise", "record"):
            raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}")
        self.method = method
        self.device = resolve_device(device)
        self.peak_params = check_peak_params(peak_params)
        self.corrections = corrections if corrections is not None else FrameCorrections(
            saturation=self.peak_params["saturation"])
        self.calibration = calibration
        self.sim_variant = sim_variant
        self.fit_options = dict(fit_options or {})
        self.on_error = on_error
        self.profile = profile
        self.threads = threads
        self.batch_frames = int(batch_frames or (16 if self.device.type == "cuda" else 1))
        if self.batch_frames < 1:
            raise ValueError("batch_frames must be >= 1")
        self.cnn = None
        if method == "cnn":
            self.cnn = cnn or CNNRunner(self.device, model, precision=precision, compile=cnn_compile)
        self.doubles = bool(doubles)
        self._doubles = None
        if self.doubles:  # loaded now: a missing or broken model is a clear error here, not failed frames
            self._doubles = functools.partial(
                describe_doubles, predictor=get_double_predictor(doubles_model, device=str(self.device)),
                device=self.device)
        self.timings: dict[str, list[float]] = defaultdict(list)
        self._cuda = self.device.type == "cuda"
        #: Threads that copy a batch's frames into the pinned staging buffer (CUDA only).
        self.staging_threads = min(8, (os.cpu_count() or 1) // 2)
        if self._cuda:
            self._copy_stream = torch.cuda.Stream(self.device)
            self._compute_stream = torch.cuda.Stream(self.device)
            self._pinned: dict[tuple, list] = {}  # (shape, dtype) -> [buffers, events, next slot]

    # ----------------------------------------------------------------------------- public API
    def __call__(self, frames: Sequence[np.ndarray]) -> list:
        """Analyse frames: same as :meth:`process` (a pipeline can serve as a ``FrameAnalyzer`` function)."""
        return self.process(frames)

    def process(self, frames: Sequence[np.ndarray], frame_numbers: Sequence[int] | None = None) -> list:
        """Spot tables of ``frames``, one schema DataFrame per frame, in order.

        Parameters
        ----------
        frames
            2D frames (uint16 typical; any real dtype), ADU.
        frame_numbers
            Value of the ``frame`` column of each table (default 0, 1, 2, ...).

        Raises
        ------
        FrameError
            With ``on_error="raise"``, if any frame is invalid (checked before any work is done).
        """
        frames = list(frames)
        if frame_numbers is not None and len(frame_numbers) != len(frames):
            raise ValueError(f"{len(frames)} frames but {len(frame_numbers)} frame numbers")
        if self.on_error == "raise":
            for f in frames:
                validate_frame(f)
        return list(self.stream(frames, frame_numbers))

    def stream(self, frames: Iterable[np.ndarray], frame_numbers: Iterable[int] | None = None) -> Iterator:
        """Spot tables of an iterable of frames, yielded in order as they are done.

        Per step: the device starts on batch ``i``; the host builds and yields the tables of batch
        ``i - 1`` (finished meanwhile) while the device works; then it takes batch ``i + 1`` from
        the iterator and starts its copy to the device, which overlaps the rest of batch ``i``.
        So a frame's table comes out about one batch after the frame's batch was complete, and a
        live iterator is never asked for frames beyond the next batch. A batch is handed on as
        soon as it is full (a smaller one when the frame shape or dtype changes). An endless
        iterator works.
        """
        batches = self._batches(frames, frame_numbers)
        staged = self._stage(next(batches, None))
        pending: _Result | None = None
        while staged is not None:
            result = self._compute(staged)
            if pending is not None:
                yield from self._finish(pending)
            # taken only now, so that a live source is not waited for before batch i - 1 is out
            pending, staged = result, self._stage(next(batches, None))
        if pending is not None:
            yield from self._finish(pending)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per-stage totals of :attr:`timings`: ``{stage: {"batches", "total_s", "mean_ms"}}``."""
        return {
            k: {"batches": len(v), "total_s": float(sum(v)), "mean_ms": 1e3 * float(np.mean(v))}
            for k, v in self.timings.items()
            if v
        }

    def __repr__(self) -> str:
        extra = f", precision={self.cnn.precision!r}" if self.cnn is not None else ""
        return (
            f"FramePipeline({self.method!r}, device={str(self.device)!r}, "
            f"batch_frames={self.batch_frames}{extra})"
        )

    # ------------------------------------------------------------------------------ internals
    def _batches(self, frames, frame_numbers) -> Iterator[tuple[list[int], list]]:
        """Group frames into batches of ``batch_frames`` frames of one shape and dtype."""
        numbers = iter(frame_numbers) if frame_numbers is not None else None
        cur: list = []
        nums: list[int] = []
        key = None
        for i, f in enumerate(frames):
            num = int(next(numbers)) if numbers is not None else i
            try:
                arr = self._correct(validate_frame(f))
                k = (arr[0].shape, arr[0].dtype)
            except FrameError as exc:
                if self.on_error == "raise":
                    raise
                arr, k = exc, key  # a failed frame rides along with its neighbours
            if cur and k != key:
                yield nums, cur
                cur, nums = [], []
            cur.append(arr)
            nums.append(num)
            key = k
            if len(cur) >= self.batch_frames:  # hand a full batch on now, not when the next frame comes
                yield nums, cur
                cur, nums = [], []
        if cur:
            yield nums, cur

    def _correct(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Corrected image and pixel mask of a frame, as :func:`laue_live.spots.prepare_frame`."""
        lo, hi = arr.min(), arr.max()
        sat = self.peak_params["saturation"]
        if lo == hi or (sat is not None and lo >= sat):  # no spots: nothing to correct
            return arr, None
        return self.corrections.apply(arr)

    def _stage(self, batch) -> _Staged | None:
        if batch is None:
            return None
        numbers, items = batch
        errors = {i: str(a) for i, a in enumerate(items) if isinstance(a, Exception)}
        good = [i for i in range(len(items)) if i not in errors]
        st = _Staged(numbers=numbers, errors=errors, good=good)
        if not good:
            return st
        arrs = [items[i][0] for i in good]
        st.masks = [items[i][1] for i in good]
        t0 = time.perf_counter()
        if any(m is not None for m in st.masks):
            host_mask = torch.from_numpy(np.stack([np.zeros(a.shape, bool) if m is None else m
                                                   for a, m in zip(arrs, st.masks, strict=True)]))
            st.mask = host_mask.to(self.device) if self.device.type != "cpu" else host_mask
        if not self._cuda:
            with warnings.catch_warnings():  # read-only frames (e.g. decoded from 0MQ) are only read
                warnings.simplefilter("ignore", UserWarning)
                host = torch.from_numpy(
                    np.ascontiguousarray(arrs[0])[None] if len(arrs) == 1 else np.stack(arrs)
                )
            st.tensor = host if self.device.type == "cpu" else host.to(self.device)
        else:
            st.tensor, st.event = self._to_cuda(arrs)
        self._tick("h2d", t0, sync=False)
        return st

    def _to_cuda(self, arrs: list[np.ndarray]):
        """Copy frames through a reused pinned buffer on the copy stream; returns (tensor, event).

        Two pinned buffers of ``batch_frames`` frames per frame shape and dtype (a short batch uses
        the head of one), so that a varying number of good frames per batch never pins new memory.
        The host fills buffer ``k`` only once the copy that last read it has finished.
        """
        a0 = arrs[0]
        n = len(arrs)
        # torch moves uint16 as raw 16-bit words: int16 on the host, viewed back as uint16 on the
        # device, where frames_to_float widens it without any unsigned 16-bit kernel. Wider
        # unsigned frames (uint32/64: "shell" dtypes with few CUDA kernels) become int64 on the
        # host (exact below 2**63).
        if a0.dtype == np.uint16:
            dt = np.dtype(np.int16)
        elif a0.dtype.kind == "u" and a0.dtype.itemsize > 2:
            dt = np.dtype(np.int64)
        else:
            dt = a0.dtype
        key = (a0.shape, dt.str)
        slots = self._pinned.get(key)
        if slots is None:
            tdt = torch.from_numpy(np.zeros(0, dt)).dtype
            bufs = [
                torch.empty((max(self.batch_frames, n), *a0.shape), dtype=tdt, pin_memory=True)
                for _ in range(2)
            ]
            slots = self._pinned[key] = [bufs, [None, None], 0]
        bufs, events, k = slots
        slots[2] = 1 - k
        if events[k] is not None:
            events[k].synchronize()  # the copy that last read this buffer is done
        buf = bufs[k][:n]
        _fill_staging(buf.numpy(), arrs, dt, self.staging_threads)
        with torch.cuda.stream(self._copy_stream):
            dev = buf.to(self.device, non_blocking=True)
            ev = torch.cuda.Event()
            ev.record(self._copy_stream)
        events[k] = ev
        # allocated on the copy stream, used on the compute stream: the allocator must not hand the
        # block out again before the compute stream's work on it is done
        dev.record_stream(self._compute_stream)
        if a0.dtype == np.uint16:
            dev = dev.view(torch.uint16)
        return dev, ev

    def _tick(self, stage: str, t0: float, sync: bool = True) -> float:
        if self.profile:
            if sync and self._cuda:
                torch.cuda.synchronize(self.device)
            t = time.perf_counter()
            self.timings[stage].append(t - t0)
            return t
        return t0

    @torch.inference_mode()
    def _compute(self, st: _Staged) -> _Result:
        res = _Result(staged=st)
        if st.tensor is None:
            return res
        ctx = torch.cuda.stream(self._compute_stream) if self._cuda else _cpu_threads(self.threads)
        with ctx:
            if self._cuda:
                self._compute_stream.wait_event(st.event)
            t = time.perf_counter()
            p = self.peak_params
            x = st.tensor
            _, h, w = x.shape
            xp = frames_to_float(x, int(p["block"]))
            pk = peaks_from_float(
                xp,
                h,
                w,
                threshold=float(p["threshold"]),
                block=int(p["block"]),
                min_pixels=int(p["min_pixels"]),
                merge_radius=float(p["merge_radius"]),
                min_noise=float(p["min_noise"]),
                saturation=p["saturation"],
                mask=st.mask,
            )
            t = self._tick("peaks", t)
            cut, edge, cmask = gather_cutouts(xp, h, w, pk.frame, pk.row, pk.col, mask=st.mask)
            del xp
            t = self._tick("cutouts", t)
            floats, flags = self._describe(cut, cmask)
            masked = cmask.flatten(1).any(1) if cmask is not None else torch.zeros_like(edge)
            t = self._tick("describe", t)
            # one float64 block (descriptors, frame/row/col, flags: all exact in float64) and the
            # per-frame counts: two device-to-host copies per batch instead of four
            block = torch.cat(
                [floats, torch.stack([pk.frame, pk.row, pk.col], dim=1).to(floats.dtype),
                 flags.to(floats.dtype), edge[:, None].to(floats.dtype), masked[:, None].to(floats.dtype)],
                dim=1,
            )
            if self._cuda:
                # non_blocking to the CPU allocates the destination in pinned memory (torch's
                # _to_copy), so the copies really are asynchronous; _finish waits on the event
                # before reading them
                res.host = (block.to("cpu", non_blocking=True), pk.counts.to("cpu", non_blocking=True))
                if self.doubles:
                    res.cutouts = cut.to("cpu", non_blocking=True)
                res.event = torch.cuda.Event()
                res.event.record(self._compute_stream)
            else:
                res.host = (block, pk.counts)
                res.cutouts = cut if self.doubles else None
            self._tick("d2h", t)
        return res

    def _describe(self, cut: torch.Tensor, cmask: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        n = cut.shape[0]
        if n == 0:
            return (
                torch.zeros((0, len(HOST_FLOAT_COLUMNS)), dtype=torch.float64, device=cut.device),
                torch.zeros((0, 2), dtype=torch.bool, device=cut.device),
            )
        if self.method == "fit":
            sat = float(self.peak_params["saturation"] or SATURATION)
            fit = fit_gaussians(cut, device=self.device, mask=cmask, **self.fit_options)
            cols = fit_columns(cut, fit, sim_variant=self.sim_variant, saturation=sat, mask=cmask)
        else:
            desc = self.cnn(cut)
            if self.cnn.polish:  # the network's prediction starts a few iterations of the exact fit
                sat = float(self.peak_params["saturation"] or SATURATION)
                opts = {k: v for k, v in self.fit_options.items() if k not in ("max_iter", "start")}
                fit = fit_gaussians(cut, device=self.device, start=start_from_desc(desc, cut).double(),
                                    max_iter=self.cnn.polish, **opts)
                cols = fit_columns(cut, fit, sim_variant=self.sim_variant, saturation=sat)
                cols["converged"] = polish_valid(cols)
            else:
                cols = cnn_columns(desc, cut)
        floats = torch.stack([cols[c].to(torch.float64) for c in HOST_FLOAT_COLUMNS], dim=1)
        return floats, torch.stack([cols[c] for c in FLAG_COLUMNS], dim=1)

    def _finish(self, res: _Result) -> Iterator:
        st = res.staged
        t0 = time.perf_counter()
        tables: dict[int, Any] = {}
        if res.host is not None:
            if res.event is not None:
                res.event.synchronize()
            block, counts = (a.numpy() for a in res.host)
            cutouts = res.cutouts.numpy() if res.cutouts is not None else None
            nf = len(HOST_FLOAT_COLUMNS)
            floats, ints, flags = block[:, :nf], block[:, nf : nf + 3].astype(np.int64), block[:, nf + 3 :]
            bounds = np.concatenate([[0], np.cumsum(counts)])
            for j, pos in enumerate(st.good):
                a, b = bounds[j], bounds[j + 1]
                table = self._table(floats[a:b], ints[a:b], flags[a:b], st.numbers[pos])
                table, kept = merge_same_spot_rows(table, shape=tuple(st.tensor.shape[1:]), mask=st.masks[j],
                                                   return_kept=True)
                if self._doubles is not None and b > a:
                    table = self._doubles(cutouts[a:b][kept], table)
                    if self.calibration is not None:
                        table["two_theta"], table["chi"] = spot_angles(table["row"], table["col"],
                                                                       self.calibration)
                tables[pos] = table
        for pos, why in st.errors.items():
            t = empty_spot_table()
            t.attrs["error"] = why
            tables[pos] = t
        self._tick("table", t0, sync=False)
        for pos in range(len(st.numbers)):
            yield tables[pos]

    def _table(self, floats: np.ndarray, ints: np.ndarray, flags: np.ndarray, number: int):
        """One frame's schema table from its rows of the host block (float32 descriptors, as on the CPU)."""
        desc = {name: floats[:, k].astype(np.float32) for k, name in enumerate(HOST_FLOAT_COLUMNS)}
        desc.update(zip(FLAG_COLUMNS, flags[:, :2].astype(bool).T, strict=True))
        attrs = {"sim_variant": self.sim_variant} if self.method == "fit" else {}
        return spot_table_from_descriptors(desc, ints[:, 1:3], flags[:, 2].astype(bool), number, attrs=attrs,
                                           masked=flags[:, 3].astype(bool), calibration=self.calibration)


_POOL_LOCK = threading.Lock()
_POOLS: dict[int, ThreadPoolExecutor] = {}


def _fill_staging(host: np.ndarray, arrs: list[np.ndarray], dt: np.dtype, threads: int) -> None:
    """Copy frames into the (pinned) staging buffer ``host``, in ``threads`` threads for big batches.

    One thread copies ~7-10 GB/s, ~1 ms per BM32 frame: at thousands of frames per second the copy
    into pinned memory, not the bus, would limit. numpy releases the GIL while it copies, so frames
    copy in parallel where the machine has the memory bandwidth (no gain on this project's 2-core
    machines, measured; hence one thread there).
    """

    def put(j: int) -> None:
        a = arrs[j]
        host[j] = a.view(dt) if a.dtype == np.uint16 else a

    if threads <= 1 or len(arrs) < 2 or arrs[0].nbytes < (1 << 20):
        for j in range(len(arrs)):
            put(j)
        return
    with _POOL_LOCK:
        pool = _POOLS.get(threads)
        if pool is None:
            pool = _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="laue-staging")
    for f in [pool.submit(put, j) for j in range(len(arrs))]:
        f.result()  # re-raises a failed copy here


class _cpu_threads:
    """Run a block with ``n`` torch intra-op threads (None: leave the setting), then restore it."""

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.old: int | None = None

    def __enter__(self):
        if self.n is not None and torch.get_num_threads() != self.n:
            self.old = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            torch.set_num_threads(self.old)
        return False
