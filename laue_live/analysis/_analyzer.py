"""The frame analyser used by the live callback, reprocessing and the service: frames -> spot tables."""

from __future__ import annotations

import hashlib
import importlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import laue_live
from laue_live._errors import SettingsError
from laue_live._xp import resolve_device

__all__ = ["FrameAnalyzer", "make_analyzer", "default_method", "PIPELINES"]

#: Choices of :class:`FrameAnalyzer`'s ``pipeline``.
PIPELINES = ("auto", "numpy", "torch")

logger = logging.getLogger(__name__)

#: frames -> one spot table (pandas DataFrame, schema columns) per frame.
AnalyzeFn = Callable[[Sequence[np.ndarray]], list]


def default_method(device: str | None = None, model: str | None = None) -> str:
    """Return what ``method="auto"`` means on ``device`` (:func:`laue_live.describe.choose_method`).

    The CNN where the model's evaluation measured it accurate and faster than the exact fit on that
    kind of device, else the fit (the README says which and why).
    """
    from laue_live.describe import choose_method  # lazy: describe loads pandas and scipy (~0.3 s)

    return choose_method(device, model)


def _model_info(method: str, model: str | None) -> dict[str, str]:
    if method != "cnn":
        return {"name": "gaussian-fit", "version": laue_live.__version__}
    info = {"name": str(model or "default"), "version": "unknown"}
    try:
        cnn = importlib.import_module("laue_live.cnn")  # lazy: the CNN package imports torch (~1 s)
        path = Path(model) if model and Path(str(model)).is_file() else cnn.default_model_path()
        meta = cnn.read_metadata(path)
        info["name"] = str(meta.get("name") or path.stem)
        info_md = meta.get("info") if isinstance(meta.get("info"), dict) else {}
        version = meta.get("version") or info_md.get("version")
        digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        info["sha256"] = digest  # the weights themselves: two trainings with one version differ here
        if version is None:
            version = digest
        info["version"] = str(version)
    except Exception as exc:  # the model loader will report a missing/corrupt model itself
        logger.debug("no CNN model metadata (%s)", exc)
    return info


