"""GPU out-of-memory fallback: split the batch, then analyse the frame on the CPU; never drop it.

A batch of large frames (or a frame with very many spots) may not fit in GPU memory next to other
work. :class:`OOMFallbackAnalyzer` wraps a :class:`~laue_live.analysis.FrameAnalyzer`: on
``torch.cuda.OutOfMemoryError`` (or a ``RuntimeError`` whose message says "out of memory", as
older torch and some backends raise) it frees the cache and analyses the two halves of the batch
separately, recursively; a single frame that still does not fit is analysed by a CPU copy of the
analyser. Every fallback is logged (WARNING) and counted in :attr:`OOMFallbackAnalyzer.stats`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from laue_live.analysis._analyzer import FrameAnalyzer

__all__ = ["OOMFallbackAnalyzer", "is_out_of_memory", "runs_on_cuda"]

logger = logging.getLogger(__name__)


def is_out_of_memory(exc: BaseException) -> bool:
    """Tell whether ``exc`` is a GPU out-of-memory error (``torch.cuda.OutOfMemoryError`` or its message)."""
    try:
        import torch  # lazy: ~1 s to import; the analysis package must stay cheap to import

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _empty_cache() -> None:
    try:
        import torch  # lazy: ~1 s to import; the analysis package must stay cheap to import

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - best effort only
        pass


class OOMFallbackAnalyzer(FrameAnalyzer):
    """A frame analyser that survives GPU out-of-memory errors (split batch, then CPU).

    Parameters
    ----------
    inner
        The analyser to protect (usually on ``device="cuda"``).
    cpu
        Analyser used for a single frame that does not fit; default: a copy of ``inner`` on
        ``device="cpu"`` (same method, model and parameters).
    """

    def __init__(self, inner: FrameAnalyzer, cpu: FrameAnalyzer | Callable | None = None) -> None:
        # Same metadata as the wrapped analyser: the analysis run records the method and model.
        self.__dict__.update({k: v for k, v in inner.__dict__.items()})
        self.inner = inner
        if cpu is None:
            # numpy pipeline: the CPU default (lower call overhead than torch on CPU)
            cpu = FrameAnalyzer(inner.method, model=inner.model, device="cpu", pipeline="numpy",
                                **inner.params)
        self.cpu = cpu
        self.stats: dict[str, int] = {"oom": 0, "splits": 0, "cpu_frames": 0}

    def __call__(self, frames: Sequence[Any]) -> list:
        """Spot tables of ``frames``; GPU OOM errors are handled, other errors propagate."""
        frames = list(frames)
        try:
            return list(self.inner(frames))
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            self.stats["oom"] += 1
            _empty_cache()
            if len(frames) > 1:
                half = len(frames) // 2
                self.stats["splits"] += 1
                logger.warning("GPU out of memory on a batch of %d frames: splitting it in %d + %d",
                               len(frames), half, len(frames) - half)
                return self(frames[:half]) + self(frames[half:])
            self.stats["cpu_frames"] += 1
            logger.warning("GPU out of memory on a single frame: analysing it on the CPU (%s)", exc)
            return list(self.cpu(frames))


def runs_on_cuda(analyzer) -> bool:
    """Whether ``analyzer`` runs on a CUDA device (named, or ``auto`` with a GPU present)."""
    device = str(getattr(analyzer, "device", None) or "auto")
    if device.startswith("cuda"):
        return True
    if device == "auto":
        import torch  # lazy: ~1 s to import; the analysis package must stay cheap to import

        return torch.cuda.is_available()
    return False
