"""The spot CNN of the paper (section 2.3.2) and a leaner variant, plus inference-time BN folding.

Input ``(N, 1, 32, 32)`` normalised cutouts, output ``(N, 5)`` in [0, 1]: the adjusted descriptor
vector ``Desc = (Sim, Pos*_row, Pos*_col, Asp, Area*)`` of ``SCIENCE.md``.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from laue_live._rules import CUTOUT_SIZE

__all__ = [
    "Architecture",
    "ARCHITECTURES",
    "SpotCNN",
    "keras_parameter_count",
    "fuse_batchnorm",
    "fold_batchnorm",
    "quantize_int8",
    "int8_available",
    "conv_trunk_and_head",
]


@dataclass(frozen=True)
class Architecture:
    """Hyper-parameters that define the network; stored with the weights.

    Parameters
    ----------
    widths
        Output channels of the six 3x3 convolutions (two per block, three blocks).
    dense
        Widths of the hidden dense layers (ReLU); a final dense layer of 5 (sigmoid) follows.
    cutout
        Side of the square input cutout, pixels.
    """

    widths: tuple[int, ...] = (16, 16, 32, 32, 64, 128)
    dense: tuple[int, ...] = (112, 56, 22)
    cutout: int = CUTOUT_SIZE
    n_out: int = field(default=5)

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Architecture:
        """Inverse of :meth:`to_dict`; raises ``KeyError``/``TypeError``/``ValueError`` on bad input."""
        arch = cls(
            widths=tuple(int(w) for w in d["widths"]),
            dense=tuple(int(w) for w in d["dense"]),
            cutout=int(d["cutout"]),
            n_out=int(d.get("n_out", 5)),
        )
        if len(arch.widths) != 6 or arch.cutout % 8 or min(arch.widths + arch.dense) < 1:
            raise ValueError(f"unsupported architecture {d}")
        return arch


#: Named architectures: the paper's and the leaner one used for fast CPU inference.
ARCHITECTURES: dict[str, Architecture] = {
    "paper": Architecture(),
    "lean": Architecture(widths=(8, 8, 16, 16, 32, 64), dense=(112, 56, 22)),
}


def conv_trunk_and_head(
    widths: tuple[int, ...], dense: tuple[int, ...], cutout: int, n_out: int
) -> tuple[nn.Sequential, nn.Sequential]:
    """Build the paper's trunk and a dense head (shared by the spot CNN and the double-spot network).

    Parameters
    ----------
    widths
        Output channels of the 3x3 convolutions (conv-BN-ReLU, a 2x2 max-pool after every second).
    dense
        Hidden widths of the head (Linear-ReLU each).
    cutout
        Side of the square input, px (the trunk divides it by 8).
    n_out
        Outputs of the last linear layer (no activation: the caller adds one if it needs it).

    Returns
    -------
    features, head
        ``nn.Sequential`` modules; their parameter names are those of the stored weights.
    """
    layers: list[nn.Module] = []
    c_in = 1
    for i, c_out in enumerate(widths):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        if i % 2 == 1:
            layers.append(nn.MaxPool2d(2))
        c_in = c_out
    n_in = c_in * (cutout // 8) ** 2
    head: list[nn.Module] = [nn.Flatten()]
    for n in dense:
        head += [nn.Linear(n_in, n), nn.ReLU(inplace=True)]
        n_in = n
    head.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers), nn.Sequential(*head)


class SpotCNN(nn.Module):
    """Three blocks of (conv3x3-BN-ReLU) x 2 + 2x2 max-pool, then dense layers, sigmoid output.

    Parameters
    ----------
    arch
        The :class:`Architecture` (default: the paper's, 347,057 Keras-counted parameters).
    """

    def __init__(self, arch: Architecture | None = None) -> None:
        super().__init__()
        self.arch = arch = arch or Architecture()
        self.features, self.head = conv_trunk_and_head(arch.widths, arch.dense, arch.cutout, arch.n_out)
        self.head.append(nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map normalised cutouts ``(N, 1, H, W)`` to descriptors ``(N, 5)`` in [0, 1]."""
        return self.head(self.features(x))


def keras_parameter_count(model: nn.Module) -> int:
    """Parameters as Keras counts them: weights, biases and batch-norm running mean and variance."""
    n = sum(p.numel() for p in model.parameters())
    n += sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    return n


def fold_batchnorm(seq: nn.Sequential) -> nn.Sequential:
    """Copy of a conv/BN/ReLU sequence with every BatchNorm folded into the convolution before it."""
    out: list[nn.Module] = []
    mods = list(seq)
    i = 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, nn.Conv2d) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
            bn = mods[i + 1]
            conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding)
            scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.data = m.weight.detach() * scale[:, None, None, None]
            bias = m.bias.detach() if m.bias is not None else torch.zeros_like(bn.running_mean)
            conv.bias.data = (bias - bn.running_mean) * scale + bn.bias.detach()
            out.append(conv)
            i += 2
            continue
        out.append(m)
        i += 1
    return nn.Sequential(*out).eval()


def fuse_batchnorm(model: SpotCNN) -> nn.Module:
    """Return an inference copy of ``model`` with every BatchNorm folded into its convolution.

    The folded network computes the same function as ``model.eval()`` (up to float rounding) with
    one layer fewer per convolution, which saves time on the CPU.
    """
    model = model.eval()
    return nn.Sequential(fold_batchnorm(model.features), model.head).eval()


def int8_available() -> bool:
    """Whether this torch build has an x86 int8 quantization engine (fbgemm / onednn)."""
    return any(e in torch.backends.quantized.supported_engines for e in ("x86", "fbgemm"))


def quantize_int8(model: SpotCNN, calibration: torch.Tensor) -> nn.Module:
    """Return a CPU int8 copy of ``model`` (BN folded, static post-training quantization, FX graph mode).

    Activation ranges are calibrated on ``calibration`` (normalised inputs ``(K, 1, H, W)``, the
    ones stored in the model file), so the result is deterministic for a given file. Weights are
    per-channel int8, activations uint8; the last dense layer and the sigmoid run in float32. On this
    project's CPUs (AVX-512 VNNI) it runs ~4-8x faster than float32 on one thread; the error
    introduced is measured in ``docs/report/REPORT.md``.
    """
    # why: torch.ao's FX quantization (torch.fx, ~0.3 s) loads only when an int8 network is built
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
    torch.backends.quantized.engine = engine
    fused = fuse_batchnorm(model)
    with warnings.catch_warnings():  # FX quantization warns about its own deprecation; it is what works here
        warnings.simplefilter("ignore")
        qmap = get_default_qconfig_mapping(engine)
        # The last Linear and the sigmoid stay float32: quantized, the sigmoid's fixed uint8 output
        # grid would round every descriptor to 1/256 (0.009 px in position, visible in the tables).
        n_head = len(fused[1])
        qmap = qmap.set_module_name(f"1.{n_head - 2}", None).set_module_name(f"1.{n_head - 1}", None)
        prepared = prepare_fx(fused, qmap, example_inputs=(calibration[:2],))
        with torch.no_grad():
            for i in range(0, len(calibration), 64):
                prepared(calibration[i : i + 64])
        return convert_fx(prepared).eval()
