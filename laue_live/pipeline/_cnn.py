"""The spot CNN on device tensors, in the fastest precision the device offers.

The network and its input normalisation come from :func:`laue_live.cnn.get_predictor` (batch norm
already folded); this module only feeds it device-resident cutouts, in chunks that stay in cache,
with channels-last layout and reduced precision:

* CUDA: float16 weights and activations (tensor cores);
* CPU, model file with calibration inputs: the int8 network of :mod:`laue_live.cnn` (static
  post-training quantization, ``Predictor.quantized``), the fastest on CPUs with AVX-512 VNNI;
* CPU with AVX-512 BF16 (e.g. AMD Zen 4, Intel Cooper Lake and later): bfloat16, ~3x faster than
  float32 through oneDNN on this project's 2-core machines; the outputs differ from float32 by a
  few 1e-3 (measured in ``tests/pipeline``), far below the network's own error (MAE_Sim ~0.05);
* otherwise float32.

``precision="fp32"`` forces the exact float32 network; ``"int8"``, ``"bf16"`` choose one.

On CUDA the reduced-precision network is wrapped in ``torch.compile`` by default (the issue's
3.9 M spots/s on an H100 were measured compiled). Compiled graphs are specialised to one batch
size, so every call is cut into pieces whose sizes come from a fixed set of buckets (``chunk``,
``chunk/4``, ``chunk/16``, ``chunk/64``) and only the last piece is zero-padded: at most four
compilations whatever the number of spots, and at most one smallest bucket of wasted rows. If
compiling or running the compiled network raises, a warning is logged once and the eager network
is used from then on. Runners of one model file, device and precision share one compiled
network (and its fallback).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from laue_live.cnn import get_predictor, normalise_torch

__all__ = ["CNNRunner", "bucket_pieces", "cpu_has_bf16"]

#: Number of bucket sizes of the compiled network: ``chunk // 4**k`` for ``k < _N_BUCKETS``; it stays
#: under torch._dynamo's default limit of 8 recompilations per function.
_N_BUCKETS = 4

log = logging.getLogger(__name__)


def cpu_has_bf16() -> bool:
    """Return True if oneDNN reports native bfloat16 support on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # noqa: SLF001 - no public query
    except (AttributeError, RuntimeError):  # older torch or no oneDNN
        return False


@dataclass
class _Compiled:
    """A network and its ``torch.compile`` wrapper (None once compiling or running it failed)."""

    network: torch.nn.Module
    fn: Callable | None


# Compiled networks shared by every runner of one (model file, device, precision): dynamo guards
# and caches graphs per module, so a runner per pipeline would compile every bucket again, and
# after 8 graphs of one function dynamo stops compiling and silently runs eagerly.
_SHARED_COMPILED: dict[tuple[str, str, str], _Compiled] = {}


