"""Training cutouts generated on the fly: simulator scenes labelled by the exact fit, in chunks.

Chunk ``k`` of a stream with seed ``s`` is :func:`laue_live.sim.render_spot_scenes` with the
random generator seeded by ``(s, k)``, labelled by the exact fit
(:func:`laue_live.spots.fit_descriptors`, the paper's ground truth), the simulator's truth kept
beside it: the same chunk on every machine. Chunks are written to a cache folder as compressed
``.npz`` files (uint16 cutouts, no pickle) by worker *processes* (``python -m
laue_live.training._scene_stream``), ahead of the trainer, so that rendering and fitting run beside
the network instead of in front of it; a second training on the same stream reads them back. A
worker reports each finished chunk on its stdout; a chunk is written to a temporary name and
renamed, so a killed worker never leaves a half-written chunk behind.

Lives in :mod:`laue_live.training`, the only science package that imports the simulator.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from laue_live.cnn import SpotSet
from laue_live.sim import SHAPES, render_spot_scenes
from laue_live.spots import fit_descriptors

__all__ = ["SceneStream", "render_chunk", "chunk_path", "STREAM_VERSION"]

logger = logging.getLogger(__name__)

#: Version of the scenes and their labels: part of every chunk's file name, bumped whenever
#: ``render_spot_scenes``' defaults or the labelling change, so that no stale chunk is reused.
STREAM_VERSION = 2

#: Columns of the exact fit kept per cutout, and of the simulator's truth (prefixed ``true_``).
_FIT_COLUMNS = (
    "sim0",
    "sim",
    "d_row",
    "d_col",
    "asp",
    "area",
    "sigma_row",
    "sigma_col",
    "amplitude",
    "background",
    "converged",
)
_TRUTH_COLUMNS = ("d_row", "d_col", "sigma_row", "sigma_col", "peak_height", "n_neighbours", "mask")


def chunk_path(cache: Path, seed: int, k: int, size: int) -> Path:
    """File of chunk ``k`` of the stream ``seed`` with ``size`` cutouts per chunk."""
    return Path(cache) / f"scenes-v{STREAM_VERSION}-s{seed}-n{size}-{k:05d}.npz"


def render_chunk(seed: int, k: int, size: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Render and label chunk ``k`` of stream ``seed`` (``size`` cutouts): uint16 cutouts and a table.

    The table holds the fit's :data:`_FIT_COLUMNS` and the truth as ``true_d_row, true_d_col,
    true_sigma_row, true_sigma_col, true_peak_height, true_n_neighbours, true_mask`` and ``shape``
    (index into :data:`laue_live.sim.SHAPES`).
    """
    rng = np.random.default_rng([int(seed), int(k)])
    cut, truth = render_spot_scenes(size, rng)
    fit = fit_descriptors(cut)
    table = pd.DataFrame({c: fit[c].to_numpy() for c in _FIT_COLUMNS})
    for c in _TRUTH_COLUMNS:
        table[f"true_{c}"] = truth[c].to_numpy()
    table["shape"] = pd.Categorical(truth["shape"], categories=SHAPES).codes.astype(np.int8)
    return cut.astype(np.uint16), table


def _write_chunk(path: Path, cut: np.ndarray, table: pd.DataFrame) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    cols = {f"col_{c}": table[c].to_numpy() for c in table.columns}
    np.savez_compressed(tmp, cutouts=cut, **cols)
    os.replace(tmp, path)


def _read_chunk(path: Path, name: str) -> SpotSet:
    with np.load(path, allow_pickle=False) as z:
        table = pd.DataFrame({k[4:]: z[k] for k in z.files if k.startswith("col_")})
        return SpotSet(z["cutouts"].astype(np.float32), table, name)


@dataclass
class SceneStream:
    """Chunks of simulated, fit-labelled training cutouts (see the module docstring).

    Parameters
    ----------
    cache
        Folder of the chunk files (created).
    seed
        Stream seed; chunk ``k`` depends only on ``(seed, k, chunk)``.
    chunk
        Cutouts per chunk.
    workers
        Worker processes rendering missing chunks ahead of the reader (0: render in this process).
    nice
        Niceness added to the workers (the trainer keeps the priority it has).
    """

    cache: Path
    seed: int = 0
    chunk: int = 8192
    workers: int = 1
    nice: int = 5

    def __post_init__(self) -> None:
        self.cache = Path(self.cache)
        self.cache.mkdir(parents=True, exist_ok=True)
        if self.chunk < 1 or self.workers < 0:
            raise ValueError(f"chunk must be >= 1 and workers >= 0, got {self.chunk}, {self.workers}")

    def path(self, k: int) -> Path:
        """File of chunk ``k``."""
        return chunk_path(self.cache, self.seed, k, self.chunk)

    def get(self, k: int) -> SpotSet:
        """Chunk ``k`` (read from the cache, rendered here if missing)."""
        p = self.path(k)
        if not p.is_file():
            cut, table = render_chunk(self.seed, k, self.chunk)
            _write_chunk(p, cut, table)
        return _read_chunk(p, f"scenes-{self.seed}-{k}")

    def chunks(self, ks) -> Iterator[SpotSet]:
        """Yield chunks ``ks`` in order; missing ones are rendered by the worker processes meanwhile."""
        ks = [int(k) for k in ks]
        missing = [k for k in dict.fromkeys(ks) if not self.path(k).is_file()]
        if not missing or self.workers == 0:
            for k in ks:
                yield self.get(k)
            return
        procs = []
        for w in range(min(self.workers, len(missing))):
            mine = missing[w :: self.workers]
            cmd = [
                sys.executable,
                "-m",
                "laue_live.training._scene_stream",
                "--cache",
                str(self.cache),
                "--seed",
                str(self.seed),
                "--chunk",
                str(self.chunk),
                "--nice",
                str(self.nice),
                "--ks",
                ",".join(map(str, mine)),
            ]
            procs.append(
                subprocess.Popen(
                    cmd,
                    stdout=subprocess.PIPE,
                    text=True,
                    env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
                )
            )
        owner = {k: procs[i % len(procs)] for i, k in enumerate(missing)}
        try:
            for k in ks:
                proc = owner.get(k)
                while proc is not None and not self.path(k).is_file():
                    line = proc.stdout.readline()  # blocks until the worker finishes a chunk
                    if not line and proc.poll() is not None:
                        raise RuntimeError(f"scene worker exited with {proc.returncode} before chunk {k}")
                yield self.get(k)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                p.wait(timeout=30)
                if p.stdout:
                    p.stdout.close()


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="render chunks of a scene stream into a cache folder")
    ap.add_argument("--cache", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--chunk", type=int, required=True)
    ap.add_argument("--ks", required=True, help="comma-separated chunk indices")
    ap.add_argument("--nice", type=int, default=0)
    a = ap.parse_args(argv)
    if a.nice:
        os.nice(a.nice)
    torch.set_num_threads(1)
    for k in (int(v) for v in a.ks.split(",") if v):
        p = chunk_path(Path(a.cache), a.seed, k, a.chunk)
        if not p.is_file():
            cut, table = render_chunk(a.seed, k, a.chunk)
            _write_chunk(p, cut, table)
        print(k, flush=True)  # the worker's protocol: the parent reads one finished chunk a line
    return 0


if __name__ == "__main__":
    sys.exit(_main())
