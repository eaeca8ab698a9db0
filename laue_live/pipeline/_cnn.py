"""The spot CNN on device tensors, in the fastest precision the device offers.

The network and its input normalisation come from :func:`laue_live.cnn.get_predictor` (batch norm
already folded); this module only feeds it device-resident cutouts, in chunks that stay in cache,
with channels-last layout and reduced precision:

* CUDA: float16 weights and activations (tensor cores);
* CPU with AVX-512 BF16 (e.g. AMD Zen 4, Intel Cooper Lake and later): bfloat16, ~3x faster than
  float32 through oneDNN on this project's 2-core machines; the outputs differ from float32 by a
  few 1e-3 (measured in ``tests/pipeline``), far below the network's own error (MAE_Sim ~0.05);
* otherwise float32.

``precision="fp32"`` forces the exact float32 network.
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
        ``"auto"`` (fp16 on CUDA, bf16 on a CPU that supports it, else fp32), ``"fp32"``, ``"bf16"``
        or ``"fp16"`` (CUDA only).
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
        if precision == "auto":
            if self.device.type == "cuda":
                precision = "fp16"
            elif self.device.type == "cpu" and cpu_has_bf16():
                precision = "bf16"
            else:
                precision = "fp32"
        dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
        if precision not in dtypes:
            raise ValueError(f"precision must be one of auto, {', '.join(dtypes)}; got {precision!r}")
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision='fp16' needs a CUDA device (use 'bf16' or 'fp32' on the CPU)")
        pred = predictor or get_predictor(model=model, device=str(self.device))
        self.normalisation = pred.normalisation
        self.model_path = str(pred.path)
        self.precision = precision
        self.dtype = dtypes[precision]
        net = copy.deepcopy(pred.network).to(self.device)
        net = getattr(net, "_orig_mod", net)  # a torch.compile wrapper: keep the module itself
        self.network = net.to(self.dtype).to(memory_format=torch.channels_last).eval()
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
            x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
            out[i : i + len(x)] = self.network(x).float()
        return out