def _bucket_sizes(chunk: int) -> tuple[int, ...]:
    """Batch sizes the compiled network is called with, largest first: ``chunk // 4**k``, >= 1."""
    return tuple(sorted({max(1, chunk // 4**k) for k in range(_N_BUCKETS)}, reverse=True))


def bucket_pieces(n: int, chunk: int) -> list[tuple[int, int, int]]:
    """Cut ``n`` rows into pieces for a network compiled for the batch sizes ``chunk // 4**k``.

    Greedy: the largest bucket that fits the rows left, as often as it fits; the rest (fewer rows
    than the smallest bucket) is one piece padded to the smallest bucket.

    Returns
    -------
    list of (start, rows, bucket)
        Piece ``rows`` starting at row ``start``, to be run as a batch of ``bucket`` rows
        (``rows <= bucket``; padding rows are discarded).
    """
    sizes = _bucket_sizes(chunk)
    pieces = []
    i = 0
    for b in sizes:
        while n - i >= b:
            pieces.append((i, b, b))
            i += b
    if i < n:
        pieces.append((i, n - i, sizes[-1]))
    return pieces


class CNNRunner:
    """Run the spot CNN on cutouts that already sit on ``device``.

    Parameters
    ----------
    device
        torch device of the cutouts.
    model
        CNN model file (None: the shipped default), see :func:`laue_live.cnn.get_predictor`.
    precision
        ``"auto"`` (fp16 on CUDA; on the CPU int8 when the model file is quantizable, else bf16
        when the CPU supports it, else fp32), ``"fp32"``, ``"bf16"``, ``"int8"`` (CPU), ``"fp16"`` (CUDA).
    chunk
        Cutouts per forward pass (default: 256 on the CPU, where it keeps activations in L2 cache;
        16384 on CUDA).
    predictor
        An already loaded :class:`laue_live.cnn.Predictor` (its network is reused).
    compile
        ``"auto"`` (default): ``torch.compile`` the network on CUDA in fp16/bf16 (not the exact
        fp32 network, not on the CPU, where compiling takes ~30 s for a small gain); True or False
        to force (never for int8). Calls are cut into fixed bucket sizes (:func:`bucket_pieces`);
        a failure to compile or to run compiled logs a warning once and falls back to eager.

    Attributes
    ----------
    compiled : bool
        The compiled network is in use (False from the start, or after a fallback).
    """

    def __init__(
        self,
        device: torch.device,
        model=None,
        *,
        precision: str = "auto",
        chunk: int | None = None,
        predictor=None,
        compile: bool | str = "auto",
    ) -> None:
        self.device = torch.device(device)
        dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}
        if compile not in ("auto", True, False):
            raise ValueError(f"compile must be 'auto', True or False; got {compile!r}")
        if precision not in ("auto", *dtypes):
            raise ValueError(f"precision must be one of auto, {', '.join(dtypes)}; got {precision!r}")
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision='fp16' needs a CUDA device (use 'int8', 'bf16' or 'fp32' on the CPU)")
        if precision == "int8" and self.device.type != "cpu":
            raise ValueError("precision='int8' is the CPU's quantized network (use 'fp16' on CUDA)")
        pred = None
        if precision in ("auto", "int8") and self.device.type == "cpu":
            # the CNN package quantizes on the CPU when the model file carries calibration inputs
            quantize = None if precision == "auto" else True
            pred = predictor or get_predictor(model=model, device="cpu", quantize=quantize)
            if getattr(pred, "quantized", False):
                precision = "int8"
            else:
                precision = "bf16" if cpu_has_bf16() else "fp32"
        elif precision == "auto":
            precision = "fp16" if self.device.type == "cuda" else "fp32"
        if precision != "int8":
            if predictor is not None and not getattr(predictor, "quantized", False):
                pred = predictor
            else:
                pred = get_predictor(model=model, device=str(self.device), quantize=False)
        self.normalisation = pred.normalisation
        self.n_out = int(getattr(pred, "n_out", 5))
        # iterations of the exact fit from the network's prediction (the model's recommendation)
        self.polish = int(getattr(pred, "polish", 0))
        self.model_path = str(pred.path)
        self.precision = precision
        self.dtype = dtypes[precision]
        net = getattr(pred.network, "_orig_mod", pred.network)  # a torch.compile wrapper: the module itself
        if precision == "int8":
            self.network = net  # FX-quantized module: float32 NCHW in, float32 out (shared, read-only)
            self.channels_last = False
        else:
            net = copy.deepcopy(net).to(self.device)
            self.network = net.to(self.dtype).to(memory_format=torch.channels_last).eval()
            self.channels_last = True
        self.chunk = chunk or (16384 if self.device.type == "cuda" else 256)
        if compile == "auto":
            compile = self.device.type == "cuda" and precision in ("fp16", "bf16")
        self._shared: _Compiled | None = None
        if compile and precision != "int8":
            key = (self.model_path, str(self.device), precision)
            shared = _SHARED_COMPILED.get(key)
            if shared is None:
                shared = _SHARED_COMPILED[key] = _Compiled(self.network, None)
                try:
                    # dynamic=False: one static graph per bucket size (no symbolic shapes to guard)
                    shared.fn = torch.compile(self.network, dynamic=False)
                except Exception as exc:  # e.g. no compiler backend in this torch build
                    self._shared = shared
                    self._fall_back(exc)
            self.network = shared.network  # the compiled graphs belong to this module
            self._shared = shared
        log.info(
            "spot CNN on %s in %s, %d cutouts per pass%s",
            self.device,
            precision,
            self.chunk,
            ", compiled" if self.compiled else "",
        )

    @property
    def compiled(self) -> bool:
        return self._shared is not None and self._shared.fn is not None

    def _fall_back(self, exc: BaseException) -> None:
        assert self._shared is not None
        self._shared.fn = None  # for every runner of this network: warned once
        log.warning(
            "torch.compile of the spot CNN failed on %s (%s: %s); running it eagerly",
            self.device,
            type(exc).__name__,
            str(exc).splitlines()[0] if str(exc) else "",
        )

    @torch.inference_mode()
    def __call__(self, cut: torch.Tensor) -> torch.Tensor:
        """Network outputs (N, n_out) float32 for raw cutouts (N, S, S) float32 (ADU) on the device.

        ``n_out`` is 5 (``Desc``) or 7 (``Desc`` and the width outputs of a ``SpotNet``).
        """
        n = cut.shape[0]
        out = torch.empty((n, self.n_out), dtype=torch.float32, device=cut.device)
        fn = self._shared.fn if self._shared is not None else None
        if fn is not None and n:
            try:
                for i, rows, size in bucket_pieces(n, self.chunk):
                    x = self._input(cut[i : i + rows], size)
                    out[i : i + rows] = fn(x)[:rows].float()
                return out
            except Exception as exc:  # compilation happens at the first call of each bucket size
                self._fall_back(exc)
        for i in range(0, n, self.chunk):
            x = self._input(cut[i : i + self.chunk])
            out[i : i + len(x)] = self.network(x).float()
        return out

    def _input(self, cut: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """Normalised network input (rows, 1, S, S) in the network's dtype and layout.

        ``rows`` > ``len(cut)`` pads with zero cutouts (a valid input: normalised zeros).
        """
        x = normalise_torch(cut, self.normalisation).to(self.dtype)
        if rows is not None and rows > len(x):
            x = torch.cat([x, x.new_zeros((rows - len(x), *x.shape[1:]))])
        x = x[:, None]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
