"""The fast per-frame path: frames -> spot tables on one torch device (GPU or CPU), batched.

:class:`FramePipeline` runs peak search, cutouts and descriptors (exact fit or CNN) as whole-tensor
operations on the device, and optionally the double-spot step, and returns the same spot tables as
:func:`laue_live.analyze_frames`. Above :mod:`laue_live.doubles`, :mod:`laue_live.cnn` and
:mod:`laue_live.spots`, whose descriptor columns it computes on the device. See
``docs/performance.md`` for the design and the measured figures.
"""

from laue_live._xp import resolve_device
from laue_live.pipeline._cnn import CNNRunner, bucket_pieces, cpu_has_bf16
from laue_live.pipeline._cutouts import gather_cutouts
from laue_live.pipeline._peaks import (
    PeakBatch,
    find_peaks_torch,
    frames_to_float,
    peaks_from_float,
    uint16_to_float_,
)
from laue_live.pipeline._pipeline import HOST_FLOAT_COLUMNS, STAGES, FramePipeline
from laue_live.pipeline._syncs import count_host_syncs

__all__ = [
    "CNNRunner",
    "FramePipeline",
    "HOST_FLOAT_COLUMNS",
    "PeakBatch",
    "STAGES",
    "bucket_pieces",
    "count_host_syncs",
    "cpu_has_bf16",
    "find_peaks_torch",
    "frames_to_float",
    "gather_cutouts",
    "peaks_from_float",
    "resolve_device",
    "uint16_to_float_",
]
