"""The fast per-frame path: frames -> spot tables on one torch device (GPU or CPU), batched.

:class:`FramePipeline` runs peak search, cutouts and descriptors (exact fit or CNN) as whole-tensor
operations on the device and returns the same spot tables as :func:`laue_live.analyze_frames`.
See ``docs/performance.md`` for the design and the measured figures.
"""

from laue_live.pipeline._cnn import CNNRunner, bucket_pieces, cpu_has_bf16
from laue_live.pipeline._cutouts import gather_cutouts
from laue_live.pipeline._describe import HOST_FLOAT_COLUMNS, cnn_columns, fit_columns
from laue_live.pipeline._peaks import (
    PeakBatch,
    find_peaks_torch,
    frames_to_float,
    peaks_from_float,
    uint16_to_float_,
)
from laue_live.pipeline._pipeline import STAGES, FramePipeline, resolve_device
from laue_live.pipeline._syncs import count_host_syncs

__all__ = [
    "CNNRunner",
    "FramePipeline",
    "HOST_FLOAT_COLUMNS",
    "PeakBatch",
    "STAGES",
    "bucket_pieces",
    "cnn_columns",
    "count_host_syncs",
    "cpu_has_bf16",
    "find_peaks_torch",
    "fit_columns",
    "frames_to_float",
    "gather_cutouts",
    "peaks_from_float",
    "resolve_device",
    "uint16_to_float_",
]
