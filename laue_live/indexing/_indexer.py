"""Laue indexing: orientations and deviatoric strains of the grains that made a frame's spots.

Method (classical Laue indexing, as LaueTools does, with a faster candidate ranking):

1. Every spot's scattering direction ``q`` follows from its pixel and the calibration.
2. For pairs of the brightest spots, the angle between their ``q`` is looked up in a table of
   angles between low-index directions of the material (:mod:`laue_live.indexing._tables`); each
   match gives a candidate orientation (the rotation taking the two crystal directions onto the two
   observed ones).
3. Candidates are ranked by how many of the brightest spots they explain as low-index directions
   (one KD-tree query for all of them); the best few are verified by predicting their whole pattern
   (:func:`~laue_live.indexing._forward.predict_spots`) and matching it to the spots within a radius
   that shrinks as the orientation, then the deviatoric strain, are refined on the matched spots.
4. A grain is accepted when enough spots match, with a small mean pixel deviation, a physical strain
   and far more matches than chance would give; its spots are removed and the search repeats for the
   next grain. When no candidate passes, the result says "no grain found" with the best candidate's
   statistics, never a grain.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from laue_live._errors import SettingsError, SpotTableError
from laue_live._schema import GRAIN_COLUMNS as _SCHEMA_GRAIN_COLUMNS
from laue_live.geometry import (
    HC_KEV_ANGSTROM,
    Calibration,
    Material,
    get_material,
    pixel_to_kf,
    strained_ub,
)
from laue_live.indexing._forward import Prediction, predict_spots
from laue_live.indexing._refine import best_rotation, refine_grain
from laue_live.indexing._symmetry import pattern_rotations
from laue_live.indexing._tables import build_angle_table, build_reflections

__all__ = [
    "IndexerSettings",
    "Indexer",
    "Grain",
    "CandidateStats",
    "IndexResult",
    "index_spots",
    "index_materials",
    "INTENSITY_COLUMNS",
    "GRAIN_COLUMNS",
]

log = logging.getLogger(__name__)

#: Columns tried, in order, to rank spots by brightness (spot tables, LaueTools .dat/.cor files).
INTENSITY_COLUMNS = ("intensity", "amplitude", "peak_Itot", "peak_Isub", "Itot", "I", "peak_intensity")
_STRAIN_KEYS = ("xx", "yy", "zz", "xy", "xz", "yz")
_STRAIN_IJ = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
#: Columns of :meth:`IndexResult.grains_table` (one row per grain): ``(name, unit, description)``,
#: the analysis run's ``grains`` table (:data:`laue_live._schema.GRAIN_COLUMNS`) without its ``frame``.
GRAIN_COLUMNS = tuple((c.name, c.unit, c.description) for c in _SCHEMA_GRAIN_COLUMNS if c.name != "frame")


@dataclass(frozen=True)
class IndexerSettings:
    """Tolerances and sizes of the indexing search; the defaults were tuned on the real frames.

    Parameters
    ----------
    n_lut
        About how many low-index directions (lowest ``|q|``, whole symmetry shells) enter the angle
        look-up table.
    n_score
        About how many directions the candidate ranking accepts as "explained".
    lut_tolerance_deg
        Tolerance on the angle between two spots' scattering vectors, degrees.
    score_tolerance_deg
        Angular tolerance of the ranking, degrees (approximate: see
        :class:`~laue_live.indexing._tables.DirectionMask`).
    n_brightest
        Spots used to rank candidates (the brightest still unassigned).
    n_pair_spots
        Spots among the brightest whose pairs give candidates.
    n_verify
        Candidates verified per batch of pairs (best ranked first).
    max_verifications
        Most candidates verified per grain searched (bounds the time spent on frames with no grain).
    min_ranking_score
        Fewest of the brightest spots a candidate must explain to be verified (the two spots of its
        own pair included; random orientations explain 2 to 4 of 20).
    match_radii_px
        Matching radii of the successive refinement stages (pixels): after the candidate, after the
        rotation fit, then for the strain refinement and the final statistics.
    min_matched
        Fewest matched spots for a grain.
    min_matched_fraction
        Smallest share of the grain's predicted spots that are observed (a spot of the table, good or
        not, within the final radius) for a grain.
    min_intensity_fraction
        Smallest share of the grain's predicted intensity (kinematic model with BM32's spectrum) that
        its matched spots must carry: a wrong lattice that happens to explain some spots leaves
        strong predicted spots unobserved.
    max_deviation_px
        Largest mean pixel deviation for a grain.
    max_strain
        Largest deviatoric strain component for a grain (larger means a wrong material or
        calibration, not a strained crystal).
    chance_factor
        A grain needs at least this many times the matches that chance gives (predicted spots x
        observed spot density x match area).
    max_grains
        Most grains searched per frame.
    refine_strain
        Refine the deviatoric strain (otherwise the orientation only).
    good_only
        Index with the spots of the table's ``good`` column only (when it has one); the others get
        labels afterwards if they sit on a predicted spot.
    """

    n_lut: int = 1000
    n_score: int = 4000
    lut_tolerance_deg: float = 0.15
    score_tolerance_deg: float = 0.25
    n_brightest: int = 20
    n_pair_spots: int = 10
    n_verify: int = 4
    max_verifications: int = 12
    min_ranking_score: int = 5
    match_radii_px: tuple[float, float, float] = (8.0, 4.0, 2.5)
    min_matched: int = 8
    min_matched_fraction: float = 0.2
    min_intensity_fraction: float = 0.75
    max_deviation_px: float = 1.0
    max_strain: float = 0.01
    chance_factor: float = 5.0
    max_grains: int = 5
    refine_strain: bool = True
    good_only: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "match_radii_px":
                if len(v) != 3 or not all(np.isfinite(r) and r > 0 for r in v):
                    raise SettingsError(f"match_radii_px must be 3 positive numbers, got {v!r}")
                object.__setattr__(self, f.name, tuple(float(r) for r in v))
            elif isinstance(v, bool):
                continue
            elif not (isinstance(v, int | float) and np.isfinite(v) and v >= 0):
                raise SettingsError(f"indexer setting {f.name} must be a number >= 0, got {v!r}")
        if self.min_matched < 4 or self.n_brightest < 3 or self.n_pair_spots < 2:
            raise SettingsError("min_matched must be >= 4, n_brightest >= 3, n_pair_spots >= 2")


@dataclass
class Grain:
    """One indexed grain of a frame.

    Attributes
    ----------
    U
        3 x 3 rotation, LaueTools frame (x along the beam, z up): ``q = U (I + strain)^-1 B hkl``,
        as the ``Umatrix`` of a LaueTools ``.fit`` file.
    strain
        3 x 3 deviatoric strain (symmetric, traceless) in the crystal frame of
        :func:`laue_live.geometry.reciprocal_basis` (x along a*, z along c).
    spots
        The matched rows of the spot table (original index kept) with ``h, k, l`` (lowest allowed
        harmonic in the band), ``energy_keV``, ``row_theo, col_theo`` (refined prediction) and
        ``deviation_px``.
    deviation_px
        Mean pixel distance between observed and predicted positions of the matched spots.
    matched_fraction
        Share of the predicted spots observed: a spot of the table (good or not, of this grain or
        overlapping another's) within the final matching radius.
    n_predicted
        Spots the refined grain predicts on the detector in the energy band.
    intensity_fraction
        Share of the predicted intensity (kinematic model) carried by the observed predicted spots.
    material
        Material name.
    UB
        ``U (I + strain)^-1 B`` (1/Angstrom; the hydrostatic scale is the reference lattice's).
    index
        Grain number within the frame (0-based, in the order found).
    """

    U: np.ndarray
    strain: np.ndarray
    spots: pd.DataFrame
    deviation_px: float
    matched_fraction: float
    n_predicted: int
    intensity_fraction: float
    material: str
    UB: np.ndarray
    index: int = 0

    @property
    def n_matched(self) -> int:
        """Number of matched spots."""
        return len(self.spots)

    @property
    def equivalent_strain(self) -> float:
        """Von Mises equivalent strain ``sqrt(2/3 e:e)`` of the deviatoric strain."""
        return float(np.sqrt(2.0 / 3.0 * np.sum(self.strain * self.strain)))

    def to_record(self) -> dict:
        """One row of :meth:`IndexResult.grains_table` (plain Python numbers)."""
        rec = {
            "grain": self.index,
            "material": self.material,
            "n_matched": self.n_matched,
            "n_predicted": self.n_predicted,
            "matched_fraction": float(self.matched_fraction),
            "intensity_fraction": float(self.intensity_fraction),
            "deviation_px": float(self.deviation_px),
        }
        rec.update({f"u{i + 1}{j + 1}": float(self.U[i, j]) for i in range(3) for j in range(3)})
        rec.update({f"strain_{k}": float(self.strain[i, j]) for k, (i, j) in zip(_STRAIN_KEYS, _STRAIN_IJ,
                                                                                   strict=True)})
        rec["equivalent_strain"] = self.equivalent_strain
        return rec

    def __str__(self) -> str:
        e = self.strain * 1e3
        return (f"grain {self.index} ({self.material}): {self.n_matched} spots matched, "
                f"{100 * self.matched_fraction:.0f}% of {self.n_predicted} predicted observed "
                f"({100 * self.intensity_fraction:.0f}% of the intensity), mean deviation "
                f"{self.deviation_px:.3f} px, deviatoric strain (1e-3, crystal frame) xx {e[0, 0]:.3f} "
                f"yy {e[1, 1]:.3f} zz {e[2, 2]:.3f} xy {e[0, 1]:.3f} xz {e[0, 2]:.3f} yz {e[1, 2]:.3f}")


@dataclass(frozen=True)
class CandidateStats:
    """Statistics of a verified candidate orientation, kept for the "no grain found" report.

    Attributes
    ----------
    n_matched, n_predicted, matched_fraction, deviation_px
        As for :class:`Grain`.
    intensity_fraction
        Share of the predicted intensity (kinematic model) carried by the observed predicted spots.
    max_strain
        Largest absolute deviatoric strain component after refinement.
    expected_by_chance
        Matches that chance would give: predicted spots x observed spot density x match area.
    U
        The candidate's refined orientation.
    reason
        Which acceptance test failed.
    """

    n_matched: int
    n_predicted: int
    matched_fraction: float
    deviation_px: float
    intensity_fraction: float
    max_strain: float
    expected_by_chance: float
    U: np.ndarray = field(repr=False)
    reason: str = ""

    def __str__(self) -> str:
        return (f"best candidate: {self.n_matched} spots matched, {100 * self.matched_fraction:.0f}% of "
                f"{self.n_predicted} predicted observed ({100 * self.intensity_fraction:.0f}% of the "
                f"intensity), mean deviation {self.deviation_px:.3f} px, max strain {self.max_strain:.2e}, "
                f"{self.expected_by_chance:.2f} matches expected by "
                f"chance; rejected: {self.reason}")


@dataclass
class IndexResult:
    """What :meth:`Indexer.index` found in one frame.

    Attributes
    ----------
    grains
        The grains, in the order found (empty: no grain found).
    spots
        The input table (same index and rows) with ``grain`` (int, -1 if unindexed), ``h, k, l``
        (0 if unindexed) and ``deviation_px`` (NaN if unindexed) added.
    best_rejected
        When no grain was found: the best candidate's statistics and why it was rejected (``None``
        when there was no candidate at all or a grain was found).
    seconds
        Time spent (wall clock).
    """

    grains: list[Grain]
    spots: pd.DataFrame
    best_rejected: CandidateStats | None = None
    seconds: float = 0.0

    def grains_table(self) -> pd.DataFrame:
        """One row per grain, columns :data:`GRAIN_COLUMNS` (empty table with them if none)."""
        cols = [c[0] for c in GRAIN_COLUMNS]
        return pd.DataFrame([g.to_record() for g in self.grains], columns=cols)

    def summary(self) -> str:
        """Human-readable lines: one per grain, or "no grain found" with the best candidate."""
        n = len(self.spots)
        if not self.grains:
            why = str(self.best_rejected) if self.best_rejected else "no candidate orientation"
            return f"no grain found among {n} spots; {why}"
        indexed = int((self.spots["grain"] >= 0).sum())
        return "\n".join([f"{len(self.grains)} grain(s), {indexed} of {n} spots indexed"]
                         + [str(g) for g in self.grains])


@dataclass(eq=False)
class _Verified:
    u: np.ndarray
    strain: np.ndarray
    pred: Prediction
    pred_k: np.ndarray  # matched predicted spots
    obs_j: np.ndarray  # matched observed spots (indices into the frame's spot arrays)
    dist: np.ndarray
    stats: CandidateStats
    accepted: bool


def _match(pred: Prediction, tree: cKDTree, ids: np.ndarray, radius: float):
    """One-to-one nearest matches within ``radius``: (predicted k, observed id, distance)."""
    if len(pred) == 0 or tree.n == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    d, j = tree.query(np.column_stack([pred.row, pred.col]), k=1, distance_upper_bound=radius)
    k = np.flatnonzero(np.isfinite(d))
    k = k[np.argsort(d[k], kind="stable")]
    _, first = np.unique(j[k], return_index=True)
    k = np.sort(k[first])
    return k, ids[j[k]], d[k]


class Indexer:
    """Indexes spot tables of one material on one detector; build once, call per frame.

    Holds the precomputed tables (reflections and their harmonics, the angle look-up table, the
    symmetry of the pattern), so that :meth:`index` is fast. It is never modified after
    construction: one indexer may serve several threads.

    Parameters
    ----------
    material
        A :class:`laue_live.geometry.Material` or a name of :data:`laue_live.geometry.MATERIALS`.
    calibration
        Detector geometry (e.g. from :func:`laue_live.geometry.read_det`).
    energy_range
        ``(E_min, E_max)`` of the beam, keV.
    settings
        Search tolerances (:class:`IndexerSettings`); defaults if ``None``.

    Raises
    ------
    SettingsError
        On a bad material, calibration, energy range or settings.
    """

    def __init__(
        self,
        material: str | Material,
        calibration: Calibration,
        energy_range: tuple[float, float] = (5.0, 23.0),
        settings: IndexerSettings | None = None,
    ) -> None:
        self.material = get_material(material)
        if not isinstance(calibration, Calibration):
            raise SettingsError(f"calibration must be a Calibration, got {type(calibration).__name__}")
        self.calibration = calibration
        try:
            e_min, e_max = (float(v) for v in energy_range)
        except (TypeError, ValueError):
            raise SettingsError(f"energy_range must be (E_min, E_max) in keV, got {energy_range!r}") from None
        if not (0 < e_min < e_max < np.inf):
            raise SettingsError(f"energy_range must be 0 < E_min < E_max (keV), got {energy_range!r}")
        self.energy_range = (e_min, e_max)
        self.settings = settings or IndexerSettings()
        self.B = self.material.B
        t0 = time.perf_counter()
        q_max = 2.0 * e_max / HC_KEV_ANGSTROM * (1.0 + 2 * self.settings.max_strain)
        self.reflections = build_reflections(self.material, q_max)
        if len(self.reflections.hkl) < 3:
            raise SettingsError(f"{self.material.name}: fewer than 3 reflections below {e_max} keV")
        self.hkl_ops, self.rotations = pattern_rotations(self.material)
        self._rot_t_flat = np.swapaxes(self.rotations, 1, 2).reshape(len(self.rotations), 9).T  # trace(d R)
        s = self.settings
        self.angles = build_angle_table(self.reflections, self.B, self.hkl_ops, s.n_lut, s.n_score,
                                        s.score_tolerance_deg)
        log.debug("indexer for %s: %d reflections, %d LUT entries, %d symmetry rotations, built in %.2f s",
                  self.material.name, len(self.reflections.hkl), len(self.angles.angle),
                  len(self.rotations), time.perf_counter() - t0)

    # -- public -------------------------------------------------------------------------------
    def index(self, spots: pd.DataFrame) -> IndexResult:
        """Find the grains of one frame.

        Parameters
        ----------
        spots
            Spot table with at least ``row, col`` (0-based px). Optional: a brightness column
            (:data:`INTENSITY_COLUMNS`, first found; otherwise the table's order is taken as
            brightest first) and ``good`` (see :attr:`IndexerSettings.good_only`). Other columns
            (``two_theta, chi``, ...) are carried along; the angles are always recomputed from
            ``row, col`` with the indexer's calibration.

        Returns
        -------
        IndexResult

        Raises
        ------
        SpotTableError
            If the table lacks ``row, col``.
        """
        t0 = time.perf_counter()
        if not isinstance(spots, pd.DataFrame) or not {"row", "col"} <= set(spots.columns):
            raise SpotTableError("indexing needs a spot table (DataFrame) with 'row' and 'col' columns")
        s = self.settings
        pos = spots[["row", "col"]].to_numpy(dtype=float)
        finite = np.all(np.isfinite(pos), axis=1)
        usable = finite.copy()
        if s.good_only and "good" in spots.columns:
            usable &= spots["good"].to_numpy(dtype=bool)
        bright = next((c for c in INTENSITY_COLUMNS if c in spots.columns), None)
        order = np.arange(len(spots))
        if bright is not None:
            inten = np.nan_to_num(spots[bright].to_numpy(dtype=float), nan=-np.inf)
            order = np.argsort(-inten, kind="stable")
        ranked = order[usable[order]]  # usable spots, brightest first
        kf = pixel_to_kf(np.where(finite, pos[:, 0], 0.0), np.where(finite, pos[:, 1], 0.0), self.calibration)
        q = kf - np.array([1.0, 0.0, 0.0])
        qunit = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)

        available = np.zeros(len(spots), dtype=bool)
        available[ranked] = True
        grains: list[_Verified] = []
        best: _Verified | None = None
        seen = cKDTree(pos[finite]) if finite.any() else None
        while len(grains) < s.max_grains and available.sum() >= s.min_matched:
            found = self._search(ranked[available[ranked]], pos, qunit, seen)
            if found is None:
                break
            if not found.accepted:
                if best is None or found.stats.n_matched > best.stats.n_matched:
                    best = found
                break
            grains.append(found)
            available[found.obs_j] = False
        grains = [self._canonical(g) for g in self._drop_shadows(grains, ranked, pos, seen)]
        result = self._result(spots, pos, finite, grains, best if not grains else None)
        result.seconds = time.perf_counter() - t0
        return result

    # -- search ---------------------------------------------------------------------------------
    def _search(self, ids: np.ndarray, pos: np.ndarray, qunit: np.ndarray, seen: cKDTree) -> _Verified | None:
        """Best verified candidate among the available spots ``ids`` (brightest first).

        ``seen`` holds every spot of the frame (good or not, assigned or not): a predicted spot with
        one of them within the final radius counts as observed in the matched fractions.
        """
        s = self.settings
        top = ids[: s.n_brightest]
        g = qunit[top]
        g_all = qunit[ids]
        n_pair = min(s.n_pair_spots, len(top))
        tree = cKDTree(pos[ids])
        density = len(ids) / float(np.prod(self.calibration.frame_shape))
        min_score = min(s.min_ranking_score, len(top))
        tried = np.zeros((0, 3, 3))
        best: _Verified | None = None
        for j in range(1, n_pair):
            cands = self._pair_candidates(g, np.array([(i, j) for i in range(j)]))
            if len(cands) == 0:
                continue
            score = self._score(cands, g)
            n_done = 0
            for c in np.argsort(-score, kind="stable"):
                if score[c] < min_score or n_done >= s.n_verify or len(tried) >= s.max_verifications:
                    break
                u = cands[c]
                if self._near_any(u, tried):
                    continue
                tried = np.concatenate([tried, u[None]])
                # cheap pre-check on every available spot: a grain puts at least min_matched of them
                # on low-index directions, a chance orientation a few percent
                if self.angles.score_mask.contains(g_all @ u).sum() < s.min_matched:
                    continue
                n_done += 1
                v = self._verify(u, ids, pos, qunit, tree, density, seen)
                if v.accepted:
                    return v
                if best is None or v.stats.n_matched > best.stats.n_matched:
                    best = v
        return best

    def _near_any(self, u: np.ndarray, others: np.ndarray, tol_deg: float = 0.5) -> bool:
        """Whether ``u`` is within ``tol_deg`` of any of ``others`` up to the pattern's symmetry."""
        if len(others) == 0:
            return False
        d = np.swapaxes(others, 1, 2) @ u  # others^T u
        traces = d.reshape(len(others), 9) @ self._rot_t_flat
        return bool(traces.max() >= 1.0 + 2.0 * np.cos(np.radians(tol_deg)))

    def _pair_candidates(self, g: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """Candidate orientations ``(c, 3, 3)`` from the LUT matches of observed spot pairs."""
        lut = self.angles
        a, b = g[pairs[:, 0]], g[pairs[:, 1]]
        theta = np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", a, b), -1, 1)))
        tol = self.settings.lut_tolerance_deg
        lo = np.searchsorted(lut.angle, theta - tol)
        hi = np.searchsorted(lut.angle, theta + tol)
        counts = hi - lo
        if counts.sum() == 0:
            return np.zeros((0, 3, 3))
        which = np.repeat(np.arange(len(pairs)), counts)
        entry = np.concatenate([np.arange(x, y) for x, y in zip(lo, hi, strict=True)])
        c1, c2 = lut.unit[lut.first[entry]], lut.unit[lut.second[entry]]
        l1, l2 = a[which], b[which]
        crystal = np.concatenate([_frame(c1, c2), _frame(c1, c2)])
        lab = np.concatenate([_frame(l1, l2), _frame(l2, l1)])
        return lab @ np.swapaxes(crystal, 1, 2)

    def _score(self, cands: np.ndarray, g: np.ndarray) -> np.ndarray:
        """How many of the spots ``g`` each candidate puts on a low-index direction."""
        v = np.matmul(g, cands)  # rows: U_c^T g_k, the spots in each candidate's crystal frame
        return self.angles.score_mask.contains(v).reshape(len(cands), len(g)).sum(axis=1)

    def _verify(self, u, ids, pos, qunit, tree, density, seen) -> _Verified:
        """Predict, match and refine a candidate; decide whether it is a grain."""
        s = self.settings
        r0, r1, r2 = s.match_radii_px
        strain = np.zeros((3, 3))
        pred = predict_spots(self.reflections, u @ self.B, self.calibration, self.energy_range)
        k, j, d = _match(pred, tree, ids, r0)
        if len(k) >= max(4, s.min_matched // 2):
            crystal = pred.hkl[k] @ self.B.T
            crystal /= np.linalg.norm(crystal, axis=1, keepdims=True)
            u = best_rotation(crystal, qunit[j])
            pred = predict_spots(self.reflections, u @ self.B, self.calibration, self.energy_range)
            k, j, d = _match(pred, tree, ids, r1)
        if len(k) >= max(5, s.min_matched // 2):
            u, strain, pred, k, j, d = self._refine(u, strain, pred, k, j, pos, tree, ids, (r1, r2, r2))
        return self._judge(u, strain, pred, k, j, d, density, seen)

    def _refine(self, u, strain, pred, k, j, pos, tree, ids, radii):
        """Refine on the matched spots and re-match, once per radius (stops when nothing changes)."""
        previous = None
        for radius in radii:
            with_strain = self.settings.refine_strain and len(k) >= 8
            u, strain = refine_grain(u, strain, self.B, pred.hkl[k], pos[j], self.calibration, with_strain)
            pred = predict_spots(self.reflections, strained_ub(u, strain, self.B), self.calibration,
                                 self.energy_range)
            k, j, d = _match(pred, tree, ids, radius)
            key = (radius, tuple(j))
            if key == previous or len(k) < 5:
                break
            previous = key
        return u, strain, pred, k, j, d

    def _judge(self, u, strain, pred, k, j, d, density, seen) -> _Verified:
        """Statistics of a refined candidate and the acceptance tests."""
        s = self.settings
        r2 = s.match_radii_px[2]
        n_pred = len(pred)
        n = len(k)
        dev = float(d.mean()) if n else np.inf
        observed = np.zeros(n_pred, dtype=bool)
        observed[k] = True
        if seen is not None and n_pred:
            dist, _ = seen.query(np.column_stack([pred.row, pred.col]), k=1, distance_upper_bound=r2)
            observed |= np.isfinite(dist)
        frac = observed.sum() / n_pred if n_pred else 0.0
        total = float(pred.intensity.sum())
        ifrac = float(pred.intensity[observed].sum()) / total if total > 0 else 0.0
        chance = n_pred * density * np.pi * r2 * r2
        max_strain = float(np.abs(strain).max())
        reasons = []
        if n < s.min_matched:
            reasons.append(f"{n} < {s.min_matched} matched spots")
        if frac < s.min_matched_fraction:
            reasons.append(f"matched fraction {frac:.2f} < {s.min_matched_fraction}")
        if ifrac < s.min_intensity_fraction:
            reasons.append(f"matched intensity fraction {ifrac:.2f} < {s.min_intensity_fraction}")
        if dev > s.max_deviation_px:
            reasons.append(f"mean deviation {dev:.2f} > {s.max_deviation_px} px")
        if max_strain > s.max_strain:
            reasons.append(f"strain {max_strain:.2e} > {s.max_strain}")
        if n < s.chance_factor * chance:
            reasons.append(f"{n} matches < {s.chance_factor} x {chance:.2f} expected by chance")
        stats = CandidateStats(n, n_pred, frac, dev, ifrac, max_strain, chance, u, "; ".join(reasons))
        return _Verified(u, strain, pred, k, j, d, stats, not reasons)

    def _canonical(self, v: _Verified) -> _Verified:
        """Return the symmetry-equivalent description with ``U`` closest to the identity.

        The choice is stable across a map (neighbouring pixels get neighbouring matrices).

        ``U' = U R`` (R a pattern rotation, R = B M B^-1), ``strain' = R^T strain R`` and
        ``hkl' = M^-1 hkl`` describe the same grain and the same spots.
        """
        traces = np.einsum("ij,nji->n", v.u, self.rotations)
        i = int(np.argmax(traces))
        if i == 0:
            return v
        r = self.rotations[i]
        m_inv = np.rint(np.linalg.inv(self.hkl_ops[i])).astype(int)
        p = v.pred
        pred = Prediction(p.index, p.hkl @ m_inv.T, p.energy, p.row, p.col, p.intensity)
        u = v.u @ r
        stats = replace(v.stats, U=u)
        return _Verified(u, r.T @ v.strain @ r, pred, v.pred_k, v.obs_j, v.dist, stats, v.accepted)

    def _drop_shadows(self, grains: list[_Verified], ranked: np.ndarray, pos: np.ndarray,
                      seen: cKDTree) -> list[_Verified]:
        """Remove grains whose spots another grain predicts too (e.g. a twin orientation found first).

        A Sigma-3 twin of a cubic grain puts a third of its spots exactly on the grain's; found before
        the grain, it takes them. A grain whose matched spots are mostly on another grain's predicted
        spots is such a shadow: it is dropped and the other grain is matched and refined again with
        the spots set free. A real twin keeps two thirds of its spots of its own and stays.
        """
        r2 = self.settings.match_radii_px[2]
        changed = True
        while changed and len(grains) > 1:
            changed = False
            for g in sorted(grains, key=lambda v: len(v.obs_j)):
                mine = pos[g.obs_j]
                for o in grains:
                    if o is g or len(o.pred) == 0:
                        continue
                    d, _ = cKDTree(np.column_stack([o.pred.row, o.pred.col])).query(mine, k=1)
                    if np.mean(d <= r2) < 0.7:
                        continue
                    grains = [v for v in grains if v is not g]
                    claimed = np.zeros(len(pos), dtype=bool)
                    for v in grains:
                        if v is not o:
                            claimed[v.obs_j] = True
                    ids = ranked[~claimed[ranked]]
                    tree = cKDTree(pos[ids])
                    density = len(ids) / float(np.prod(self.calibration.frame_shape))
                    k, j, dist = _match(o.pred, tree, ids, r2)
                    fit = self._refine(o.u, o.strain, o.pred, k, j, pos, tree, ids, (r2, r2))
                    grains[grains.index(o)] = self._judge(*fit, density, seen)
                    changed = True
                    break
                if changed:
                    break
        return grains

    # -- result -------------------------------------------------------------------------------
    def _result(self, spots, pos, finite, found: list[_Verified], best: _Verified | None) -> IndexResult:
        n = len(spots)
        grain_col = np.full(n, -1, dtype=np.int32)
        hkl = np.zeros((n, 3), dtype=np.int32)
        dev = np.full(n, np.nan)
        grains = []
        r_final = self.settings.match_radii_px[2]
        for gi, v in enumerate(found):
            grain_col[v.obs_j] = gi
            hkl[v.obs_j] = v.pred.hkl[v.pred_k]
            dev[v.obs_j] = v.dist
            o = np.argsort(v.obs_j, kind="stable")  # the table's order
            k = v.pred_k[o]
            rows = spots.iloc[v.obs_j[o]].copy()
            rows["h"], rows["k"], rows["l"] = (v.pred.hkl[k, i].astype(np.int32) for i in range(3))
            rows["energy_keV"] = v.pred.energy[k]
            rows["row_theo"] = v.pred.row[k]
            rows["col_theo"] = v.pred.col[k]
            rows["deviation_px"] = v.dist[o]
            grains.append(Grain(
                U=v.u, strain=v.strain, spots=rows, deviation_px=float(v.dist.mean()),
                matched_fraction=v.stats.matched_fraction, n_predicted=v.stats.n_predicted,
                intensity_fraction=v.stats.intensity_fraction,
                material=self.material.name, UB=strained_ub(v.u, v.strain, self.B), index=gi,
            ))
        # label the spots left out of the search (not good) that sit on a grain's unclaimed spot
        rest = np.flatnonzero(finite & (grain_col < 0))
        if found and len(rest):
            tree = cKDTree(pos[rest])
            for gi, v in enumerate(found):
                free = np.setdiff1d(np.arange(len(v.pred)), v.pred_k)
                sub = v.pred.subset(free)
                k, j, d = _match(sub, tree, rest, r_final)
                unclaimed = grain_col[j] < 0
                k, j, d = k[unclaimed], j[unclaimed], d[unclaimed]
                grain_col[j] = gi
                hkl[j] = sub.hkl[k]
                dev[j] = d
        out = spots.copy()
        out["grain"] = grain_col
        out["h"], out["k"], out["l"] = hkl[:, 0], hkl[:, 1], hkl[:, 2]
        out["deviation_px"] = dev
        if not grains:
            log.info("no grain found among %d spots; %s", n, best.stats if best else "no candidate")
        return IndexResult(grains, out, best.stats if best else None)


def _frame(v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """Orthonormal frames ``(n, 3, 3)`` (columns) built symmetrically from two directions."""
    x = v1 + v2
    y = v1 - v2
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    return np.stack([x, y, np.cross(x, y)], axis=2)


@functools.lru_cache(maxsize=8)
def _cached_indexer(material: Material, calibration: Calibration, energy_range, settings) -> Indexer:
    return Indexer(material, calibration, energy_range, settings)


def index_spots(
    spots: pd.DataFrame,
    material: str | Material,
    calibration: Calibration,
    energy_range: tuple[float, float] = (5.0, 23.0),
    settings: IndexerSettings | None = None,
) -> list[Grain]:
    """Index one spot table: the grains found (an empty list: no grain found).

    A convenience around :class:`Indexer` (built once per material, calibration, band and settings,
    and cached); use an :class:`Indexer` directly for the full :class:`IndexResult` (per-spot labels,
    the best rejected candidate).

    Parameters
    ----------
    spots
        Spot table with ``row, col`` (0-based px), see :meth:`Indexer.index`.
    material
        Material or its name.
    calibration
        Detector geometry.
    energy_range
        Beam band, keV.
    settings
        Search settings.
    """
    indexer = _cached_indexer(get_material(material), calibration,
                              tuple(float(e) for e in energy_range), settings or IndexerSettings())
    return indexer.index(spots).grains


def index_materials(indexers, spots: pd.DataFrame) -> IndexResult:
    """Index a frame that holds several materials (e.g. a substrate and nanowires on it).

    Each indexer (one material each, same calibration) runs in turn on the spots that the previous
    ones left unindexed; grains are numbered in the order found across all materials.

    Parameters
    ----------
    indexers
        :class:`Indexer` objects, in the order to try (the material with the most or the brightest
        spots first, usually the substrate).
    spots
        The frame's spot table.

    Returns
    -------
    IndexResult
        All grains; ``spots`` labelled as by :meth:`Indexer.index`; ``best_rejected`` of the last
        material that found nothing, if no material found a grain.
    """
    t0 = time.perf_counter()
    out = None
    grains: list[Grain] = []
    best = None
    for ix in indexers:
        todo = spots if out is None else spots.loc[out["grain"] < 0]
        res = ix.index(todo)
        for g in res.grains:
            g.index = len(grains)
            grains.append(g)
        offset = len(grains) - len(res.grains)
        labels = res.spots[["grain", "h", "k", "l", "deviation_px"]]
        labels = labels.assign(grain=np.where(labels["grain"] >= 0, labels["grain"] + offset, -1))
        if out is None:
            out = res.spots
        else:
            out.loc[labels.index, labels.columns] = labels
        if res.best_rejected is not None:
            best = res.best_rejected
    if out is None:
        raise SettingsError("index_materials needs at least one indexer")
    out["grain"] = out["grain"].astype(np.int32)
    return IndexResult(grains, out, None if grains else best, time.perf_counter() - t0)
