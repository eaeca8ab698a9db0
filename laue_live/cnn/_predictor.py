"""The predictor: a model loaded once, then reused for any number of cutouts, batched, on any device."""

from __future__ import annotations

import functools
import logging
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from laue_live._errors import ModelError
from laue_live._xp import resolve_device
from laue_live.cnn._architectures import SpotNet
from laue_live.cnn._descriptors import table_from_desc
from laue_live.cnn._hybrid import polish as polish_fit
from laue_live.cnn._io import load_model
from laue_live.cnn._network import fuse_batchnorm, int8_available, quantize_int8
from laue_live.cnn._normalise import normalise_torch

__all__ = ["DEFAULT_MODEL_NAME", "Predictor", "get_predictor", "default_model_path"]

logger = logging.getLogger(__name__)

#: File name of the shipped default model, in ``laue_live.models`` (the top-level ``models/`` folder).
DEFAULT_MODEL_NAME = "spot_cnn.safetensors"


def default_model_path() -> Path:
    """Path of the shipped default model.

    Installed (wheel or editable with the package mapping): ``laue_live/models/``. From a plain
    checkout whose editable install predates that mapping: the repository's top-level ``models/``.

    Raises
    ------
    ModelError
        If the default model is in neither place.
    """
    candidates: list[Path] = []
    try:
        candidates.append(Path(str(resources.files("laue_live.models") / DEFAULT_MODEL_NAME)))
    except (ModuleNotFoundError, TypeError):
        pass
    candidates.append(Path(__file__).resolve().parents[2] / "models" / DEFAULT_MODEL_NAME)
    for path in candidates:
        if path.is_file():
            return path
    raise ModelError(
        f"the default spot-CNN model {DEFAULT_MODEL_NAME} is not installed (looked in "
        f"{', '.join(map(str, candidates))}); pass model=<path to a .safetensors file>"
    )


