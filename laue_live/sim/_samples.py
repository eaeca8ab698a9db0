"""Sample models for raster scans: what the beam hits at stage position ``(x, y)``.

Every sample answers :meth:`Sample.spots_at` (the spot list of all crystals under the beam, with
their intensities weighted by the illuminated fraction) and :meth:`Sample.frame_at` (the rendered
frame and its ground truth). Stage coordinates are in the motors' units (micrometres for the
simulated stage). Everything is deterministic given the sample's ``seed`` (and the ``rng`` passed
to ``frame_at``, or a generator derived from the seed and the position when none is passed).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from laue_live._errors import SettingsError
from laue_live.geometry import (
    BM32_CALIBRATION,
    Calibration,
    Material,
    get_material,
    random_rotation,
    rotation_matrix,
    simulate_spots,
)
from laue_live.sim._render import RenderConfig, RenderedFrame, render_frame
from laue_live.sim._shapes import normalize_shape_mix

__all__ = ["Grain", "Sample", "SingleCrystal", "BentCrystal", "Polycrystal"]

log = logging.getLogger(__name__)


@dataclass
class Grain:
    """One crystal: material, orientation matrix (LaueTools frame) and strain (crystal frame).

    ``shape_mix`` (a preset name of :data:`SHAPE_MIX_PRESETS`) gives the grain its own spot quality;
    ``None`` uses the sample's render configuration.
    """

    material: str | Material
    orientation: np.ndarray
    strain: np.ndarray | None = None
    shape_mix: str | None = None

    def __post_init__(self) -> None:
        self.material = get_material(self.material)
        self.orientation = np.asarray(self.orientation, dtype=float)


class Sample:
    """Base class: subclasses implement :meth:`grains_at`.

    Parameters
    ----------
    calibration
        Detector geometry (BM32's by default).
    render_config
        Spot shapes, intensities and noise (:class:`RenderConfig`).
    energy_range
        Beam band, keV.
    seed
        Seed of everything random about the sample and (by default) its frames.
    """

    kind = "sample"

    def __init__(
        self,
        calibration: Calibration | None = None,
        render_config: RenderConfig | None = None,
        energy_range: tuple[float, float] = (5.0, 23.0),
        seed: int = 0,
    ) -> None:
        self.calibration = calibration or BM32_CALIBRATION
        self.render_config = render_config or RenderConfig()
        self.energy_range = tuple(float(e) for e in energy_range)
        if not isinstance(seed, int | np.integer) or seed < 0:
            raise SettingsError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self._cache: dict = {}

    # -- to be implemented -------------------------------------------------------------------
    def grains_at(self, x: float, y: float) -> list[tuple[int, Grain, float]]:
        """``[(grain_id, grain, weight), ...]`` illuminated at ``(x, y)``; weights sum to <= 1."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Metadata of the sample (JSON-able), recorded in start documents."""
        return {"kind": self.kind, "seed": self.seed, "energy_range_keV": list(self.energy_range)}

    # -- shared ------------------------------------------------------------------------------
    @property
    def material(self) -> Material:
        """The (main) material."""
        return self._material

    def _grain_spots(self, gid, grain: Grain, cache: bool) -> pd.DataFrame:
        if cache and gid in self._cache:
            return self._cache[gid]
        df = simulate_spots(
            grain.material, grain.orientation, self.calibration, self.energy_range, grain.strain
        )
        if cache:
            self._cache[gid] = df
        return df

    def spots_at(self, x: float, y: float) -> pd.DataFrame:
        """Spot list of everything under the beam at ``(x, y)``, with a ``grain`` and ``weight`` column."""
        if not (np.isfinite(x) and np.isfinite(y)):
            raise SettingsError(f"stage position must be finite, got ({x}, {y})")
        parts = []
        for gid, grain, weight in self.grains_at(float(x), float(y)):
            df = self._grain_spots(gid, grain, cache=self._cacheable).copy()
            df["intensity"] *= weight
            df["grain"] = np.int32(gid if isinstance(gid, int | np.integer) else hash(gid) % 2**31)
            df["weight"] = weight
            if grain.shape_mix is not None:
                df["shape_mix"] = grain.shape_mix
            parts.append(df)
        if not parts:
            return (
                simulate_spots(self.material, np.eye(3), self.calibration, self.energy_range)
                .iloc[:0]
                .assign(grain=np.int32(0), weight=0.0)
            )
        return pd.concat(parts, ignore_index=True)

    _cacheable = True

    def default_rng(self, x: float, y: float) -> np.random.Generator:
        """Return the generator used for the frame at ``(x, y)`` when none is given (seed + position)."""
        digest = hashlib.blake2b(np.array([x, y], dtype=np.float64).tobytes(), digest_size=8).digest()
        return np.random.default_rng([self.seed, int.from_bytes(digest, "little")])

    def frame_at(self, x: float, y: float, rng=None) -> RenderedFrame:
        """Render the frame the detector sees with the beam at stage position ``(x, y)``."""
        rng = self.default_rng(x, y) if rng is None else np.random.default_rng(rng)
        return render_frame(self.spots_at(x, y), self.render_config, rng, self.calibration.frame_shape)


class SingleCrystal(Sample):
    """A single crystal, optionally with a strain that varies linearly across the sample.

    Parameters
    ----------
    material
        Material or its name.
    orientation
        Orientation matrix; a random one (from ``seed``) if ``None``.
    strain
        Strain tensor at ``(0, 0)`` (crystal frame), or ``None``.
    strain_gradient
        ``(dstrain/dx, dstrain/dy)``: two 3 x 3 symmetric tensors per stage unit, or ``None``.
    **kwargs
        See :class:`Sample`.
    """

    kind = "single_crystal"

    def __init__(self, material="Si", orientation=None, strain=None, strain_gradient=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._material = get_material(material)
        rng = np.random.default_rng(self.seed)
        self.orientation = random_rotation(rng) if orientation is None else np.asarray(orientation, float)
        self.strain = None if strain is None else np.asarray(strain, float)
        self.strain_gradient = None
        if strain_gradient is not None:
            g = np.asarray(strain_gradient, float)
            if g.shape != (2, 3, 3):
                raise SettingsError(f"strain_gradient must be two 3 x 3 tensors (d/dx, d/dy), got {g.shape}")
            self.strain_gradient = g
        self._cacheable = self.strain_gradient is None

    def strain_at(self, x: float, y: float) -> np.ndarray | None:
        """Strain tensor at ``(x, y)``."""
        if self.strain_gradient is None:
            return self.strain
        base = np.zeros((3, 3)) if self.strain is None else self.strain
        return base + x * self.strain_gradient[0] + y * self.strain_gradient[1]

    def grains_at(self, x, y):  # noqa: D102
        return [(0, Grain(self._material, self.orientation, self.strain_at(x, y)), 1.0)]

    def describe(self) -> dict:  # noqa: D102
        d = super().describe()
        d.update(
            material=self._material.name,
            orientation=self.orientation.tolist(),
            strain=None if self.strain is None else self.strain.tolist(),
            strain_gradient=None if self.strain_gradient is None else self.strain_gradient.tolist(),
        )
        return {k: v for k, v in d.items() if v is not None}


class BentCrystal(Sample):
    """A crystal bent about one axis: the lattice rotates by ``curvature`` degrees per stage unit along x.

    The beam footprint (``beam_size``) sees a range of orientations, rendered as ``n_sub``
    sub-crystals: spots elongate or split as the bending grows.

    Parameters
    ----------
    material, orientation
        As :class:`SingleCrystal`.
    curvature
        Lattice rotation per stage unit along x, degrees.
    axis
        Bending axis in the LaueTools frame (default: the horizontal axis normal to the beam, y).
    beam_size
        Beam footprint along x, stage units.
    n_sub
        Sub-crystals per footprint.
    """

    kind = "bent_crystal"
    _cacheable = False

    def __init__(
        self,
        material="Si",
        orientation=None,
        curvature: float = 0.02,
        axis=(0.0, 1.0, 0.0),
        beam_size: float = 1.0,
        n_sub: int = 3,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self._material = get_material(material)
        rng = np.random.default_rng(self.seed)
        self.orientation = random_rotation(rng) if orientation is None else np.asarray(orientation, float)
        if not np.isfinite(curvature) or beam_size <= 0 or int(n_sub) < 1:
            raise SettingsError("curvature must be finite, beam_size > 0 and n_sub >= 1")
        self.curvature, self.axis = float(curvature), np.asarray(axis, float)
        self.beam_size, self.n_sub = float(beam_size), int(n_sub)

    def grains_at(self, x, y):  # noqa: D102
        offsets = (np.arange(self.n_sub) + 0.5) / self.n_sub - 0.5
        out = []
        for i, dx in enumerate(offsets * self.beam_size):
            rot = rotation_matrix(self.axis, self.curvature * (x + dx))
            out.append((i, Grain(self._material, rot @ self.orientation), 1.0 / self.n_sub))
        return out

    def describe(self) -> dict:  # noqa: D102
        d = super().describe()
        d.update(
            material=self._material.name,
            orientation=self.orientation.tolist(),
            curvature_deg=self.curvature,
            axis=self.axis.tolist(),
            beam_size=self.beam_size,
        )
        return d


class Polycrystal(Sample):
    """A polycrystal: a Voronoi map of grains, each with its own orientation and strain.

    Near a boundary the beam footprint covers two or more grains and their patterns overlap,
    weighted by the illuminated fractions.

    Parameters
    ----------
    material
        Material or name (one phase).
    n_grains
        Number of grains.
    extent
        ``((x_min, x_max), (y_min, y_max))`` of the grain map, stage units.
    beam_size
        Beam footprint diameter, stage units.
    strain_sigma
        Standard deviation of each grain's random deviatoric strain components.
    grain_shape_mixes
        Optional shape-mix presets drawn at random per grain (e.g. ``("clean", "bm32", "deformed")``),
        so that spot quality varies from grain to grain on a map; ``None``: the render config's mix.
    """

    kind = "polycrystal"

    def __init__(
        self,
        material="Cu",
        n_grains: int = 12,
        extent=((0.0, 20.0), (0.0, 20.0)),
        beam_size: float = 1.0,
        strain_sigma: float = 5e-4,
        grain_shape_mixes=None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self._material = get_material(material)
        (x0, x1), (y0, y1) = extent
        if int(n_grains) < 1 or not (x1 > x0 and y1 > y0) or beam_size <= 0 or strain_sigma < 0:
            raise SettingsError("need n_grains >= 1, a non-empty extent, beam_size > 0 and strain_sigma >= 0")
        self.extent = ((float(x0), float(x1)), (float(y0), float(y1)))
        self.beam_size = float(beam_size)
        rng = np.random.default_rng(self.seed)
        self.seeds = np.column_stack([rng.uniform(x0, x1, n_grains), rng.uniform(y0, y1, n_grains)])
        self.grains = []
        for _ in range(int(n_grains)):
            e = rng.normal(0, strain_sigma, (3, 3))
            e = 0.5 * (e + e.T)
            e -= np.trace(e) / 3 * np.eye(3)  # deviatoric only
            self.grains.append(Grain(self._material, random_rotation(rng), e))
        if grain_shape_mixes:
            mixes = [str(m) for m in grain_shape_mixes]
            for m in mixes:
                normalize_shape_mix(m)  # fail early on an unknown preset
            pick = np.random.default_rng([self.seed, 1]).integers(0, len(mixes), len(self.grains))
            for grain, k in zip(self.grains, pick, strict=True):
                grain.shape_mix = mixes[k]
        # footprint sample points (unit disk), for illuminated fractions
        g = np.linspace(-0.5, 0.5, 9)
        pts = np.array([(a, b) for a in g for b in g if a * a + b * b <= 0.25])
        self._footprint = pts

    def grain_id_at(self, x, y) -> np.ndarray:
        """Grain index at points ``(x, y)`` (arrays allowed): the nearest Voronoi seed."""
        p = np.stack(np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float)), axis=-1)
        d = ((p[..., None, :] - self.seeds) ** 2).sum(-1)
        return d.argmin(-1)

    def grains_at(self, x, y):  # noqa: D102
        pts = self._footprint * self.beam_size + np.array([x, y])
        ids = self.grain_id_at(pts[:, 0], pts[:, 1])
        counts = np.bincount(ids, minlength=len(self.grains)) / len(ids)
        return [(int(i), self.grains[i], float(counts[i])) for i in np.flatnonzero(counts > 0.02)]

    def describe(self) -> dict:  # noqa: D102
        d = super().describe()
        d.update(
            material=self._material.name,
            n_grains=len(self.grains),
            extent=[list(e) for e in self.extent],
            beam_size=self.beam_size,
            grain_seeds=self.seeds.tolist(),
            grain_orientations=[g.orientation.tolist() for g in self.grains],
        )
        if any(g.shape_mix for g in self.grains):
            d["grain_shape_mixes"] = [g.shape_mix or "" for g in self.grains]
        return d
