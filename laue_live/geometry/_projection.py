"""Laue geometry: from scattering vectors to detector pixels, in LaueTools' conventions.

Frames
------
* LaueTools frame (used for orientation matrices and ``q``): x along the incident beam, z vertical
  up (towards the top-reflection detector), y = z x x.
* LaueTools' "LT2" lab frame (used for the detector): y along the beam, z vertical up, x = -y_LT.
  A vector ``(x, y, z)`` in the LaueTools frame is ``(-y, x, z)`` in LT2.

Detector (``kf_direction = "Z>0"``, detector above the sample, 2theta ~ 90 deg)
-----------------------------------------------------------------------------
The detector plane is at distance ``dd`` from the sample point I along the unit normal
``n = (0, sin xbet, cos xbet)`` (LT2). A ray along ``u_f`` meets it at ``IM = dd / (u_f . n) u_f``;
``OM = IM - dd n`` is expressed in the plane's axes (``x``, and ``y' = OM_y / cos xbet``), rotated
in-plane by ``-xgam`` and divided by the pixel size to give LaueTools' ``X`` (column) and ``Y`` (row)
around ``(xcen, ycen)``. ``2theta = arccos(u_f,y)`` and ``chi = atan(-u_f,x / u_f,z)`` (LT2), degrees.

This is our own implementation of the conventions documented in LaueTools' ``LaueGeometry.py``
(``calc_xycam``, ``calc_uflab``); the test against the real BM32 frame checks it.
"""

from __future__ import annotations

import numpy as np

from laue_live.geometry._calibration import Calibration

__all__ = [
    "HC_KEV_ANGSTROM",
    "kf_unit_vectors",
    "project_to_detector",
    "pixel_to_angles",
    "pixel_to_kf",
    "detector_pixels",
    "rotation_matrix",
    "random_rotation",
]

#: h c in keV Angstrom, as LaueTools uses it (``CST_ENERGYKEV``).
HC_KEV_ANGSTROM = 12.398


