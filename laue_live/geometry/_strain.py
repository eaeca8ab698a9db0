"""Orientation and strain of a crystal as one matrix, and back: ``q = U (I + strain)^-1 B hkl``.

The direct lattice of a strained crystal is ``U (I + strain) A0`` (``A0 = B^-T`` the unstrained
direct basis, ``strain`` symmetric, in the crystal's Cartesian frame of :func:`reciprocal_basis`:
x along a*, z along c), so its reciprocal basis is ``U (I + strain)^-1 B``: the polar
decomposition, rotation after a symmetric stretch. This is the simulator's definition
(:func:`laue_live.geometry.simulate_spots`) and the indexer's. A white-beam pattern fixes the
directions of ``q`` only: the hydrostatic part (the scale) is not measured, the deviatoric part is.
"""

from __future__ import annotations

import numpy as np

__all__ = ["strained_ub", "decompose_ub", "deviatoric"]


def deviatoric(strain) -> np.ndarray:
    """Return the deviatoric part ``strain - tr(strain)/3 I`` of a 3 x 3 tensor."""
    e = np.asarray(strain, dtype=float)
    return e - np.trace(e) / 3.0 * np.eye(3)


def strained_ub(orientation, strain, b) -> np.ndarray:
    """``UB = U (I + strain)^-1 B``: columns a*, b*, c* of the strained crystal in the lab, 1/Angstrom.

    Parameters
    ----------
    orientation
        3 x 3 rotation ``U`` (LaueTools frame).
    strain
        3 x 3 symmetric strain tensor in the crystal frame, or ``None`` for none.
    b
        3 x 3 unstrained reciprocal basis ``B`` (:attr:`Material.B`).
    """
    u = np.asarray(orientation, dtype=float)
    if strain is None:
        return u @ np.asarray(b, dtype=float)
    return u @ np.linalg.solve(np.eye(3) + np.asarray(strain, dtype=float), np.asarray(b, dtype=float))


def decompose_ub(ub, b) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and deviatoric strain of a reciprocal basis: inverse of :func:`strained_ub`.

    Parameters
    ----------
    ub
        3 x 3 matrix with ``q = UB hkl`` (any overall scale: the hydrostatic part is dropped).
    b
        3 x 3 unstrained reciprocal basis.

    Returns
    -------
    orientation, strain
        The proper rotation ``U`` and the deviatoric (traceless, symmetric) strain in the crystal
        frame such that ``ub`` is proportional to ``U (I + strain)^-1 B`` to first order in the strain
        (exactly, up to the scale, when the hydrostatic part of the stretch is zero).
    """
    m = np.asarray(ub, dtype=float) @ np.linalg.inv(np.asarray(b, dtype=float))
    w, sigma, vt = np.linalg.svd(m)
    if np.linalg.det(w @ vt) < 0:  # a reflection: not a crystal orientation, keep it proper
        w[:, -1] *= -1
        sigma[-1] *= -1
    u = w @ vt
    p = (vt.T * sigma) @ vt  # symmetric stretch, m = U P, P = (I + strain)^-1
    stretch = np.linalg.inv(p)
    stretch /= np.cbrt(np.linalg.det(stretch))  # scale out the unmeasurable volume change
    return u, deviatoric(stretch - np.eye(3))
