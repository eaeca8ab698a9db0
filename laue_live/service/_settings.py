"""Settings of the standalone analysis service (``laue-live serve``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from laue_live._errors import SettingsError
from laue_live._run import IndexingRequest
from laue_live.analysis import IndexingConfig, resolve_indexing
from laue_live.geometry import get_detector
from laue_live.io import load_calibration, load_corrections
from laue_live.spots import check_peak_params
from laue_live.stream import (
    DEFAULT_MAX_BYTES,
    CurveClient,
    CurveServer,
    curve_client_from_env,
    curve_server_from_env,
    normalize_address,
)

__all__ = ["ServiceSettings", "DEFAULT_INPUT", "DEFAULT_PUBLISH"]

#: Where ``bluesky-0MQ-proxy --out-address`` / ``laue-live proxy`` serves documents by default.
DEFAULT_INPUT = "127.0.0.1:5578"
#: Where the service publishes spot tables by default.
DEFAULT_PUBLISH = "127.0.0.1:5579"


@dataclass(frozen=True)
class ServiceSettings:
    """What the analysis service listens to, where it writes and publishes, and how it reports.

    Parameters
    ----------
    input_address
        ``"host:port"`` of the 0MQ proxy output that carries the RunEngine's documents.
    input_prefix
        Only documents published with this bluesky prefix (bytes, no spaces); ``b""`` for all.
    publish_address
        ``"host:port"`` to bind the spot-table publisher on (127.0.0.1 by default; port 0: free port).
    publish_hwm
        Messages queued per spot subscriber before dropping.
    method, device, model
        Analysis: ``"fit"``, ``"cnn"`` or ``"auto"``; torch device (``"cpu"``, ``"cuda"``); CNN model.
    pipeline
        ``"numpy"``, ``"torch"`` (:class:`laue_live.pipeline.FramePipeline` on ``device``) or
        ``"auto"`` (torch when a CUDA device is present).
    state_dir
        Folder of the status file (``status.json``) and the run journal (``runs.journal``).
    status_interval
        Seconds between status reports (file and ``laue.status`` message).
    max_backlog, max_bytes
        Input socket: messages held while busy; largest accepted message (bytes).
    drain_timeout
        On shutdown, seconds to wait for queued frames to be analysed and written.
    write_raw
        Also write the raw runs into the catalog's raw container (when nothing else does).
    recover
        On start, re-analyse from Tiled the raw runs that were being analysed when the service last
        stopped (journal), completing their analysis runs (needs the raw runs in Tiled).
    publish_curve, input_curve
        CURVE keys of the publisher (server) and of the input connection (client), or ``None``.
    peak_params
        Peak-search parameters (:func:`laue_live.spots.check_peak_params`: ``threshold`` in local
        noise sigmas, ``block``, ``min_pixels``, ``merge_radius``, ``min_noise``, ``saturation``).
    detector
        Detector preset name (:func:`laue_live.geometry.get_detector`): its saturation, and the
        shape that mask, dark and flat must have.
    calibration_file
        LaueTools ``.det`` calibration: spot tables carry ``two_theta`` and ``chi``.
    mask_file, dark_file, flat_file, auto_mask, beamstop
        Detector corrections (:func:`laue_live.io.load_corrections`): a mask file, a dark frame, a
        flat field, the automatic mask of 0-reading and hot pixels, a ``"row,col,radius"`` beamstop.
    indexing
        Index the frames of runs whose start document, or these settings, name a material and a
        calibration (``False``: never).
    index_material, index_energy_range
        The defaults for runs whose start document does not name them: material name(s) and
        ``(E_min, E_max)`` keV (see :class:`laue_live.analysis.IndexingConfig`); the calibration is
        ``calibration_file``, the one that gives the spot tables their ``two_theta, chi``.
    index_prefer
        ``"start"``: a start document's material/calibration win over these; ``"settings"``: these win.
    index_policy, index_queue_size, index_close_timeout
        The indexing stage's queue policy (``spill``, ``drop_newest``, ``block``), bound, and the
        seconds it may take after a run's last frame before the rest is recorded as not indexed
        (None: until done).
    """

    input_address: str = DEFAULT_INPUT
    input_prefix: bytes = b""
    publish_address: str = DEFAULT_PUBLISH
    publish_hwm: int = 1000
    method: str = "auto"
    device: str | None = None
    model: str | None = None
    pipeline: str = "auto"
    state_dir: Path = Path("laue-live-service")
    status_interval: float = 5.0
    max_backlog: int = 1000
    max_bytes: int = DEFAULT_MAX_BYTES
    drain_timeout: float = 120.0
    write_raw: bool = False
    recover: bool = False
    publish_curve: CurveServer | None = field(default=None)
    input_curve: CurveClient | None = field(default=None)
    peak_params: dict = field(default_factory=dict)
    detector: str | None = None
    calibration_file: Path | None = None
    mask_file: Path | None = None
    dark_file: Path | None = None
    flat_file: Path | None = None
    auto_mask: bool = True
    beamstop: str | None = None
    indexing: bool = True
    index_material: tuple[str, ...] | None = None
    index_energy_range: tuple[float, float] | None = None
    index_prefer: str = "start"
    index_policy: str = "spill"
    index_queue_size: int = 64
    index_close_timeout: float | None = None

    def __post_init__(self) -> None:
        normalize_address(self.input_address, bind=False)
        normalize_address(self.publish_address, bind=True)
        if b" " in self.input_prefix:
            raise SettingsError("input_prefix may not contain spaces")
        if self.method not in ("auto", "fit", "cnn"):
            raise SettingsError(f"method must be auto, fit or cnn, not {self.method!r}")
        if self.status_interval <= 0 or self.publish_hwm < 1 or self.max_backlog < 1:
            raise SettingsError("status_interval, publish_hwm and max_backlog must be positive")
        object.__setattr__(self, "state_dir", Path(self.state_dir).expanduser())
        params = self.peak_params
        if isinstance(params, str):
            try:
                params = json.loads(params)
            except ValueError:
                raise SettingsError(f"peak_params must be a JSON object, got {self.peak_params!r}") from None
        if not isinstance(params, Mapping):
            raise SettingsError(f"peak_params must be a mapping of peak-search parameters, got {params!r}")
        check_peak_params(dict(params))
        object.__setattr__(self, "peak_params", dict(params))
        if self.detector is not None:
            get_detector(self.detector)
        if isinstance(self.index_material, str):
            object.__setattr__(self, "index_material", tuple(m.strip() for m in self.index_material.split(",")
                                                             if m.strip()))
        if isinstance(self.index_energy_range, str):
            try:
                object.__setattr__(self, "index_energy_range", tuple(
                    float(v) for v in self.index_energy_range.replace(",", " ").split()))
            except ValueError:
                raise SettingsError(f"energy range must be 'E_min,E_max' in keV, got "
                                    f"{self.index_energy_range!r}") from None
        if isinstance(self.indexing, str):
            off = self.indexing.strip().lower() in ("0", "false", "no", "off")
            object.__setattr__(self, "indexing", not off)
        config = self.indexing_config()  # checks the policy and bounds
        if config.enabled and config.material and config.calibration:
            # a wrong material or calibration is one line at start-up, not an error per run
            resolve_indexing(IndexingRequest(config.material, config.calibration, config.energy_range))

    def analysis_options(self) -> dict:
        """Peak parameters, detector corrections and calibration for the analyser, read from the files.

        Raises
        ------
        SettingsError, FrameFileError
            A file that cannot be read, a mask or dark of the wrong shape, a bad beamstop.
        """
        det = None if self.detector is None else get_detector(self.detector)
        params = dict(self.peak_params)
        if det is not None:
            params.setdefault("saturation", det.saturation)
        return {
            "peak_params": check_peak_params(params),
            "corrections": load_corrections(self.mask_file, self.dark_file, self.flat_file,
                                            auto=self.auto_mask, beamstop=self.beamstop, detector=det),
            "calibration": load_calibration(self.calibration_file, det),
        }

    def indexing_config(self) -> IndexingConfig:
        """Return the live indexing settings of every run (:class:`laue_live.analysis.IndexingConfig`)."""
        material = list(self.index_material) if self.index_material else None
        return IndexingConfig(material=material[0] if material and len(material) == 1 else material,
                              calibration=str(self.calibration_file) if self.calibration_file else None,
                              energy_range=self.index_energy_range,
                              enabled=bool(self.indexing), prefer=self.index_prefer, policy=self.index_policy,
                              queue_size=self.index_queue_size, close_timeout=self.index_close_timeout)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> ServiceSettings:
        """Build settings from the environment; explicit ``overrides`` (not ``None``) win.

        Reads ``LAUE_LIVE_SERVE_INPUT``, ``LAUE_LIVE_SERVE_PUBLISH``, ``LAUE_LIVE_SERVE_STATE_DIR``,
        ``LAUE_LIVE_DEVICE``, ``LAUE_LIVE_METHOD``, ``LAUE_LIVE_PIPELINE``, ``LAUE_LIVE_PEAK_PARAMS``
        (a JSON object), ``LAUE_LIVE_DETECTOR``, ``LAUE_LIVE_CALIBRATION`` (also the indexing's),
        ``LAUE_LIVE_MASK``, ``LAUE_LIVE_DARK``, ``LAUE_LIVE_FLAT``, the indexing defaults
        ``LAUE_LIVE_MATERIAL`` (names, comma-separated), ``LAUE_LIVE_ENERGY_RANGE`` (``"5,23"`` keV),
        ``LAUE_LIVE_INDEXING`` (``0`` to switch it off), and the CURVE variables (see
        :func:`laue_live.stream.curve_server_from_env`).
        """
        env = os.environ if env is None else env
        values = {
            "input_address": env.get("LAUE_LIVE_SERVE_INPUT"),
            "publish_address": env.get("LAUE_LIVE_SERVE_PUBLISH"),
            "state_dir": env.get("LAUE_LIVE_SERVE_STATE_DIR"),
            "device": env.get("LAUE_LIVE_DEVICE"),
            "method": env.get("LAUE_LIVE_METHOD"),
            "pipeline": env.get("LAUE_LIVE_PIPELINE"),
            "peak_params": env.get("LAUE_LIVE_PEAK_PARAMS"),
            "detector": env.get("LAUE_LIVE_DETECTOR"),
            "calibration_file": env.get("LAUE_LIVE_CALIBRATION"),
            "mask_file": env.get("LAUE_LIVE_MASK"),
            "dark_file": env.get("LAUE_LIVE_DARK"),
            "flat_file": env.get("LAUE_LIVE_FLAT"),
            "index_material": env.get("LAUE_LIVE_MATERIAL"),
            "index_energy_range": env.get("LAUE_LIVE_ENERGY_RANGE"),
            "indexing": env.get("LAUE_LIVE_INDEXING"),
        }
        if env is os.environ:
            values["publish_curve"] = curve_server_from_env()
            values["input_curve"] = curve_client_from_env("LAUE_LIVE_INPUT_CURVE")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: v for k, v in values.items() if v is not None})