class FrameAnalyzer:
    """Analyse a batch of frames with one method; the cutouts of all frames go through one call.

    Parameters
    ----------
    method
        ``"fit"`` (exact Gaussian fit) or ``"cnn"``; ``"auto"``: the one measured better on
        ``device`` (:func:`laue_live.describe.choose_method`). Without ``func``, any other name is a
        :class:`SettingsError`.
    model
        CNN model name or path (``method="cnn"`` only); None for the default.
    device
        torch device for the analysis (``"cpu"``, ``"cuda"``, ``"auto"``); a CUDA device on a
        machine without CUDA is a :class:`SettingsError`.
    func
        Replace the analysis function ``func(frames) -> list[DataFrame]`` (tests inject faults here).
    pipeline
        ``"numpy"``: :func:`laue_live.analyze_frames`; ``"torch"``:
        :class:`laue_live.pipeline.FramePipeline` on ``device`` (the whole per-frame path on the
        device; same tables, ``tests/pipeline``); ``"auto"`` (default): ``"torch"`` when a CUDA
        device is present, else ``"numpy"``. With ``func`` it is only recorded.
    **params
        Passed to :func:`laue_live.analyze_frames`, or to :class:`~laue_live.pipeline.FramePipeline`
        (``peak_params``, ``sim_variant``, ``precision``, ``batch_frames``, ``fit_options``).

    Attributes
    ----------
    model_info : dict
        ``{"name", "version"}`` of the model (``gaussian-fit`` and the package version for the fit).
    """

    def __init__(self, method: str = "fit", *, model: str | None = None, device: str | None = None,
                 func: AnalyzeFn | None = None, pipeline: str = "auto", **params: Any) -> None:
        if pipeline not in PIPELINES:
            raise SettingsError(f"pipeline must be one of {', '.join(PIPELINES)}, not {pipeline!r}")
        if func is None:
            # a bad method or device is one clear error here, not a failure of every frame
            describe = importlib.import_module("laue_live.describe")  # lazy: pandas, scipy, ~0.3-1 s
            if method != "auto" and method not in describe.METHODS:
                raise SettingsError(f"unknown analysis method {method!r}: use "
                                    f"{', '.join(describe.METHODS)} or auto")
            if device is not None:
                resolve_device(device)
        self.method = default_method(device or "auto", model) if method == "auto" else method
        self.model = model
        self.device = device
        self.params = params
        self._func = func
        if pipeline == "auto":  # with func: the caller's own analysis
            pipeline = "custom" if func is not None else "torch" if _cuda_present() else "numpy"
        self.pipeline = pipeline
        self._pipe_lock = threading.Lock()  # one analyser serves every run of a router
        self.model_info = _model_info(self.method, model)
        # built now, so that a bad device or option is a clear error here rather than failed frames
        self._pipe = self._make_pipeline() if func is None and pipeline == "torch" else None

    def _kwargs(self) -> dict[str, Any]:
        kw = dict(self.params)
        if self.model is not None:
            kw["model"] = self.model
        if self.device is not None:
            kw["device"] = self.device
        return kw

    def __call__(self, frames: Sequence[np.ndarray]) -> list:
        """Spot tables of ``frames``, one DataFrame per frame (``frame`` column left as given)."""
        if self._func is not None:
            return list(self._func(frames))
        if self.pipeline == "torch":
            with self._pipe_lock:
                return self._pipe.process(list(frames))
        spots = importlib.import_module("laue_live.describe")  # lazy: pandas, scipy and the CNN, ~0.3-1 s
        batch = getattr(spots, "analyze_frames", None)
        if batch is not None:
            return list(batch(list(frames), method=self.method, **self._kwargs()))
        return [spots.analyze_frame(f, method=self.method, **self._kwargs()) for f in frames]

    def _make_pipeline(self):
        from laue_live.pipeline import FramePipeline  # lazy: the torch pipeline imports torch (~1 s)

        pipe = FramePipeline(self.method, self.device or "auto", model=self.model, **self.params)
        logger.info("analysis on the torch pipeline, device %s, %d frames per batch", pipe.device,
                    pipe.batch_frames)
        return pipe

    def warm_up(self) -> float:
        """Analyse one small synthetic frame so that imports and first-call costs are paid now.

        Returns
        -------
        float
            Seconds it took.
        """
        t0 = time.perf_counter()
        r, c = np.mgrid[:64, :64]
        frame = (1000 + 5000 * np.exp(-((r - 32) ** 2 + (c - 30) ** 2) / 4.0)).astype(np.uint16)
        try:
            self([frame])
        except Exception as exc:  # a broken analysis shows up on the first real frame, recorded there
            logger.warning("analysis warm-up failed: %s", exc)
        return time.perf_counter() - t0

    def describe(self) -> dict[str, Any]:
        """Metadata recorded in the analysis run's start document."""
        params = {k: v for k, v in self.params.items() if isinstance(v, (int, float, str, bool))}
        if isinstance(self.params.get("peak_params"), dict):
            params["peak_params"] = dict(self.params["peak_params"])
        cal = self.params.get("calibration")
        if cal is not None and hasattr(cal, "to_dict"):
            params["calibration"] = cal.to_dict()
        corr = self.params.get("corrections")
        if corr is not None:
            params["corrections"] = {"mask": corr.mask is not None, "dark": corr.dark is not None,
                                     "flat": corr.flat is not None, "auto_mask": bool(corr.auto),
                                     "beamstop": list(corr.beamstop) if corr.beamstop else None}
        params["pipeline"] = self.pipeline
        if self.device is not None:
            params.setdefault("device", str(self.device))
        return {"method": self.method, "model": dict(self.model_info), "params": params}


def _cuda_present() -> bool:
    try:
        import torch  # lazy: ~1 s to import, only to ask whether CUDA is there
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def make_analyzer(method: str = "auto", analyzer: FrameAnalyzer | AnalyzeFn | None = None,
                  **kwargs: Any) -> FrameAnalyzer:
    """Return a :class:`FrameAnalyzer` for a method name, or wrap a plain function as one."""
    if isinstance(analyzer, FrameAnalyzer):
        return analyzer
    return FrameAnalyzer(method, func=analyzer, **kwargs)