class Predictor:
    """A spot CNN ready for inference: load once, call :meth:`predict` many times.

    Parameters
    ----------
    model
        Path of a ``.safetensors`` model file; ``None`` for the shipped default model.
    device
        ``"auto"`` (CUDA if present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, or a torch device.
    batch_size
        Cutouts per forward pass; calls with more cutouts are split (memory stays bounded).
    amp
        Mixed precision (float16 autocast) on CUDA; default: on for CUDA, never on the CPU.
    compile
        Wrap the network in ``torch.compile`` (worth it for long runs; the first call is slow).
    quantize
        int8 inference on the CPU (:func:`~laue_live.cnn.quantize_int8`, calibrated on inputs stored
        in the model file). ``None`` (default): on when the device is the CPU, the file holds
        calibration inputs and torch has an int8 engine; ``False``: float32.
    polish
        Levenberg-Marquardt iterations of the exact fit started at the network's prediction
        (:func:`~laue_live.cnn.polish`; needs a network with width outputs); 0: the network's
        descriptors alone. ``None`` (default): what the model file recommends (``info["polish"]``,
        measured in ``docs/report/REPORT.md``), else 0.

    Notes
    -----
    Batch norm is folded into the convolutions at load time (same function, fewer layers). Thread
    safe: a lock serialises forward passes, so one predictor may serve several threads.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        device: str | torch.device = "auto",
        *,
        batch_size: int | None = None,
        amp: bool | None = None,
        compile: bool = False,
        quantize: bool | None = None,
        polish: int | None = None,
    ) -> None:
        self.path = Path(model) if model is not None else default_model_path()
        net, self.metadata = load_model(self.path)
        self.arch = net.arch
        self.normalisation: str = self.metadata["normalisation"]
        self.device = resolve_device(device)
        self.amp = (self.device.type == "cuda") if amp is None else bool(amp and self.device.type == "cuda")
        self.batch_size = batch_size or (65536 if self.device.type == "cuda" else 1024)
        cal = self.metadata.pop("calibration_inputs", None)
        can_q = self.device.type == "cpu" and cal is not None and int8_available()
        if quantize and not can_q:
            raise ModelError(
                f"int8 quantization needs the CPU, an int8 engine and calibration inputs in "
                f"{self.path.name} (device={self.device}, calibration={'yes' if cal is not None else 'no'})"
            )
        self.quantized = bool(can_q if quantize is None else quantize)
        self.n_out = net.arch.n_out
        info = self.metadata.get("info") if isinstance(self.metadata.get("info"), dict) else {}
        self.polish = int(info.get("polish", 0) if polish is None else polish)
        if self.polish < 0 or (self.polish and self.n_out < 7):
            raise ModelError(
                f"polish={self.polish}: needs a network with width outputs (SpotNet) and polish >= 0; "
                f"{self.path.name} has {self.n_out} outputs"
            )
        if isinstance(net, SpotNet):
            fused = net.quantized(cal) if self.quantized else net.folded().to(self.device)
        elif self.quantized:
            fused = quantize_int8(net, cal)
        else:
            fused = fuse_batchnorm(net).to(self.device)
            if self.device.type == "cuda":
                fused = fused.to(memory_format=torch.channels_last)
        self.network = torch.compile(fused) if compile else fused
        self._lock = threading.Lock()
        logger.info(
            "spot CNN %s loaded on %s (amp=%s, int8=%s)",
            self.path.name,
            self.device,
            self.amp,
            self.quantized,
        )

    @property
    def version(self) -> str:
        """Model version string from the metadata (``"unknown"`` if absent)."""
        return str(self.metadata.get("info", {}).get("version", "unknown"))

    def _check(self, cutouts: Any) -> np.ndarray | torch.Tensor:
        side = self.arch.cutout
        shape = tuple(cutouts.shape)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3 or shape[1:] != (side, side):
            raise ValueError(f"cutouts must have shape (N, {side}, {side}), got {tuple(cutouts.shape)}")
        return cutouts.reshape(shape)

    @torch.inference_mode()
    def predict_desc(self, cutouts: np.ndarray | torch.Tensor) -> np.ndarray:
        """Return the raw network outputs ``(N, n_out)`` float32.

        ``Desc = (Sim, Pos*_row, Pos*_col, Asp, Area*)``, then ``W*_row, W*_col`` for networks with
        width outputs (see :class:`~laue_live.cnn.SpotNet`).

        Parameters
        ----------
        cutouts
            ``(N, 32, 32)`` raw cutouts in ADU (any real dtype; a single ``(32, 32)`` cutout works).
        """
        cutouts = self._check(cutouts)
        n = cutouts.shape[0]
        out = np.empty((n, self.n_out), dtype=np.float32)
        with self._lock:
            for i in range(0, n, self.batch_size):
                chunk = cutouts[i : i + self.batch_size]
                x = torch.as_tensor(
                    np.ascontiguousarray(chunk, dtype=np.float32) if isinstance(chunk, np.ndarray) else chunk
                )
                x = normalise_torch(x.to(self.device, non_blocking=True), self.normalisation)[:, None]
                if self.device.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                    y = self.network(x)
                out[i : i + len(chunk)] = y.float().cpu().numpy()
        if not np.isfinite(out).all():  # a NaN cutout would otherwise become a silently wrong row
            bad = int((~np.isfinite(out)).any(axis=1).sum())
            logger.warning(
                "spot CNN produced non-finite descriptors for %d cutout(s) (non-finite input?)", bad
            )
        return out

    def predict(self, cutouts: np.ndarray, polish: int | None = None) -> pd.DataFrame:
        """Descriptors of each cutout, in the columns of ``characterize(method="fit")``.

        Returns a DataFrame with ``sim0, sim, d_row, d_col, asp, area, sigma_row, sigma_col,
        amplitude, background, converged, intensity, peak_intensity, saturated``. Positions in px
        relative to the initial peak ``s`` at cutout index (16, 16); areas in px^2; intensities in ADU.
        With ``polish`` (default: the predictor's) > 0, the table is the exact fit's after that many
        iterations from the network's start (:func:`laue_live.cnn.polish`); with 0, the network's
        descriptors (:func:`laue_live.cnn.table_from_desc` for the derived columns).
        """
        cutouts = np.asarray(self._check(np.asarray(cutouts)))
        steps = self.polish if polish is None else int(polish)
        desc = self.predict_desc(cutouts)
        if steps > 0:
            return polish_fit(cutouts, desc, steps)
        return table_from_desc(desc, cutouts)

    def __repr__(self) -> str:
        return (f"Predictor({str(self.path)!r}, device={str(self.device)!r}, amp={self.amp}, "
                f"int8={self.quantized}, polish={self.polish})")


@functools.lru_cache(maxsize=8)
def _cached(path: str | None, device: str, quantize: bool | None, polish: int | None) -> Predictor:
    return Predictor(path, device, quantize=quantize, polish=polish)


def get_predictor(
    model: str | Path | None = None,
    device: str | torch.device = "auto",
    quantize: bool | None = None,
    polish: int | None = None,
) -> Predictor:
    """Return the process-wide :class:`Predictor` for ``(model, device, quantize, polish)`` (loaded once)."""
    key_path = str(Path(model).resolve()) if model is not None else None
    return _cached(key_path, str(device), quantize, polish)
