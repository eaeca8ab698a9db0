"""The array layer: the few operations the science needs, on numpy (CPU) or torch (CPU or GPU).

The Gaussian fit (:mod:`laue_live.spots`), the paper's rules (:mod:`laue_live._rules`) and the
descriptor columns of the fit and of the CNN are written once against this interface and run on
numpy (the CPU path, :func:`laue_live.analyze_frames`) or on torch (any device,
:class:`laue_live.pipeline.FramePipeline`). On the CPU numpy runs the fit about twice as fast as
torch (its per-call overhead on small batched arrays is 2-3x lower, measured). Arithmetic
operators, ``@``, slicing and boolean indexing are shared by both libraries and used directly;
where the two libraries' fastest spelling of a reduction differs (``sum_squares``, ``rowdot``,
``row_sums``, ``median_rows``), each class keeps its own, so that each path computes exactly what
it computed before the rules moved here.

:func:`resolve_device` is the one place that turns a device setting into a torch device.
"""

from __future__ import annotations

import logging

import numpy as np

from laue_live._errors import SettingsError

__all__ = ["NumpyOps", "TorchOps", "ops_for", "ops_of", "resolve_device"]

log = logging.getLogger(__name__)


class NumpyOps:
    """numpy implementation (float64 or float32 arrays on the CPU)."""

    name = "numpy"

    def __init__(self, dtype=np.float64):
        self.dtype = np.dtype(dtype)

    def asarray(self, a):
        return np.asarray(a, dtype=self.dtype)

    def index(self, values):
        return np.asarray(values, dtype=np.int64)

    def full(self, shape, value, dtype=None):
        return np.full(shape, value, dtype=self.dtype if dtype is None else dtype)

    def arange(self, n):
        return np.arange(n)

    def full_int(self, shape, value):
        return np.full(shape, value, dtype=np.int64)

    def full_bool(self, shape, value):
        return np.full(shape, value, dtype=bool)

    @staticmethod
    def mask(a):
        """Return host values as a boolean array."""
        return np.asarray(a, dtype=bool)

    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    sqrt = staticmethod(np.sqrt)
    abs = staticmethod(np.abs)
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    where = staticmethod(np.where)
    isfinite = staticmethod(np.isfinite)
    einsum = staticmethod(np.einsum)

    @staticmethod
    def nan_to_num(a):
        return np.nan_to_num(a, nan=0.0)

    @staticmethod
    def sum_squares(a):
        """``sum a^2`` over all but the first axis, as one batched matrix product (no temporary)."""
        flat = a.reshape(len(a), 1, _row_size(a))
        return (flat @ flat.swapaxes(1, 2)).reshape(len(a))

    @staticmethod
    def rowdot(a, b):
        """``sum_i a[n, i] b[n, i]`` of two (N, K) arrays."""
        return np.einsum("ni,ni->n", a, b)

    @staticmethod
    def row_sums(a):
        """Sum of each row of ``a`` (N, ...) in float64, whatever the dtype of ``a``."""
        return a.reshape(len(a), _row_size(a)).sum(axis=1, dtype=np.float64)

    @staticmethod
    def median_rows(a):
        """Median of each row of ``a`` (N, K), in the dtype of ``a``."""
        return np.median(a, axis=1)

    @staticmethod
    def stack(arrays, axis):
        return np.stack(arrays, axis=axis)

    @staticmethod
    def cat(arrays, axis):
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def clip(a, lo=None, hi=None):
        # np.maximum/np.minimum: same result as np.clip (NaN stays NaN) at a fraction of its call cost
        if lo is not None:
            a = np.maximum(a, lo)
        return a if hi is None else np.minimum(a, hi)

    @staticmethod
    def take(a, idx, axis):
        return np.take(a, idx, axis=axis)

    @staticmethod
    def sort(a, axis):
        return np.sort(a, axis=axis)

    @staticmethod
    def amax(a, axis, keepdims=False):
        return a.max(axis=axis, keepdims=keepdims)

    @staticmethod
    def diagonal(m):
        return np.diagonal(m, axis1=1, axis2=2)

    @staticmethod
    def diag_embed(v):
        return v[:, :, None] * np.eye(v.shape[1], dtype=v.dtype)

    @staticmethod
    def solve(m, g):
        """Batched ``m x = g``; returns ``(x, ok)``, ``ok`` False (and x NaN) where ``m`` is singular."""
        try:
            return np.linalg.solve(m, g[:, :, None])[:, :, 0], np.ones(len(m), dtype=bool)
        except np.linalg.LinAlgError:  # one singular matrix spoils the batch call: solve one by one
            x = np.full(g.shape, np.nan, dtype=g.dtype)
            for k in range(len(m)):
                try:
                    x[k] = np.linalg.solve(m[k], g[k])
                except np.linalg.LinAlgError:
                    pass
            return x, np.isfinite(x).all(axis=1)

    @staticmethod
    def copy(a):
        return a.copy()

    @staticmethod
    def any(a) -> bool:
        return bool(a.any())

    @staticmethod
    def count(a) -> int:
        return int(a.sum())

    @staticmethod
    def numpy(a):
        return np.asarray(a)


