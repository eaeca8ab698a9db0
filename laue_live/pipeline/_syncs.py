"""Count the times a piece of work makes the host wait for a CUDA device."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["count_host_syncs"]


def count_host_syncs(call: Callable[[], Any], device: torch.device | str) -> tuple[Any, int | None]:
    """Run ``call()`` and count its host-device synchronisations (torch's sync debug mode).

    Every ``.item()``, ``nonzero``, boolean index or blocking copy waits for the device to catch up
    and empties its launch queue; the fast path keeps them to a few per batch.

    Parameters
    ----------
    call
        The work, e.g. ``lambda: pipe.process(frames)``.
    device
        Where it runs; off CUDA nothing is counted.

    Returns
    -------
    result, syncs
        ``call()``'s result and the number of synchronisations (None off CUDA). Waits on CUDA
        events are not counted.
    """
    if torch.device(device).type != "cuda":
        return call(), None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            out = call()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return out, sum("synchroniz" in str(w.message) for w in caught)
