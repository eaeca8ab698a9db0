"""A simulated Laue area detector (ophyd v1) and a two-motor sample stage.

``SimLaueDetector.trigger()`` reads the stage motors, renders the frame the sample gives at that
position (:meth:`Sample.frame_at`) and records its ground truth. Three delivery modes:

``"inline"``
    The uint16 frame is the value of ``{name}_image`` in the event.
``"hdf5"``
    As real area detectors do, the frame is appended to ``/entry/data/data`` of an HDF5 file
    (one file per staging, chunks of one frame, SWMR) and the event carries only
    StreamResource/StreamDatum documents pointing at it (``external: "STREAM:"``). The ground
    truth goes to ``/entry/truth`` of the same file.
``"hdf5_legacy"``
    Same file, announced with the older Resource/Datum documents (spec ``AD_HDF5``).

The describe() of the image always states ``dtype_numpy: "<u2"`` and the shape, so that
TiledWriter stores uint16 rather than float64 (see ECOSYSTEM.md section 2).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from pathlib import Path

import numpy as np
import pandas as pd
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.sim import SynAxis
from ophyd.status import DeviceStatus

from laue_live._errors import SettingsError
from laue_live.sim._samples import Sample, SingleCrystal
from laue_live.sim._truth import H5TruthWriter, conform_truth

__all__ = ["SimLaueDetector", "make_sim_stage", "MODES", "H5_DATASET"]

log = logging.getLogger(__name__)

MODES = ("inline", "hdf5", "hdf5_legacy")
#: Dataset of the frames in the detector's HDF5 files.
H5_DATASET = "/entry/data/data"


def make_sim_stage(prefix: str = "stage", delay: float = 0.0) -> tuple[SynAxis, SynAxis]:
    """Two simulated motors ``(x, y)`` for the sample stage (units: micrometres).

    Parameters
    ----------
    prefix
        Names become ``f"{prefix}_x"`` and ``f"{prefix}_y"``.
    delay
        Simulated move time, s (0: instantaneous).
    """
    x = SynAxis(name=f"{prefix}_x", delay=delay, egu="um", labels={"motors"})
    y = SynAxis(name=f"{prefix}_y", delay=delay, egu="um", labels={"motors"})
    return x, y


class SimLaueDetector(Device):
    """Simulated BM32 Laue detector.

    Parameters
    ----------
    name
        Device name; the image's data key is ``f"{name}_image"``.
    sample
        What the beam hits (a :class:`~laue_live.sim.Sample`); a Si single crystal by default.
    x_motor, y_motor
        Stage motors whose positions pick the spot on the sample (0 if not given).
    mode
        ``"inline"``, ``"hdf5"`` or ``"hdf5_legacy"`` (see the module doc).
    write_dir
        Folder for the HDF5 files (required by the file modes) and, in inline mode, for a Parquet
        side-car of the ground truth written at unstage (optional).
    seed
        Seed of the per-frame noise and shapes: frame ``i`` of a staging uses
        ``default_rng([seed, i])``.
    """

    image = Cpt(Signal, value=np.zeros((1, 1), np.uint16), kind="normal")
    frame_index = Cpt(Signal, value=-1, kind="normal")
    n_spots = Cpt(Signal, value=0, kind="normal")
    mode = Cpt(Signal, value="inline", kind="config")
    truth_path = Cpt(Signal, value="", kind="config")

    def __init__(
        self,
        name: str = "laue",
        *,
        sample: Sample | None = None,
        x_motor=None,
        y_motor=None,
        mode: str = "inline",
        write_dir: str | Path | None = None,
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        if mode not in MODES:
            raise SettingsError(f"mode must be one of {MODES}, got {mode!r}")
        if mode != "inline" and write_dir is None:
            raise SettingsError(f"mode {mode!r} writes HDF5 files: give write_dir")
        self.sample = sample if sample is not None else SingleCrystal("Si", seed=seed)
        self.x_motor, self.y_motor = x_motor, y_motor
        self.write_dir = None if write_dir is None else Path(write_dir)
        self.seed = int(seed)
        self.mode.put(mode)
        self._lock = threading.Lock()
        self._asset_docs: deque = deque()
        self._truth_parts: list[pd.DataFrame] = []
        self._h5 = None
        self._h5_truth = None
        self._file: Path | None = None
        self._stream_datum = None
        self._resource_uid = None
        self._counter = 0
        rows, cols = self.sample.calibration.frame_shape
        self.frame_shape = (rows, cols)

    # -- properties -------------------------------------------------------------------------
    @property
    def image_key(self) -> str:
        """Data key of the frames in events and descriptors."""
        return self.image.name

    @property
    def file_path(self) -> Path | None:
        """HDF5 file of the current (or last) staging, file modes only."""
        return self._file

    @property
    def truth(self) -> pd.DataFrame:
        """Ground truth of every frame since the last :meth:`stage` (``frame`` column 0-based)."""
        if not self._truth_parts:
            return conform_truth(pd.DataFrame())
        return pd.concat(self._truth_parts, ignore_index=True)

    # -- staging ----------------------------------------------------------------------------
    def stage(self):  # noqa: D102
        self._counter = 0
        self._truth_parts = []
        self._asset_docs.clear()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        if self.mode.get() != "inline":
            self._open_file(self.write_dir / f"{self.name}_{stamp}_{uuid.uuid4().hex[:8]}.h5")
            self.truth_path.put(str(self._file))
        elif self.write_dir is not None:
            self.truth_path.put(
                str(self.write_dir / f"{self.name}_{stamp}_{uuid.uuid4().hex[:8]}_truth.parquet")
            )
        else:
            self.truth_path.put("")
        return super().stage()

    def unstage(self):  # noqa: D102
        try:
            if self._h5 is not None:
                self._h5.close()
                self._h5 = None
            elif self.truth_path.get():
                path = Path(self.truth_path.get())
                path.parent.mkdir(parents=True, exist_ok=True)
                self.truth.to_parquet(path, index=False)
        finally:
            out = super().unstage()
        return out

    def _open_file(self, path: Path) -> None:
        # h5py only for HDF5 files
        import h5py

        path.parent.mkdir(parents=True, exist_ok=True)
        rows, cols = self.frame_shape
        f = h5py.File(path, "w", libver="latest")
        f.create_dataset(
            H5_DATASET,
            shape=(0, rows, cols),
            maxshape=(None, rows, cols),
            dtype="<u2",
            chunks=(1, rows, cols),
        )
        # metadata as JSON strings, readable without laue-live
        f["/entry"].attrs["calibration"] = json.dumps(self.sample.calibration.to_dict())
        f["/entry"].attrs["sample"] = json.dumps(self.sample.describe(), default=str)
        f["/entry"].attrs["render_config"] = json.dumps(self.sample.render_config.to_dict(), default=str)
        f[H5_DATASET].attrs["units"] = "ADU"
        self._h5_truth = H5TruthWriter(f)
        f.swmr_mode = True  # readers (Tiled) may open it while frames are still being appended
        self._h5, self._file = f, path.resolve()
        uri = f"file://localhost{self._file}"
        if self.mode.get() == "hdf5":
            # the ecosystem only where documents are made: the module stays importable without it
            from event_model import compose_stream_resource

            bundle = compose_stream_resource(
                mimetype="application/x-hdf5",
                uri=uri,
                data_key=self.image_key,
                parameters={"dataset": H5_DATASET, "chunk_shape": [1, rows, cols]},
            )
            self._stream_datum = bundle.compose_stream_datum
            self._asset_docs.append(("stream_resource", bundle.stream_resource_doc))
        else:
            self._resource_uid = str(uuid.uuid4())
            self._asset_docs.append(
                (
                    "resource",
                    {
                        "spec": "AD_HDF5",
                        "root": "/",
                        "resource_path": str(self._file).lstrip("/"),
                        "resource_kwargs": {"frame_per_point": 1},
                        "path_semantics": "posix",
                        "uid": self._resource_uid,
                    },
                )
            )

    # -- acquisition ------------------------------------------------------------------------
    def _position(self) -> tuple[float, float]:
        def pos(m):
            if m is None:
                return 0.0
            p = m.position
            return float(p if np.isscalar(p) else np.asarray(p).ravel()[0])

        return pos(self.x_motor), pos(self.y_motor)

    def acquire(self) -> pd.DataFrame:
        """Render and deliver one frame now; returns its truth (what :meth:`trigger` does)."""
        with self._lock:
            x, y = self._position()
            i = self._counter
            rendered = self.sample.frame_at(x, y, np.random.default_rng([self.seed, i]))
            if rendered.frame.shape != self.frame_shape:
                raise RuntimeError(f"sample rendered {rendered.frame.shape}, detector is {self.frame_shape}")
            truth = conform_truth(rendered.truth, frame=i, x=x, y=y)
            mode = self.mode.get()
            if mode == "inline":
                self.image.put(rendered.frame)
            else:
                if self._h5 is None:
                    raise RuntimeError(f"{self.name}: stage the detector before triggering in {mode!r} mode")
                ds = self._h5[H5_DATASET]
                ds.resize((i + 1, *self.frame_shape))
                ds[i] = rendered.frame
                ds.flush()
                self._h5_truth.append(truth)
                if mode == "hdf5":
                    self._asset_docs.append(
                        ("stream_datum", self._stream_datum(indices={"start": i, "stop": i + 1}))
                    )
                else:
                    datum_id = f"{self._resource_uid}/{i}"
                    self._asset_docs.append(
                        (
                            "datum",
                            {
                                "resource": self._resource_uid,
                                "datum_id": datum_id,
                                "datum_kwargs": {"point_number": i},
                            },
                        )
                    )
                    self.image.put(datum_id)
            self._truth_parts.append(truth)
            self.frame_index.put(i)
            self.n_spots.put(len(truth))
            self._counter += 1
            log.debug("%s frame %d at (%g, %g): %d spots", self.name, i, x, y, len(truth))
            return truth

    def trigger(self) -> DeviceStatus:
        """Acquire one frame for the current stage position; the status completes when it is delivered."""
        status = DeviceStatus(self)
        try:
            self.acquire()
        except Exception as exc:  # the RunEngine reports a failed status as the scan's error
            status.set_exception(exc)
        else:
            status.set_finished()
        return status

    # -- bluesky protocol -------------------------------------------------------------------
    def describe(self):  # noqa: D102
        res = super().describe()
        key = self.image_key
        rows, cols = self.frame_shape
        res[key].update(dtype="array", shape=[rows, cols], dtype_numpy="<u2")
        mode = self.mode.get()
        if mode == "hdf5":
            res[key]["external"] = "STREAM:"
        elif mode == "hdf5_legacy":
            res[key]["external"] = "FILESTORE:"
        return res

    def read(self):  # noqa: D102
        res = super().read()
        if self.mode.get() == "hdf5":
            res.pop(self.image_key, None)  # delivered by stream_datum
        return res

    def collect_asset_docs(self, index: int | None = None):
        """Yield the (stream) resource and datum documents cached since the last call."""
        while self._asset_docs:
            yield self._asset_docs.popleft()
