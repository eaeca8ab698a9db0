"""Spot networks beyond the paper's: sub-pixel-preserving trunks, centroid-relative positions, widths.

The paper's network (:class:`~laue_live.cnn.SpotCNN`) max-pools three times: the sub-pixel detail
of a 1-2 px spot is gone after the first pooling, and the dense head has to recover the position
from 4 x 4 coarse features. :class:`SpotNet` is a family of smaller networks built to keep that
detail, each choice a switch of :class:`NetDesign` so that a table can compare them:

* ``convs``: 3 x 3 convolutions (BN, ReLU) given as ``(channels, stride)``; downsampling by a
  stride-2 convolution (learned) instead of a max-pool, as late as the FLOP budget allows;
* ``input="twoscale"``: two 16 x 16 channels, the central 16 x 16 pixels at full resolution and
  the whole cutout averaged 2 x 2, so the first layer runs on a quarter of the pixels without
  losing the spot's core;
* ``coords``: two constant channels with the row and column coordinate (CoordConv);
* ``centroid``: the moment estimates of :func:`laue_live.spots.moment_start` (the exact fit's start
  values: intensity centroid and widths of the pixels above 20% of the peak) go to the head, and
  the network predicts the position as a bounded correction of that centroid;
* ``parabola``: the three-point log-parabola estimates about ``s`` (per axis, the centre and the
  curvature of the parabola through the logarithms of the background-subtracted pixels ``s - 1,
  s, s + 1``; exact for a point-sampled Gaussian) go to the head as well: on pixel-sharp spots
  (sigma < 0.5 px) the fit's position is set by the ratios of those three pixels, which a small
  network on min-max-normalised pixels hardly resolves (neighbours at 1-10% of the peak);
* ``widths_out``: two more outputs, the log widths along rows and columns (the paper's ``Desc``
  has Asp and Area only, so neither the orientation nor a start for the exact fit's polish).

Output: ``(N, 5 + 2 * widths_out)`` in [0, 1]: ``Desc = (Sim, Pos*_row, Pos*_col, Asp, Area*)``
then ``W*_row, W*_col`` with ``W* = (ln sigma - ln 0.25) / (ln 8 - ln 0.25)`` (0.25 - 8 px).

The convolution trunk (``features``) is a plain ``nn.Sequential``: batch norm folds into it and
FX int8 quantization applies to it; the input transform and the head (a few thousand
multiply-adds) run in float32.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import asdict, dataclass

import torch
from torch import nn

from laue_live.cnn._network import ARCHITECTURES, Architecture, SpotCNN, fold_batchnorm
from laue_live.spots import moment_start

__all__ = ["NetDesign", "DESIGNS", "SpotNet", "make_network", "count_flops"]


@dataclass(frozen=True)
class NetDesign:
    """Hyper-parameters of a :class:`SpotNet`; stored with the weights.

    Parameters
    ----------
    convs
        ``(channels, stride)`` of each 3 x 3 convolution (padding 1, then BN and ReLU).
    dense
        Hidden widths of the head (ReLU).
    input
        ``"full"``: the 32 x 32 cutout; ``"twoscale"``: central 16 x 16 + 2 x 2-averaged whole.
    coords
        Append row and column coordinate channels (in [-1, 1]).
    centroid
        Feed the moment estimates to the head and predict positions as corrections of the centroid.
    parabola
        Feed the three-point log-parabola estimates (centre and curvature per axis) to the head.
    widths_out
        Two extra outputs ``W*_row, W*_col`` (log widths along rows and columns).
    cutout
        Side of the input cutout, px.
    """

    convs: tuple[tuple[int, int], ...] = ((8, 1), (16, 2), (32, 2), (32, 2))
    dense: tuple[int, ...] = (64,)
    input: str = "full"
    coords: bool = False
    centroid: bool = False
    widths_out: bool = True
    parabola: bool = False
    cutout: int = 32
    kind: str = "spotnet"

    @property
    def n_out(self) -> int:
        """Outputs: 5 descriptors, plus 2 widths if ``widths_out``."""
        return 5 + 2 * self.widths_out

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        d = asdict(self)
        d["convs"] = [list(c) for c in self.convs]
        d["dense"] = list(self.dense)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NetDesign:
        """Inverse of :meth:`to_dict`; raises ``KeyError``/``TypeError``/``ValueError`` on bad input."""
        design = cls(
            convs=tuple((int(c), int(s)) for c, s in d["convs"]),
            dense=tuple(int(w) for w in d["dense"]),
            input=str(d["input"]),
            coords=bool(d["coords"]),
            centroid=bool(d["centroid"]),
            widths_out=bool(d["widths_out"]),
            cutout=int(d["cutout"]),
            parabola=bool(d.get("parabola", False)),
        )
        if d.get("kind", "spotnet") != "spotnet":
            raise ValueError(f"not a SpotNet design: kind={d.get('kind')!r}")
        if design.input not in ("full", "twoscale") or design.cutout % 4 or not design.convs:
            raise ValueError(f"unsupported SpotNet design {d}")
        if min(c for c, _ in design.convs) < 1 or any(s not in (1, 2) for _, s in design.convs):
            raise ValueError(f"unsupported SpotNet design {d}")
        if design.dense and min(design.dense) < 1:
            raise ValueError(f"unsupported SpotNet design {d}")
        return design

    def input_channels(self) -> int:
        """Channels entering the first convolution."""
        return (2 if self.input == "twoscale" else 1) + 2 * self.coords

    def input_side(self) -> int:
        """Side of the trunk's input, px."""
        return self.cutout // 2 if self.input == "twoscale" else self.cutout


