"""The double-spot network: the paper's convolutional trunk with a one-or-two-spots head.

Input: ``(N, 1, 32, 32)`` cutouts normalised per cutout to [0, 1] (min-max, as the spot CNN).
Output ``(N, 10)``:

* ``[0]``: logit of "the cutout holds two spots";
* ``[1:5]``, ``[5:9]``: two slots, each ``(d_row / 4, d_col / 4, log sigma_row, log sigma_col)``
  with ``d`` the position relative to the cutout centre (16, 16), px;
* ``[9]``: logit of the intensity fraction ``I_a / (I_a + I_b)`` of slot a.

For a single spot only slot a is meaningful. Slots are unordered during training (the loss takes
the better of the two assignments); at inference the brighter slot becomes component 1.

Weights are stored as safetensors with a JSON metadata header (key ``laue_live``), never pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from laue_live._errors import ModelError
from laue_live._rules import CUTOUT_SIZE
from laue_live.cnn import conv_trunk_and_head

__all__ = ["DoubleArchitecture", "DoubleNet", "save_double_model", "load_double_model",
           "DOUBLE_MODEL_FORMAT", "POS_SCALE", "N_OUT"]

DOUBLE_MODEL_FORMAT = "laue-live-double-spot-net"
DOUBLE_MODEL_FORMAT_VERSION = 1
#: Network position outputs are (d / POS_SCALE), px.
POS_SCALE = 4.0
N_OUT = 10


@dataclass(frozen=True)
class DoubleArchitecture:
    """Hyper-parameters of :class:`DoubleNet` (stored with the weights).

    Parameters
    ----------
    widths
        Output channels of the six 3x3 convolutions (the spot CNN's trunk; paper widths by default).
    dense
        Hidden dense widths of the head (ReLU).
    cutout
        Side of the square input, px.
    """

    widths: tuple[int, ...] = (16, 16, 32, 32, 64, 128)
    dense: tuple[int, ...] = (192, 96)
    cutout: int = CUTOUT_SIZE

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> DoubleArchitecture:
        """Inverse of :meth:`to_dict`."""
        arch = cls(widths=tuple(int(w) for w in d["widths"]), dense=tuple(int(w) for w in d["dense"]),
                   cutout=int(d["cutout"]))
        if len(arch.widths) != 6 or arch.cutout % 8:
            raise ValueError(f"unsupported architecture {d}")
        return arch


class DoubleNet(nn.Module):
    """(conv3x3-BN-ReLU) x 2 + max-pool, three times; then dense layers to the 10 outputs."""

    def __init__(self, arch: DoubleArchitecture | None = None) -> None:
        super().__init__()
        self.arch = arch = arch or DoubleArchitecture()
        self.features, self.head = conv_trunk_and_head(arch.widths, arch.dense, arch.cutout, N_OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised cutouts ``(N, 1, H, W)`` -> raw outputs ``(N, 10)`` (see the module docstring)."""
        return self.head(self.features(x))


def save_double_model(path: str | Path, model: DoubleNet, *, info: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as safetensors with a JSON metadata header (architecture, normalisation, info)."""
    meta = {"format": DOUBLE_MODEL_FORMAT, "format_version": DOUBLE_MODEL_FORMAT_VERSION,
            "architecture": model.arch.to_dict(), "normalisation": "minmax",
            "pos_scale": POS_SCALE, "info": info or {}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"laue_live": json.dumps(meta)})
    return path


def load_double_model(path: str | Path) -> tuple[DoubleNet, dict[str, Any]]:
    """Load a file written by :func:`save_double_model`; the network is returned in eval mode.

    Raises
    ------
    ModelError
        Missing, unreadable or corrupted file, foreign format, or weights not matching the header.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"double-spot model {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("laue_live")
        meta = json.loads(raw) if raw is not None else None
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors / json raise their own types for every kind of damage
        raise ModelError(f"double-spot model {path} is not readable (corrupted or truncated?): "
                         f"{exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != DOUBLE_MODEL_FORMAT:
        raise ModelError(f"{path} is not a {DOUBLE_MODEL_FORMAT} file")
    if int(meta.get("format_version", -1)) > DOUBLE_MODEL_FORMAT_VERSION:
        raise ModelError(f"{path} has a newer format version than this laue-live understands")
    try:
        model = DoubleNet(DoubleArchitecture.from_dict(meta["architecture"]))
        model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: weights do not match the declared architecture: {exc}") from exc
    if any(v.is_floating_point() and not torch.isfinite(v).all() for v in state.values()):
        raise ModelError(f"{path}: non-finite weights")
    return model.eval(), meta
