"""The spots a crystal orientation predicts on the detector, from the precomputed reflection table.

Same physics as :func:`laue_live.geometry.simulate_spots` (Bragg energy in the band for some allowed
harmonic, ray onto the frame), restricted to what the indexer needs (positions, Miller indices of the
lowest allowed harmonic, energies) and fast enough to run for every candidate orientation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from laue_live.geometry import HC_KEV_ANGSTROM, Calibration, bm32_spectrum, detector_pixels, kf_unit_vectors
from laue_live.indexing._tables import ReflectionTable, bragg_energy

__all__ = ["Prediction", "predict_spots"]


@dataclass(frozen=True)
class Prediction:
    """Predicted spots of one orientation: index into the reflection table, labels and positions.

    Attributes
    ----------
    index
        ``(n,)`` rows of the :class:`ReflectionTable`.
    hkl
        ``(n, 3)`` Miller indices of the lowest allowed harmonic in the band (the spot's label).
    energy
        ``(n,)`` its Bragg energy, keV.
    row, col
        ``(n,)`` 0-based pixel positions.
    intensity
        ``(n,)`` relative intensity of the labelled harmonic (the simulator's kinematic model,
        ``S(E) lambda^4 |F|^2 P / sin^2 theta`` with BM32's spectrum), to weight matched fractions.
    """

    index: np.ndarray
    hkl: np.ndarray
    energy: np.ndarray
    row: np.ndarray
    col: np.ndarray
    intensity: np.ndarray

    def subset(self, keep: np.ndarray) -> Prediction:
        """Return the predicted spots ``keep`` (index array or mask)."""
        return Prediction(self.index[keep], self.hkl[keep], self.energy[keep], self.row[keep], self.col[keep],
                          self.intensity[keep])

    def __len__(self) -> int:
        return len(self.index)


def predict_spots(
    table: ReflectionTable, ub: np.ndarray, calibration: Calibration, energy_range: tuple[float, float]
) -> Prediction:
    """Spots of the crystal ``q = ub hkl`` that fall on the detector with an energy in the band.

    Parameters
    ----------
    table
        Reflections of the material.
    ub
        3 x 3 matrix (LaueTools frame, 1/Angstrom), e.g. ``U B`` or a strained one.
    calibration
        Detector geometry.
    energy_range
        ``(E_min, E_max)``, keV.
    """
    e_min, e_max = energy_range
    q = table.hklf @ ub.T
    e1 = bragg_energy(q)
    idx = np.flatnonzero(np.isfinite(e1) & (e1 <= e_max))
    e1 = e1[idx]
    n_lo = np.clip(np.ceil(e_min / e1), 1, table.n_max + 1).astype(np.intp)
    n_hi = np.floor(e_max / e1)
    first = table.next_allowed[idx, n_lo]
    ok = first <= n_hi
    idx, e1, first = idx[ok], e1[ok], first[ok].astype(int)
    uf, _ = kf_unit_vectors(q[idx])
    r, c = detector_pixels(uf, calibration)
    rows, cols = calibration.frame_shape
    with np.errstate(invalid="ignore"):
        on = (r >= -0.5) & (r < rows - 0.5) & (c >= -0.5) & (c < cols - 0.5)
    idx, first, uf, r, c = idx[on], first[on], uf[on], r[on], c[on]
    energy = e1[on] * first
    sin2_theta = np.clip((1.0 - uf[:, 0]) / 2.0, 1e-6, None)  # 2theta = arccos(u_f . x)
    intensity = (bm32_spectrum(energy) * (HC_KEV_ANGSTROM / energy) ** 4 * table.f2[idx, first]
                 * (1.0 - uf[:, 1] ** 2) / sin2_theta)
    return Prediction(index=idx, hkl=table.hkl[idx] * first[:, None], energy=energy, row=r, col=c,
                      intensity=intensity)