_TINY = ((8, 1), (16, 2), (32, 2))  # conv (channels, stride) of the tiny trunks
_SMALL = ((16, 1), (16, 1), (32, 2), (32, 1), (64, 2))
_FULL = ((8, 1), (16, 2), (16, 1), (32, 2), (64, 2))

#: Designs compared in the Pareto table of ``docs/report/REPORT.md`` (names used by ``laue-live train``).
DESIGNS: dict[str, NetDesign] = {
    # the smallest: two-scale input, strided convs, centroid-relative positions
    "tiny": NetDesign(convs=_TINY, dense=(64,), input="twoscale", centroid=True),
    "tiny-nocentroid": NetDesign(convs=_TINY, dense=(64,), input="twoscale"),
    "tiny-parabola": NetDesign(convs=_TINY, dense=(64,), input="twoscale", centroid=True, parabola=True),
    "small": NetDesign(convs=_SMALL, dense=(64,), input="twoscale", centroid=True),
    "small-coords": NetDesign(convs=_SMALL, dense=(64,), input="twoscale", centroid=True, coords=True),
    "small-parabola": NetDesign(convs=_SMALL, dense=(64,), input="twoscale", centroid=True, parabola=True),
    "full": NetDesign(convs=_FULL, dense=(64,), centroid=True),
    "full-nocentroid": NetDesign(convs=_FULL, dense=(64,)),
}


