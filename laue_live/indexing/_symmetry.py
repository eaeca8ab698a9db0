"""Rotations that leave a Laue pattern unchanged, and misorientations up to them.

A Laue pattern fixes a crystal's orientation only up to the proper rotations that map the
reciprocal lattice onto itself and every allowed reflection onto an allowed one (the rotations of
the Laue group, for the spot positions that the indexer uses). They are found once per material,
numerically: among the integer matrices with entries in {-1, 0, 1} (enough for the conventional
cells of all seven crystal systems), those that keep the metric ``B^T B`` and the set of allowed
reflections. For a material without atoms the space group's absences decide.
"""

from __future__ import annotations

import itertools

import numpy as np

from laue_live.geometry import Material

__all__ = ["pattern_rotations", "misorientation_deg"]

_METRIC_RTOL = 1e-6


def pattern_rotations(material: Material, max_index: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Proper rotations that leave the material's Laue pattern unchanged.

    Parameters
    ----------
    material
        The crystal.
    max_index
        Reflections with ``|h|, |k|, |l| <= max_index`` are checked for allowed -> allowed.

    Returns
    -------
    hkl_ops, cartesian
        ``(n, 3, 3)`` integer matrices ``M`` acting on Miller indices (``hkl' = M hkl``) and the
        same rotations in the crystal's Cartesian frame, ``R = B M B^-1`` (``q' = R q``); the
        identity first.
    """
    b = material.B
    metric = b.T @ b
    vals = np.array(list(itertools.product((-1, 0, 1), repeat=9)), dtype=float).reshape(-1, 3, 3)
    dets = np.linalg.det(vals)
    vals = vals[np.isclose(dets, 1.0)]
    kept = np.einsum("nji,jk,nkl->nil", vals, metric, vals)
    ok = np.all(np.abs(kept - metric) <= _METRIC_RTOL * np.abs(metric).max(), axis=(1, 2))
    ops = vals[ok]
    r = np.arange(-max_index, max_index + 1)
    hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    allowed = material.allowed(hkl)
    keep = []
    for m in ops:
        moved = np.rint(hkl @ m.T).astype(int)
        if np.array_equal(material.allowed(moved), allowed):
            keep.append(m)
    ops = np.array(keep)
    ops = ops[np.argsort([np.abs(m - np.eye(3)).sum() for m in ops], kind="stable")]  # identity first
    cart = np.einsum("ij,njk,kl->nil", b, ops, np.linalg.inv(b))
    return ops.astype(int), cart


def misorientation_deg(u1, u2, rotations: np.ndarray | None = None) -> float:
    """Smallest rotation angle (degrees) taking orientation ``u2`` to ``u1`` up to pattern symmetry.

    Parameters
    ----------
    u1, u2
        3 x 3 orientation matrices (``q = U B hkl``).
    rotations
        ``(n, 3, 3)`` Cartesian symmetry rotations of the crystal (:func:`pattern_rotations`), or
        ``None`` for none (the plain angle between the two).
    """
    d = np.asarray(u2, dtype=float).T @ np.asarray(u1, dtype=float)
    rel = d[None] if rotations is None else d @ np.asarray(rotations)
    cos = (np.einsum("nii->n", rel) - 1.0) / 2.0
    skew = rel - np.swapaxes(rel, 1, 2)
    sin = np.linalg.norm(np.stack([skew[:, 2, 1], skew[:, 0, 2], skew[:, 1, 0]], axis=1), axis=1) / 2.0
    # atan2 keeps small angles exact where arccos of a cosine near 1 would not
    return float(np.degrees(np.arctan2(sin, cos)).min())
