"""Refinement of a grain's orientation and deviatoric strain on its matched spots.

Two steps, as in LaueTools: a closed-form best rotation that maps the crystal's scattering
directions onto the observed ones (Kabsch), then a least-squares fit of the rotation (3 parameters)
and the deviatoric strain (5: the trace is not measurable) on the pixel positions of the matched
spots, through the full detector model.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from laue_live.geometry import Calibration, detector_pixels, deviatoric, kf_unit_vectors, strained_ub

__all__ = ["best_rotation", "refine_grain", "strain_from_params"]

_MISS_PX = 1e3  # residual of a spot that no longer diffracts (keeps the least squares finite)
_STEP = 1e-7  # finite-difference step of the Jacobian (rotation in rad, strain), ~1e-4 of the parameters


def best_rotation(crystal: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Rotation ``U`` minimising ``sum |lab_i - U crystal_i|^2`` over unit vectors (Kabsch).

    Parameters
    ----------
    crystal, lab
        ``(n, 3)`` matching unit vectors (n >= 2, not all parallel), or ``(c, n, 3)`` stacks.
    """
    h = np.einsum("...ni,...nj->...ij", crystal, lab)
    w, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(w, -1, -2)))
    fix = np.ones(w.shape[:-2] + (3,))
    fix[..., 2] = d
    return np.swapaxes(vt, -1, -2) @ (fix[..., :, None] * np.swapaxes(w, -1, -2))


def _rotation(omega: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(omega))
    k = np.array([[0, -omega[2], omega[1]], [omega[2], 0, -omega[0]], [-omega[1], omega[0], 0]])
    if theta < 1e-12:
        return np.eye(3) + k
    k /= theta
    return np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * (k @ k)


def strain_from_params(e: np.ndarray) -> np.ndarray:
    """Traceless symmetric tensor from its 5 parameters ``(xx, yy, xy, xz, yz)`` (``zz = -xx - yy``)."""
    return np.array([[e[0], e[2], e[3]], [e[2], e[1], e[4]], [e[3], e[4], -e[0] - e[1]]])


def refine_grain(
    orientation: np.ndarray,
    strain: np.ndarray,
    b: np.ndarray,
    hkl: np.ndarray,
    observed: np.ndarray,
    calibration: Calibration,
    with_strain: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares refinement of ``U`` and the deviatoric strain on matched spots' pixel positions.

    Parameters
    ----------
    orientation, strain
        Starting rotation and deviatoric strain (crystal frame).
    b
        Unstrained reciprocal basis of the material.
    hkl
        ``(n, 3)`` Miller indices of the matched spots.
    observed
        ``(n, 2)`` their observed 0-based ``(row, col)``, px.
    calibration
        Detector geometry.
    with_strain
        Refine the 5 strain parameters too (needs at least 5 spots); otherwise the rotation only.

    Returns
    -------
    orientation, strain
        Refined rotation and deviatoric strain.
    """
    u0 = np.asarray(orientation, dtype=float)
    e0 = deviatoric(strain)
    n_par = 8 if with_strain else 3
    hkl = np.asarray(hkl, dtype=float)
    obs = np.concatenate([np.asarray(observed, dtype=float)[:, 0], np.asarray(observed, dtype=float)[:, 1]])

    def model(p):
        e = e0 + strain_from_params(p[3:]) if with_strain else e0
        return strained_ub(_rotation(p[:3]) @ u0, e, b)

    def pixels(ubs):  # (m, 3, 3) -> (m, 2n) predicted rows then cols, all models in one pass
        q = np.einsum("mij,nj->mni", ubs, hkl).reshape(-1, 3)
        uf, _ = kf_unit_vectors(q)
        r, c = detector_pixels(uf, calibration)
        out = np.concatenate([r.reshape(len(ubs), -1), c.reshape(len(ubs), -1)], axis=1)
        return np.where(np.isfinite(out), out, _MISS_PX)

    def residuals(p):
        return pixels(model(p)[None])[0] - obs

    def jacobian(p):
        steps = np.vstack([p, p + _STEP * np.eye(n_par)])
        px = pixels(np.stack([model(x) for x in steps]))
        return ((px[1:] - px[0]) / _STEP).T

    sol = least_squares(residuals, np.zeros(n_par), jac=jacobian, method="lm", x_scale=1e-3, xtol=1e-10,
                        ftol=1e-10)
    p = sol.x
    u = _rotation(p[:3]) @ u0
    e = e0 + strain_from_params(p[3:]) if with_strain else e0
    return u, deviatoric(e)