def _moments(x: torch.Tensor) -> torch.Tensor:
    """Moment estimates ``(A, beta, mu_row, mu_col, ln s_row, ln s_col)`` of normalised ``(N, S, S)``."""
    return moment_start(x.detach().float(), x.shape[-1] // 2).to(x.dtype)


def _parabola(x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Three-point log-parabola centre and log-curvature per axis about the centre pixel, ``(N, 4)``.

    With ``L = ln max(I - beta, 1e-3)`` at ``s - 1, s, s + 1`` (normalised units), the parabola's
    curvature is ``k = L- - 2 L0 + L+`` and its vertex ``(L- - L+) / (2 k)`` (clipped to +-1.5 px,
    0 where ``k >= 0``); features: the two vertices and ``ln max(-k, 1e-3)`` per axis.
    """
    c = x.shape[-1] // 2
    win = torch.log((x[:, c - 1 : c + 2, c - 1 : c + 2] - beta[:, None, None]).clamp_min(1e-3))
    out = []
    for lm, l0, lp in (
        (win[:, 0, 1], win[:, 1, 1], win[:, 2, 1]),
        (win[:, 1, 0], win[:, 1, 1], win[:, 1, 2]),
    ):
        k = lm - 2 * l0 + lp
        peak = k < -1e-6
        vertex = torch.where(
            peak, (lm - lp) / (2 * torch.where(peak, k, -torch.ones_like(k))), torch.zeros_like(k)
        )
        out += [vertex.clamp(-1.5, 1.5), torch.log((-k).clamp_min(1e-3))]
    return torch.stack([out[0], out[2], out[1], out[3]], dim=1)


class SpotNet(nn.Module):
    """A :class:`NetDesign` as a network: input transform, conv trunk, head, bounded outputs.

    ``forward`` takes normalised cutouts ``(N, 1, S, S)`` (as :class:`~laue_live.cnn.SpotCNN`) and
    returns ``(N, design.n_out)`` in [0, 1].
    """

    def __init__(self, design: NetDesign | None = None) -> None:
        super().__init__()
        self.arch = design = design or NetDesign()
        layers: list[nn.Module] = []
        c_in, side = design.input_channels(), design.input_side()
        for c_out, stride in design.convs:
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            c_in, side = c_out, (side + 2 - 3) // stride + 1
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        n_in = c_in * side * side + (4 if design.centroid else 0) + (4 if design.parabola else 0)
        head: list[nn.Module] = []
        for n in design.dense:
            head += [nn.Linear(n_in, n), nn.ReLU(inplace=True)]
            n_in = n
        head.append(nn.Linear(n_in, design.n_out))
        self.head = nn.Sequential(*head)
        s = design.input_side()
        g = torch.linspace(-1, 1, s)
        self.register_buffer(
            "coords", torch.stack(torch.meshgrid(g, g, indexing="ij"))[None], persistent=False
        )

    def folded(self) -> SpotNet:
        """Inference copy (eval mode) with batch norm folded into the convolutions: same outputs."""
        out = copy.deepcopy(self).eval()
        out.features = fold_batchnorm(self.eval().features)
        return out

    def quantized(self, calibration: torch.Tensor) -> SpotNet:
        """CPU copy whose trunk runs in int8 (static post-training quantization, FX graph mode).

        ``calibration``: normalised cutouts ``(K, 1, S, S)`` on which activation ranges are set.
        The input transform, the moments and the head stay float32.
        """
        # lazy: torch's quantization toolkit (~0.5 s to import) loads only for int8 inference
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        out = self.folded()
        engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
        torch.backends.quantized.engine = engine
        xin = out.trunk_input(calibration.float())
        with warnings.catch_warnings():  # FX quantization warns about its own deprecation
            warnings.simplefilter("ignore")
            prepared = prepare_fx(
                out.features, get_default_qconfig_mapping(engine), example_inputs=(xin[:2],)
            )
            with torch.no_grad():
                for i in range(0, len(xin), 64):
                    prepared(xin[i : i + 64])
            out.features = convert_fx(prepared).eval()
        return out

    def trunk_input(self, x: torch.Tensor) -> torch.Tensor:
        """Return the trunk's input from normalised cutouts ``(N, 1, S, S)``."""
        d = self.arch
        if d.input == "twoscale":
            s = d.cutout
            q = s // 4
            # 2 x 2 means by four strided slices: 3x faster than avg_pool2d on the CPU
            pooled = (
                x[:, :, 0::2, 0::2] + x[:, :, 1::2, 0::2] + x[:, :, 0::2, 1::2] + x[:, :, 1::2, 1::2]
            ) * 0.25
            x = torch.cat([x[:, :, q : s - q, q : s - q], pooled], dim=1)
        if d.coords:
            x = torch.cat([x, self.coords.expand(x.shape[0], -1, -1, -1).to(x.dtype)], dim=1)
        return x

    def forward(self, x: torch.Tensor, trunk: nn.Module | None = None) -> torch.Tensor:
        """Map normalised cutouts ``(N, 1, S, S)`` to outputs ``(N, n_out)`` in [0, 1].

        ``trunk`` replaces ``self.features`` (the BN-folded or int8 copy used for inference).
        """
        d = self.arch
        feats = (trunk or self.features)(self.trunk_input(x)).float()
        extra = []
        if d.centroid or d.parabola:
            m6 = _moments(x[:, 0].float())
            mom = m6[:, 2:6]
        if d.centroid:
            extra.append(torch.cat([mom[:, :2] / 2, mom[:, 2:]], dim=1))
        if d.parabola:
            extra.append(_parabola(x[:, 0].float(), m6[:, 1]))
        if extra:
            feats = torch.cat([feats, *extra], dim=1)
        z = self.head(feats.float())
        y = torch.sigmoid(z)
        if d.centroid:
            # position = centroid + a correction of at most +-1.1 px, in Pos* units
            c_star = ((mom[:, :2] + 1.1) / 2.2).clamp(0, 1)
            pos = (c_star + y[:, 1:3] - 0.5).clamp(0, 1)
            y = torch.cat([y[:, :1], pos, y[:, 3:]], dim=1)
        return y


def make_network(design) -> nn.Module:
    """Return a fresh network for ``design``.

    ``"paper"``/``"lean"`` or an :class:`~laue_live.cnn.Architecture` give a
    :class:`~laue_live.cnn.SpotCNN`; a :data:`DESIGNS` name or a :class:`NetDesign` a :class:`SpotNet`.
    """
    if isinstance(design, str):
        if design in ARCHITECTURES:
            return SpotCNN(ARCHITECTURES[design])
        if design not in DESIGNS:
            raise ValueError(f"unknown network {design!r}; known: {sorted(ARCHITECTURES) + sorted(DESIGNS)}")
        return SpotNet(DESIGNS[design])
    if isinstance(design, Architecture):
        return SpotCNN(design)
    if isinstance(design, NetDesign):
        return SpotNet(design)
    raise TypeError(f"not a network design: {design!r}")


def count_flops(model: nn.Module, side: int = 32) -> int:
    """Floating-point operations per cutout of the convolutions and linear layers (2 per multiply-add)."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total += 2 * k * out[0].numel()
        elif isinstance(mod, nn.Linear):
            total += 2 * mod.in_features * mod.out_features

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        was = model.training
        model.eval()
        with torch.no_grad():
            model(torch.rand(1, 1, side, side))
        model.train(was)
    finally:
        for h in hooks:
            h.remove()
    return total
