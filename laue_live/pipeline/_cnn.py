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
"""

from __future__ import annotations

import copy
import logging

import torch

__all__ = ["CNNRunner", "cpu_has_bf16"]

log = logging.getLogger(__name__)


def cpu_has_bf16() -> bool:
    """Return True if oneDNN reports native bfloat16 support on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # older torch or no oneDNN
        return False


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
    """

    def __init__(
        self,
        device: torch.device,
        model=None,
        *,
        precision: str = "auto",
        chunk: int | None = None,
        predictor=None,
    ) -> None:
        from laue_live.cnn import get_predictor

        self.device = torch.device(device)
        dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}
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
        log.info("spot CNN on %s in %s, %d cutouts per pass", self.device, precision, self.chunk)

    @torch.inference_mode()
    def __call__(self, cut: torch.Tensor) -> torch.Tensor:
        """Network outputs (N, 5) float32 for raw cutouts (N, S, S) float32 (ADU) on the device."""
        from laue_live.cnn import normalise_torch

        n = cut.shape[0]
        out = torch.empty((n, 5), dtype=torch.float32, device=cut.device)
        for i in range(0, n, self.chunk):
            x = normalise_torch(cut[i : i + self.chunk], self.normalisation)[:, None]
            x = x.to(self.dtype)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out[i : i + len(x)] = self.network(x).float()
        return out
