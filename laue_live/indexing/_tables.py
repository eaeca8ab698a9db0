"""Precomputed tables of a material for indexing: reflections with their harmonics, angle look-up table.

Built once per (material, energy band) by :class:`~laue_live.indexing.Indexer`; read-only afterwards,
so that one indexer may serve several threads.

* Reflections: every primitive direction ``hkl`` (gcd 1) whose scattering vector can diffract in the
  band, with a table of its allowed harmonics ``n hkl`` (the spot of direction ``hkl`` shows when
  some allowed harmonic has its Bragg energy in the band; it is labelled by the lowest one, as
  LaueTools and :func:`laue_live.geometry.simulate_spots` do).
* Angle look-up table (LUT): the angles between one representative of each symmetry family of
  low-index directions and every low-index direction, sorted; two observed spots whose angle
  matches an entry give a candidate orientation (classical Laue indexing, as LaueTools does).
* Scoring directions: the directions up to a larger index, painted on a cube map of the unit
  sphere (:class:`DirectionMask`), to count in one array look-up how many bright spots a candidate
  orientation puts on one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from laue_live.geometry import HC_KEV_ANGSTROM, Material

__all__ = ["ReflectionTable", "AngleTable", "DirectionMask", "build_reflections", "build_angle_table"]

_NO_HARMONIC = np.iinfo(np.int16).max


@dataclass(frozen=True)
class ReflectionTable:
    """Primitive reflection directions of a material and their allowed harmonics.

    Attributes
    ----------
    hkl
        ``(m, 3)`` int primitive Miller indices, sorted by increasing ``|q|``.
    hklf
        The same as float.
    q_norm
        ``(m,)`` ``|B hkl|`` of the unstrained crystal, 1/Angstrom.
    next_allowed
        ``(m, n_max + 2)`` int16: ``next_allowed[i, n]`` is the lowest allowed harmonic ``>= n`` of
        reflection ``i`` (``n >= 1``), or 32767 if there is none.
    f2
        ``(m, n_max + 2)`` float32: ``|F(n hkl)|^2`` with the material's form-factor model (0 where
        forbidden), for the predicted intensities.
    """

    hkl: np.ndarray
    hklf: np.ndarray
    q_norm: np.ndarray
    next_allowed: np.ndarray
    f2: np.ndarray

    @property
    def n_max(self) -> int:
        """Highest harmonic order tabulated."""
        return self.next_allowed.shape[1] - 2


def build_reflections(material: Material, q_max: float) -> ReflectionTable:
    """Every primitive direction with an allowed harmonic of ``|q| <= q_max`` (1/Angstrom)."""
    b = material.B
    direct = np.linalg.inv(b).T
    hmax = np.ceil(q_max * np.linalg.norm(direct, axis=0)).astype(int)
    axes = [np.arange(-m, m + 1) for m in hmax]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    qn = np.linalg.norm(hkl @ b.T, axis=1)
    keep = (qn <= q_max) & (qn > 0)
    hkl, qn = hkl[keep], qn[keep]
    allowed = material.allowed(hkl)
    hkl, qn = hkl[allowed], qn[allowed]
    f2_points = material.structure_factor_sq(hkl, qn / 2.0)
    g = np.gcd.reduce(np.abs(hkl), axis=1)
    prim = hkl // g[:, None]
    span = 2 * hmax + 1
    keys = ((prim[:, 0] + hmax[0]) * span[1] + prim[:, 1] + hmax[1]) * span[2] + prim[:, 2] + hmax[2]
    ukeys, inverse = np.unique(keys, return_inverse=True)
    n_max = int(g.max()) if len(g) else 1
    has = np.zeros((len(ukeys), n_max + 2), dtype=bool)
    has[inverse, g] = True
    f2 = np.zeros(has.shape, dtype=np.float32)
    f2[inverse, g] = f2_points
    nxt = np.full(has.shape, _NO_HARMONIC, dtype=np.int16)
    for n in range(n_max, 0, -1):
        nxt[:, n] = np.where(has[:, n], n, nxt[:, n + 1])
    first = np.zeros(len(ukeys), dtype=int)
    first[inverse] = np.arange(len(keys))  # any lattice point of each direction
    p = prim[first]
    pn = qn[first] / g[first]
    order = np.argsort(pn, kind="stable")
    return ReflectionTable(p[order], p[order].astype(float), pn[order], nxt[order], f2[order])


@dataclass(frozen=True)
class AngleTable:
    """Inter-planar angle look-up table and scoring directions (see the module docstring).

    Attributes
    ----------
    unit
        ``(n, 3)`` unit vectors (crystal frame) of the LUT directions (the first ``n`` reflections).
    angle
        Sorted angles (degrees) between a family representative and a LUT direction.
    first, second
        Indices into ``unit`` of the representative and of the other direction of each entry.
    score_mask
        The first reflections up to the scoring size, as a :class:`DirectionMask`.
    """

    unit: np.ndarray
    angle: np.ndarray
    first: np.ndarray
    second: np.ndarray
    score_mask: DirectionMask


class DirectionMask:
    """Unit-sphere cube map marking the cells within ``tolerance`` of given directions.

    Each face of the cube is cut into a grid uniform in the gnomonic coordinates (the two minor
    components over the major one), of ``tolerance / 3`` at the face centres and half that at the
    edges; a cell is marked when a point of a disc of radius ``tolerance`` around a direction falls in
    it. A look-up then answers "within about ``tolerance`` of a direction" for any number of vectors
    with a few array operations and no trigonometry. Used to rank candidates, never to accept a grain.

    Parameters
    ----------
    directions
        ``(n, 3)`` unit vectors.
    tolerance_deg
        Angular radius, degrees.
    """

    def __init__(self, directions: np.ndarray, tolerance_deg: float) -> None:
        tol = np.radians(tolerance_deg)
        self.n = int(np.ceil(6.0 / tol))  # 2 / n = tol / 3 at the face centre
        self.mask = np.zeros(6 * self.n * self.n, dtype=bool)
        d = np.asarray(directions, dtype=float)
        helper = np.where(np.abs(d[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
        e1 = np.cross(d, helper)
        e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
        e2 = np.cross(d, e1)
        points = [d]
        for ring in range(1, 7):  # rings every tol / 6, points every <= tol / 6 along them
            r = np.tan(ring * tol / 6)
            for a in np.linspace(0, 2 * np.pi, 7 * ring, endpoint=False):
                points.append(d + r * (np.cos(a) * e1 + np.sin(a) * e2))
        self.mask[self._cells(np.concatenate(points))] = True

    def _cells(self, v: np.ndarray) -> np.ndarray:
        a = np.abs(v)
        major = np.argmax(a, axis=1)
        rows = np.arange(len(v))
        m = v[rows, major]
        inv = 1.0 / a[rows, major]
        scale = self.n / 2.0
        i = ((v[rows, (major + 1) % 3] * inv + 1.0) * scale).astype(np.intp)
        j = ((v[rows, (major + 2) % 3] * inv + 1.0) * scale).astype(np.intp)
        np.clip(i, 0, self.n - 1, out=i)
        np.clip(j, 0, self.n - 1, out=j)
        face = major + 3 * (m < 0)
        return (face * self.n + i) * self.n + j

    def contains(self, v: np.ndarray) -> np.ndarray:
        """Whether each of the ``(m, 3)`` vectors ``v`` (any length) is near a direction (bool)."""
        return self.mask[self._cells(np.asarray(v, dtype=float).reshape(-1, 3))]


def _closed_count(q_norm: np.ndarray, n: int) -> int:
    """Count the leading reflections to take so that no |q| shell (symmetry family) is cut."""
    if n >= len(q_norm):
        return len(q_norm)
    edge = q_norm[n - 1] * (1 + 1e-9)
    return int(np.searchsorted(q_norm, edge, side="right"))


def build_angle_table(
    table: ReflectionTable, b: np.ndarray, hkl_ops: np.ndarray, n_lut: int, n_score: int,
    score_tolerance_deg: float,
) -> AngleTable:
    """LUT of the ~``n_lut`` lowest-|q| directions and a KD-tree of the ~``n_score`` lowest.

    Parameters
    ----------
    table
        Reflections (sorted by ``|q|``).
    b
        Unstrained reciprocal basis.
    hkl_ops
        ``(s, 3, 3)`` integer symmetry operations on Miller indices (:func:`pattern_rotations`).
    n_lut, n_score
        Approximate numbers of directions (rounded up to whole ``|q|`` shells).
    score_tolerance_deg
        Angular tolerance of the scoring mask, degrees.
    """
    n = _closed_count(table.q_norm, n_lut)
    hkl = table.hkl[:n]
    vec = hkl @ b.T
    unit = vec / np.linalg.norm(vec, axis=1, keepdims=True)
    # symmetry families: the smallest index of any image under the operations
    lookup = {tuple(h): i for i, h in enumerate(hkl.tolist())}
    family = np.arange(n)
    for m in hkl_ops:
        images = hkl @ m.T
        idx = np.array([lookup.get(tuple(h), -1) for h in images.tolist()])
        family = np.where((idx >= 0) & (idx < family), idx, family)
    reps = np.unique(family)
    cos = np.clip(unit[reps] @ unit.T, -1.0, 1.0)
    ang = np.degrees(np.arccos(cos))
    first = np.repeat(reps, n)
    second = np.tile(np.arange(n), len(reps))
    ang = ang.ravel()
    ok = (ang > 0.5) & (ang < 179.5)
    order = np.argsort(ang[ok], kind="stable")
    ns = _closed_count(table.q_norm, n_score)
    svec = table.hklf[:ns] @ b.T
    sunit = svec / np.linalg.norm(svec, axis=1, keepdims=True)
    return AngleTable(
        unit=unit,
        angle=ang[ok][order],
        first=first[ok][order].astype(np.int32),
        second=second[ok][order].astype(np.int32),
        score_mask=DirectionMask(sunit, score_tolerance_deg),
    )


def bragg_energy(q: np.ndarray) -> np.ndarray:
    """Energy (keV) at which each ``q`` (LaueTools frame, 1/Angstrom) diffracts; NaN if ``q_x >= 0``."""
    qx = q[:, 0]
    q2 = np.einsum("ij,ij->i", q, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(qx < 0, HC_KEV_ANGSTROM * q2 / (-2.0 * qx), np.nan)