def kf_unit_vectors(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scattered-beam unit vectors and energies for reciprocal-lattice vectors in Bragg condition.

    Parameters
    ----------
    q
        ``(n, 3)`` scattering vectors in the LaueTools frame, 1/Angstrom (no 2 pi).

    Returns
    -------
    uf, energy
        ``(n, 3)`` unit vectors of ``k_f`` (LaueTools frame) and ``(n,)`` energies (keV) at which each
        ``q`` diffracts; rows with ``q_x >= 0`` (no Bragg solution) get NaN.
    """
    q = np.asarray(q, dtype=float)
    qx = q[:, 0]
    q2 = np.einsum("ij,ij->i", q, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_lambda = np.where(qx < 0, -q2 / (2.0 * qx), np.nan)  # |k| = 1 / lambda, from |ki + q| = |ki|
        uf = q / inv_lambda[:, None]
    uf[:, 0] += 1.0
    return uf, HC_KEV_ANGSTROM * inv_lambda


def _plane_pixels(u: np.ndarray, calibration: Calibration, source_offset: float = 0.0):
    """LaueTools ``X, Y`` where unit rays ``u`` (LT2 frame) from the sample meet the detector plane.

    Also returns ``u . n`` (n the plane normal): the ray goes towards the plane where it is > 0.
    """
    xbet, xgam = np.radians(calibration.xbet), np.radians(calibration.xgam)
    n = np.array([0.0, np.sin(xbet), np.cos(xbet)])
    dd = calibration.dd
    scal = u @ n
    with np.errstate(divide="ignore", invalid="ignore"):
        if source_offset:
            # source at I' = I + offset * beam (LT2 y); distance of I' to the plane along n shrinks
            src = np.array([0.0, source_offset, 0.0])
            dist = dd - src @ n
            im = u * (dist / scal)[:, None] + src
        else:
            im = u * (dd / scal)[:, None]
    om = im - dd * n
    xca0 = om[:, 0]
    yca0 = om[:, 1] / np.cos(xbet)  # in-plane coordinate along the plane's "up-the-beam" axis
    cg, sg = np.cos(-xgam), np.sin(-xgam)
    X = calibration.xcen + (cg * xca0 + sg * yca0) / calibration.pixel_size
    Y = calibration.ycen + (-sg * xca0 + cg * yca0) / calibration.pixel_size
    return X, Y, scal


def detector_pixels(uf: np.ndarray, calibration: Calibration) -> tuple[np.ndarray, np.ndarray]:
    """0-based ``(row, col)`` where rays along ``uf`` (LaueTools frame, any length) hit the detector.

    The lean form of :func:`project_to_detector` for fits that call it many times; NaN where a ray
    does not go towards the detector plane.
    """
    uf = np.asarray(uf, dtype=float)
    u = np.stack([-uf[:, 1], uf[:, 0], uf[:, 2]], axis=1)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    X, Y, scal = _plane_pixels(u, calibration)
    ok = scal > 1e-9
    return np.where(ok, Y - 1.0, np.nan), np.where(ok, X - 1.0, np.nan)


def project_to_detector(
    uf: np.ndarray, calibration: Calibration, source_offset: float = 0.0
) -> dict[str, np.ndarray]:
    """Where scattered rays hit the detector.

    Parameters
    ----------
    uf
        ``(n, 3)`` unit vectors of ``k_f`` in the LaueTools frame.
    calibration
        Detector geometry.
    source_offset
        Shift of the scattering point along the incident beam (into the sample), mm. Used for the
        depth streaks of thick crystals.

    Returns
    -------
    dict
        ``X, Y`` (LaueTools pixel coordinates, X = column), ``row, col`` (0-based, ``row = Y - 1``),
        ``two_theta, chi`` (degrees), ``hits`` (bool: the ray goes towards the detector plane) and
        ``obliquity`` (``1 / cos`` of the ray's incidence angle on the detector: how much a spot is
        stretched along the radial direction from ``(xcen, ycen)``).
    """
    uf = np.asarray(uf, dtype=float)
    # LaueTools frame -> LT2 frame
    u = np.stack([-uf[:, 1], uf[:, 0], uf[:, 2]], axis=1)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    X, Y, scal = _plane_pixels(u, calibration, source_offset)
    hits = scal > 1e-9
    two_theta = np.degrees(np.arccos(np.clip(u[:, 1], -1, 1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        chi = np.degrees(np.arctan(-u[:, 0] / u[:, 2]))
    X = np.where(hits, X, np.nan)
    Y = np.where(hits, Y, np.nan)
    with np.errstate(divide="ignore"):
        obliquity = np.where(hits, 1.0 / scal, np.nan)
    return {
        "X": X,
        "Y": Y,
        "row": Y - 1.0,
        "col": X - 1.0,
        "two_theta": two_theta,
        "chi": chi,
        "hits": hits,
        "obliquity": obliquity,
    }


def pixel_to_kf(row: np.ndarray, col: np.ndarray, calibration: Calibration) -> np.ndarray:
    """Return the unit vectors of the scattered rays through 0-based pixel positions, LaueTools frame.

    The inverse of :func:`project_to_detector` for the direction: ``(..., 3)`` unit vectors ``u_f``
    (x along the beam, z up). The scattering vector of a spot points along ``u_f - (1, 0, 0)``.
    """
    X = np.asarray(col, dtype=float) + 1.0
    Y = np.asarray(row, dtype=float) + 1.0
    xbet, xgam = np.radians(calibration.xbet), np.radians(calibration.xgam)
    x1 = (X - calibration.xcen) * calibration.pixel_size
    y1 = (Y - calibration.ycen) * calibration.pixel_size
    cg, sg = np.cos(-xgam), np.sin(-xgam)
    xca0 = cg * x1 - sg * y1
    yca0 = sg * x1 + cg * y1
    # the point on the detector in LT2 (y along the beam), then back to the LaueTools frame
    m = np.stack(
        [
            calibration.dd * np.sin(xbet) + yca0 * np.cos(xbet),
            -xca0,
            calibration.dd * np.cos(xbet) - yca0 * np.sin(xbet),
        ],
        axis=-1,
    )
    return m / np.linalg.norm(m, axis=-1, keepdims=True)


def pixel_to_angles(
    row: np.ndarray, col: np.ndarray, calibration: Calibration
) -> tuple[np.ndarray, np.ndarray]:
    """``(2theta, chi)`` in degrees of 0-based pixel positions (inverse of :func:`project_to_detector`)."""
    u = pixel_to_kf(row, col, calibration)
    return np.degrees(np.arccos(u[..., 0])), np.degrees(np.arctan(u[..., 1] / u[..., 2]))


def rotation_matrix(axis, angle_deg: float) -> np.ndarray:
    """Right-handed rotation by ``angle_deg`` degrees about ``axis`` (Rodrigues)."""
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    t = np.radians(angle_deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Draw a rotation matrix uniformly distributed over SO(3) (from a random unit quaternion)."""
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
