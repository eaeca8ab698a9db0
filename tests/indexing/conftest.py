"""Fixtures of the indexing tests: the two real indexed frames of LaueTools' examples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "indexing"

#: name -> (material, peak list, calibration, LaueTools .fit)
FRAMES = {
    "Si": ("Si", "AH12_CMT_r14_0200_LT_0.dat", "testcalib.det", "AH12_CMT_r14_0200_LT_0.fit"),
    "Ge": ("Ge", "Ge_blanc_0000_LT_5.dat", "calibGe111.det", "Ge_blanc_0000_LT_5.fit"),
}


class RealFrame:
    """A real frame's peak list, calibration, LaueTools' .fit and LaueTools' own indexing of it."""

    def __init__(self, name: str) -> None:
        from laue_live.geometry import read_det
        from laue_live.indexing import read_fit
        from laue_live.spots import read_lauetools_dat

        material, dat, det, fit = FRAMES[name]
        self.material = material
        self.spots = read_lauetools_dat(DATA / dat)
        self.calibration = read_det(DATA / det)[0]
        self.fit = read_fit(DATA / fit)[0]
        self.lauetools = json.loads((DATA / "lauetools_index.json").read_text())[dat]["grains"][0]

    @property
    def lauetools_ub(self) -> np.ndarray:
        """LaueTools' own strain-refined UB B0 (q = UB B0 hkl)."""
        return np.array(self.lauetools["UB"]) @ np.array(self.lauetools["B0"])


@pytest.fixture(scope="session", params=sorted(FRAMES))
def real_frame(request) -> RealFrame:
    """Each real frame (Si sCMOS, Ge MarCCD)."""
    return RealFrame(request.param)


@pytest.fixture(scope="session")
def real_frames() -> dict[str, RealFrame]:
    """Both real frames by material."""
    return {k: RealFrame(k) for k in FRAMES}


def symmetry_op(indexer, u_ours, u_ref) -> tuple[np.ndarray, np.ndarray]:
    """How a reference description maps onto ours: ``(A, R)`` with ``hkl_ours = A hkl_ref`` (integer)
    and ``strain_ref = R strain_ours R^T``, for ``u_ours = u_ref R`` (R a pattern rotation)."""
    traces = np.einsum("ij,nji->n", u_ours.T @ u_ref, indexer.rotations)
    n = int(np.argmax(traces))
    return np.rint(np.linalg.inv(indexer.hkl_ops[n])).astype(int), indexer.rotations[n]


def primitive(hkl: np.ndarray) -> np.ndarray:
    """Miller indices divided by their gcd (the spot direction, harmonics merged)."""
    hkl = np.asarray(hkl, dtype=int)
    g = np.gcd.reduce(np.abs(hkl), axis=1)
    return hkl // np.maximum(g, 1)[:, None]
