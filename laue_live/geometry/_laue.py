"""Laue spot positions, energies and intensities for one crystal on BM32's detector.

Intensity model (relative, documented simplification)
------------------------------------------------------
For a reflection at wavelength ``lambda`` and Bragg angle ``theta`` the integrated intensity of a
Laue spot is taken as ``S(E) lambda^4 |F|^2 P / sin^2(theta)`` (kinematic Laue formula), with
``|F|^2`` from :meth:`Material.structure_factor_sq`, ``P = 1 - (u_f . y)^2`` the polarization factor
of a beam polarized horizontally (y, perpendicular to the beam) and ``S(E)`` the beam spectrum
(:func:`bm32_spectrum`). Harmonics ``n (h k l)`` in the energy band land on the same pixel: their
intensities are summed and the spot is labelled by the lowest allowed harmonic in the band.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from laue_live._errors import SettingsError
from laue_live.geometry._calibration import Calibration
from laue_live.geometry._materials import Material, get_material
from laue_live.geometry._projection import HC_KEV_ANGSTROM, kf_unit_vectors, project_to_detector

__all__ = ["simulate_spots", "bm32_spectrum", "SPOT_LIST_COLUMNS"]

log = logging.getLogger(__name__)

#: Columns of the DataFrame returned by :func:`simulate_spots`.
SPOT_LIST_COLUMNS = (
    "row",
    "col",
    "h",
    "k",
    "l",
    "energy_keV",
    "two_theta",
    "chi",
    "n_harmonics",
    "structure_factor_sq",
    "intensity",
    "streak_row",
    "streak_col",
    "obliquity",
    "radial_row",
    "radial_col",
)


def bm32_spectrum(energy_keV: np.ndarray) -> np.ndarray:
    """Relative photon flux per keV of BM32's white beam (smooth model, max 1 at ~12 keV).

    A bending-magnet continuum cut at low energy by windows and filters and at high energy by the
    focusing mirrors, modelled as a log-normal bump; only its shape matters for relative intensities.
    """
    e = np.asarray(energy_keV, dtype=float)
    return np.exp(-0.5 * (np.log(e / 12.0) / 0.45) ** 2)


def _check_rotation(orientation) -> np.ndarray:
    u = np.asarray(orientation, dtype=float)
    if u.shape != (3, 3) or not np.all(np.isfinite(u)):
        raise SettingsError(f"orientation must be a finite 3 x 3 matrix, got shape {u.shape}")
    # LaueTools matrices may carry a small non-orthogonality (refined strain): accept up to a few %
    gram = u.T @ u
    if not np.allclose(gram, np.eye(3), atol=0.05) or np.linalg.det(u) <= 0:
        raise SettingsError("orientation must be a proper rotation matrix (orthonormal, det = +1)")
    return u


def simulate_spots(
    material: str | Material,
    orientation,
    calibration: Calibration,
    energy_range: tuple[float, float] = (5.0, 23.0),
    strain=None,
    spectrum=bm32_spectrum,
    depth_streak_mm: float = 0.05,
) -> pd.DataFrame:
    """Laue spots of one crystal that fall on the detector.

    Parameters
    ----------
    material
        A :class:`Material` or a name in :data:`MATERIALS` (``"Si"``, ``"Ge"``, ``"Cu"``, ``"Al"``,
        ``"Al2O3"``, ``"GaN"``).
    orientation
        3 x 3 orientation matrix ``U`` (LaueTools frame: x along the beam, z up):
        ``q = U @ B @ (h, k, l)``, as in a LaueTools ``.det``/``.fit`` file.
    calibration
        Detector geometry (:class:`laue_live.geometry._calibration.Calibration`).
    energy_range
        ``(E_min, E_max)`` of the polychromatic beam, keV.
    strain
        Optional 3 x 3 symmetric strain tensor in the crystal's Cartesian frame (dimensionless,
        e.g. 1e-3). The lattice deforms by ``F = I + strain``; reciprocal vectors by ``F^-T``. Only
        its deviatoric part moves spots; the hydrostatic part shifts energies.
    spectrum
        Callable ``S(E_keV)`` giving the relative flux.
    depth_streak_mm
        Path length into the sample used to compute each spot's streak direction (the pixel shift
        of a spot whose scattering point moves this far along the beam), mm.

    Returns
    -------
    pandas.DataFrame
        One row per spot, columns :data:`SPOT_LIST_COLUMNS`: ``row, col`` (0-based, pixel centres at
        integers), Miller indices ``h, k, l`` of the lowest allowed harmonic in the band, its
        ``energy_keV``, ``two_theta`` and ``chi`` (degrees), ``n_harmonics``, ``structure_factor_sq``,
        relative ``intensity`` (max 1 in the pattern), the streak vector ``streak_row,
        streak_col`` (px), and ``obliquity`` (1 / cos of the incidence angle on the detector) with
        the unit radial direction ``radial_row, radial_col`` along which it stretches the spot.
        Sorted by decreasing intensity.

    Raises
    ------
    SettingsError
        On a bad material, orientation, strain or energy range.
    """
    mat = get_material(material)
    u = _check_rotation(orientation)
    e_min, e_max = (float(v) for v in energy_range)
    if not (0 < e_min < e_max) or not np.isfinite(e_max):
        raise SettingsError(f"energy_range must be 0 < E_min < E_max (keV), got {energy_range}")
    b = mat.B
    if strain is not None:
        eps = np.asarray(strain, dtype=float)
        if eps.shape != (3, 3) or not np.all(np.isfinite(eps)) or not np.allclose(eps, eps.T, atol=1e-12):
            raise SettingsError("strain must be a finite symmetric 3 x 3 tensor")
        if np.abs(eps).max() > 0.1:
            raise SettingsError(
                f"strain components above 10% are unphysical here (max {np.abs(eps).max():.3g})"
            )
        b = np.linalg.inv(np.eye(3) + eps).T @ b
    ub = u @ b

    q_max = 2.0 * e_max / HC_KEV_ANGSTROM  # |q| <= 2 |k| at E_max
    direct = np.linalg.inv(ub).T  # columns: real-space vectors in the lab; h = q . a_i
    hmax = np.ceil(q_max * np.linalg.norm(direct, axis=0)).astype(int)
    axes = [np.arange(-m, m + 1) for m in hmax]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    g = np.gcd.reduce(np.abs(hkl), axis=1)
    hkl = hkl[g == 1]  # one primitive vector per reflection direction; harmonics handled below

    q1 = hkl @ ub.T
    uf, e1 = kf_unit_vectors(q1)
    ok = np.isfinite(e1) & (e1 <= e_max)
    hkl, q1, uf, e1 = hkl[ok], q1[ok], uf[ok], e1[ok]
    det = project_to_detector(uf, calibration)
    rows, cols = calibration.frame_shape
    on = (
        det["hits"]
        & (det["row"] >= -0.5)
        & (det["row"] < rows - 0.5)
        & (det["col"] >= -0.5)
        & (det["col"] < cols - 0.5)
    )
    hkl, q1, uf, e1 = hkl[on], q1[on], uf[on], e1[on]
    det = {k: v[on] for k, v in det.items()}

    # harmonics n * (h k l): same pixel, energy n * E1; keep those in the band with |F|^2 > 0
    n_max = int(np.floor(e_max / e1.min())) if len(e1) else 0
    total = np.zeros(len(hkl))
    first_n = np.zeros(len(hkl), dtype=int)
    first_f2 = np.zeros(len(hkl))
    n_harm = np.zeros(len(hkl), dtype=int)
    theta = np.radians(det["two_theta"] / 2.0)
    pol = 1.0 - uf[:, 1] ** 2 / np.einsum("ij,ij->i", uf, uf)
    f2_scale = max(mat.structure_factor_sq(np.zeros((1, 3)), np.zeros(1))[0], 1.0)
    for n in range(1, n_max + 1):
        e_n = n * e1
        band = (e_n >= e_min) & (e_n <= e_max)
        if not band.any():
            continue
        s = n * np.linalg.norm(q1, axis=1) / 2.0
        f2 = np.zeros(len(hkl))
        f2[band] = mat.structure_factor_sq(n * hkl[band], s[band])
        allowed = band & (f2 > 1e-6 * f2_scale)
        lam = HC_KEV_ANGSTROM / e_n
        inten = np.where(allowed, spectrum(e_n) * lam**4 * f2 * pol / np.sin(theta) ** 2, 0.0)
        new = allowed & (n_harm == 0)
        first_n[new] = n
        first_f2[new] = f2[new]
        n_harm += allowed
        total += inten
    keep = n_harm > 0
    if not keep.any():
        log.info("no %s spot on the detector for this orientation", mat.name)
    # streak direction: where the spot moves if the scattering point goes deeper along the beam
    deep = project_to_detector(uf[keep], calibration, source_offset=depth_streak_mm)
    # oblique incidence stretches a spot along the radial direction from O = (xcen, ycen)
    radial = np.column_stack(
        [det["row"][keep] - (calibration.ycen - 1), det["col"][keep] - (calibration.xcen - 1)]
    )
    norm = np.linalg.norm(radial, axis=1, keepdims=True)
    radial = np.divide(radial, norm, out=np.tile([1.0, 0.0], (len(radial), 1)), where=norm > 1e-9)
    hkl_first = hkl[keep] * first_n[keep, None]
    df = pd.DataFrame(
        {
            "row": det["row"][keep],
            "col": det["col"][keep],
            "h": hkl_first[:, 0],
            "k": hkl_first[:, 1],
            "l": hkl_first[:, 2],
            "energy_keV": e1[keep] * first_n[keep],
            "two_theta": det["two_theta"][keep],
            "chi": det["chi"][keep],
            "n_harmonics": n_harm[keep],
            "structure_factor_sq": first_f2[keep],
            "intensity": total[keep],
            "streak_row": deep["row"] - det["row"][keep],
            "streak_col": deep["col"] - det["col"][keep],
            "obliquity": det["obliquity"][keep],
            "radial_row": radial[:, 0],
            "radial_col": radial[:, 1],
        }
    )
    if len(df):
        df["intensity"] /= df["intensity"].max()
    return df.sort_values("intensity", ascending=False, ignore_index=True)