class TorchOps:
    """torch implementation (any device)."""

    name = "torch"

    def __init__(self, dtype, device):
        import torch  # why: torch (~1.5 s to import) loads only when a torch path is asked for

        self.torch = torch
        self.dtype = dtype
        self.device = device

    def asarray(self, a):
        return self.torch.as_tensor(a, dtype=self.dtype, device=self.device)

    def index(self, values):
        return self.torch.as_tensor(np.asarray(values, dtype=np.int64), device=self.device)

    def full(self, shape, value, dtype=None):
        return self.torch.full(shape, value, dtype=self.dtype if dtype is None else dtype, device=self.device)

    def arange(self, n):
        return self.torch.arange(n, device=self.device)

    def full_int(self, shape, value):
        return self.torch.full(shape, value, dtype=self.torch.int64, device=self.device)

    def full_bool(self, shape, value):
        return self.torch.full(shape, value, dtype=self.torch.bool, device=self.device)

    def mask(self, a):
        """Return host values as a boolean tensor on the device."""
        return self.torch.as_tensor(np.asarray(a, dtype=bool), device=self.device)

    def exp(self, a):
        return self.torch.exp(a)

    def log(self, a):
        return self.torch.log(a)

    def sqrt(self, a):
        return self.torch.sqrt(a)

    def abs(self, a):
        return self.torch.abs(a)

    def maximum(self, a, b):
        return self.torch.maximum(a, b)

    def minimum(self, a, b):
        return self.torch.minimum(a, b)

    def where(self, c, a, b):
        return self.torch.where(c, a, b)

    def isfinite(self, a):
        return self.torch.isfinite(a)

    def einsum(self, spec, *operands):
        return self.torch.einsum(spec, *operands)

    def nan_to_num(self, a):
        return self.torch.nan_to_num(a, nan=0.0)

    def sum_squares(self, a):
        """``sum a^2`` over all but the first axis."""
        return (a * a).sum(dim=tuple(range(1, a.ndim)))

    def rowdot(self, a, b):
        """``sum_i a[n, i] b[n, i]`` of two (N, K) tensors."""
        return (a * b).sum(1)

    def row_sums(self, a):
        """Sum of each row of ``a`` (N, ...) in float64."""
        return a.reshape(len(a), _row_size(a)).to(self.torch.float64).sum(1)

    def median_rows(self, a):
        """Numpy's median of each row of ``a`` (N, K): the mean of the two middle values for even K."""
        srt = a.sort(dim=1).values
        k = a.shape[1]
        return (srt[:, (k - 1) // 2] + srt[:, k // 2]) / 2

    def stack(self, arrays, axis):
        return self.torch.stack(arrays, dim=axis)

    def cat(self, arrays, axis):
        return self.torch.cat(arrays, dim=axis)

    def clip(self, a, lo=None, hi=None):
        return self.torch.clamp(a, lo, hi)

    def take(self, a, idx, axis):
        return a.index_select(axis, idx)

    def sort(self, a, axis):
        return self.torch.sort(a, dim=axis).values

    def amax(self, a, axis, keepdims=False):
        return self.torch.amax(a, dim=axis, keepdim=keepdims)

    def diagonal(self, m):
        return self.torch.diagonal(m, dim1=1, dim2=2)

    def diag_embed(self, v):
        return self.torch.diag_embed(v)

    def solve(self, m, g):
        """Batched ``m x = g``; returns ``(x, ok)``."""
        x, info = self.torch.linalg.solve_ex(m, g.unsqueeze(2))
        x = x.squeeze(2)
        return x, (info == 0) & self.torch.isfinite(x).all(dim=1)

    def copy(self, a):
        return a.clone()

    def any(self, a) -> bool:
        return bool(a.any())

    def count(self, a) -> int:
        return int(a.sum())

    def numpy(self, a):
        return a.detach().cpu().numpy()


def _row_size(a) -> int:
    """Elements per row of ``a`` (N, ...): ``reshape(N, -1)`` cannot infer it when N is 0."""
    return int(np.prod(a.shape[1:]))


def ops_for(backend: str, dtype: str, device=None):
    """Pick the implementation: ``backend`` ``"auto"`` is numpy on the CPU and torch elsewhere.

    Parameters
    ----------
    backend
        ``"auto"``, ``"numpy"`` or ``"torch"``.
    dtype
        ``"float64"`` or ``"float32"``.
    device
        torch device (``None`` or ``"cpu"``: the CPU; ``"auto"``: CUDA if available).

    Returns
    -------
    NumpyOps or TorchOps
    """
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'torch', got {backend!r}")
    cpu = device is None or str(device) == "cpu"
    if device == "auto":
        device = str(resolve_device("auto", quiet=True))
        cpu = device == "cpu"
    if backend == "numpy" and not cpu:
        raise ValueError(f"backend 'numpy' runs on the CPU only, not on device {device!r}")
    if backend == "numpy" or (backend == "auto" and cpu):
        return NumpyOps(dtype)
    import torch  # why: torch (~1.5 s to import) loads only when a torch path is asked for

    # resolve_device: a CUDA device on a machine without CUDA is a SettingsError, not torch's AssertionError
    return TorchOps(getattr(torch, dtype), resolve_device(device or "cpu"))


def ops_of(a, dtype=None, *, keep_tensor_dtype: bool = False):
    """Pick the implementation matching an array: torch for a tensor (on its device), else numpy.

    Parameters
    ----------
    a
        numpy array, scalar, sequence or torch tensor.
    dtype
        Working dtype (numpy dtype or its name; default: that of ``a``, float64 for non-arrays).
    keep_tensor_dtype
        A tensor keeps its own dtype whatever ``dtype`` says (for the transforms, which work in
        the caller's precision on a device but in float64 on the host).
    """
    if type(a).__module__.startswith("torch"):
        ops = TorchOps(a.dtype, a.device)
        if dtype is not None and not keep_tensor_dtype:
            ops.dtype = getattr(ops.torch, np.dtype(dtype).name)
        return ops
    return NumpyOps(dtype if dtype is not None else getattr(a, "dtype", np.float64))


def resolve_device(device="auto", *, quiet: bool = False):
    """Return the torch device of a device setting.

    Parameters
    ----------
    device
        ``"auto"`` (the first CUDA device if there is one, else the CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:1"`` or a :class:`torch.device`.
    quiet
        Do not log that ``"auto"`` fell back to the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    SettingsError
        A CUDA device is asked for but CUDA is not available here.
    """
    import torch  # why: torch (~1.5 s to import) loads only when a torch path is asked for

    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if not quiet:
            log.info("CUDA is not available: running on the CPU")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:  # torch's own message names the device types it knows
        raise SettingsError(f"unknown device {str(device)!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SettingsError(
            f"device {str(device)!r} requested but CUDA is not available here; use 'cpu' or 'auto'"
        )
    return dev
