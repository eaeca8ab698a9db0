"""Model files: safetensors weights with a JSON metadata header, never pickle.

The header (``__metadata__`` of the safetensors file, key ``laue_live``) holds the architecture,
the input normalisation, the format version and free-form training information (data, protocol,
metrics), so that a file is self-describing and a mismatch is caught before any weight is used.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from laue_live._errors import ModelError
from laue_live.cnn._architectures import NetDesign, SpotNet
from laue_live.cnn._network import Architecture, SpotCNN
from laue_live.cnn._normalise import NORMALISATIONS, normalise_torch

__all__ = [
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "CALIBRATION_KEY",
    "save_model",
    "load_model",
    "read_metadata",
]

logger = logging.getLogger(__name__)

#: Identifies a laue-live spot-CNN file.
MODEL_FORMAT = "laue-live-spot-cnn"
#: Bumped when the meaning of the weights or the metadata changes.
MODEL_FORMAT_VERSION = 1


#: Tensor name of the stored calibration inputs (for int8 quantization at load time).
CALIBRATION_KEY = "calibration.inputs"


def save_model(
    path: str | Path,
    model: SpotCNN | SpotNet,
    *,
    normalisation: str = "minmax",
    info: dict[str, Any] | None = None,
    calibration: Any | None = None,
) -> Path:
    """Write ``model`` to ``path`` as safetensors with the laue-live metadata header.

    Parameters
    ----------
    path
        Destination file (``.safetensors``).
    model
        The trained network (its batch-norm running statistics are saved too).
    normalisation
        Name of the input normalisation the model was trained with (see ``NORMALISATIONS``).
    info
        Extra JSON-serialisable information (training data, protocol, metrics, version).
    calibration
        Optional raw cutouts ``(K, 32, 32)`` (K ~ 256, typical of the training data), stored
        normalised as float16: the predictor calibrates int8 quantization on them at load time.
    """
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {normalisation!r}")
    meta = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "architecture": model.arch.to_dict(),
        "normalisation": normalisation,
        "outputs": ["sim", "pos_star_row", "pos_star_col", "asp", "area_star"]
        + (["width_star_row", "width_star_col"] if getattr(model.arch, "widths_out", False) else []),
        "info": info or {},
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if calibration is not None:
        cal = normalise_torch(torch.as_tensor(calibration, dtype=torch.float32), normalisation)
        tensors[CALIBRATION_KEY] = cal.reshape(-1, 1, *cal.shape[-2:]).to(torch.float16).contiguous()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"laue_live": json.dumps(meta)})
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read the laue-live metadata of a model file.

    Raises
    ------
    ModelError
        If the file is missing, not a safetensors file, corrupted, or not a laue-live spot CNN.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("laue_live")
    except Exception as exc:  # safetensors raises its own error types for every kind of damage
        raise ModelError(
            f"model file {path} is not a readable safetensors file (corrupted or truncated?): {exc}"
        ) from exc
    if raw is None:
        raise ModelError(f"model file {path} has no laue-live metadata: not a laue-live spot CNN")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelError(f"model file {path}: metadata header is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise ModelError(f"model file {path} is not a {MODEL_FORMAT} file (format={meta.get('format')!r})")
    if int(meta.get("format_version", -1)) > MODEL_FORMAT_VERSION:
        raise ModelError(
            f"model file {path} has format version {meta.get('format_version')}, newer than "
            f"this laue-live understands ({MODEL_FORMAT_VERSION}); upgrade laue-live"
        )
    if meta.get("normalisation") not in NORMALISATIONS:
        raise ModelError(f"model file {path}: unknown input normalisation {meta.get('normalisation')!r}")
    return meta


def load_model(
    path: str | Path, *, expect: Architecture | NetDesign | None = None
) -> tuple[SpotCNN | SpotNet, dict[str, Any]]:
    """Load a model file written by :func:`save_model`.

    Parameters
    ----------
    path
        The ``.safetensors`` file.
    expect
        If given, the architecture the caller requires; another one raises :class:`ModelError`.

    Returns
    -------
    model, metadata
        The network in eval mode on the CPU, and the metadata header (plus, if the file holds
        them, the normalised calibration inputs as a float32 tensor under ``"calibration_inputs"``).

    Raises
    ------
    ModelError
        Missing, corrupted or truncated file, foreign metadata, another architecture than ``expect``,
        or weights that do not match the architecture the header declares.
    """
    meta = read_metadata(path)
    try:
        spec = meta["architecture"]
        arch = NetDesign.from_dict(spec) if spec.get("kind") == "spotnet" else Architecture.from_dict(spec)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"model file {path}: invalid architecture in metadata ({exc})") from exc
    if expect is not None and arch != expect:
        raise ModelError(
            f"model file {path} holds architecture {arch.to_dict()}, expected {expect.to_dict()}"
        )
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise ModelError(f"model file {path}: cannot read the weights (corrupted?): {exc}") from exc
    cal = state.pop(CALIBRATION_KEY, None)
    if cal is not None:
        meta["calibration_inputs"] = cal.float()
    model = SpotNet(arch) if isinstance(arch, NetDesign) else SpotCNN(arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"model file {path}: weights do not match the declared architecture "
            f"{arch.to_dict()}: {str(exc).splitlines()[0]}"
        ) from exc
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ModelError(f"model file {path}: non-finite values in {bad[:3]}")
    return model.eval(), meta
