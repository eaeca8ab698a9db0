"""Crystal structures for the simulator: lattice, atoms, reciprocal basis and structure factors.

Extinctions are not tabulated: they follow from the structure factor of the atoms in the
conventional cell (a reflection is forbidden when ``|F|^2`` vanishes), so diamond-cubic, fcc and
R-3c rules all come out of the same code.

Atomic scattering factors use a documented simple model, ``f(s) = Z / (1 + (s / s0)^2)`` with
``s = sin(theta) / lambda = |q| / 2`` (1/Angstrom) and ``s0 = 0.65`` 1/Angstrom, times a Debye-Waller
factor ``exp(-B s^2)``. It follows tabulated factors to ~25% over the range that matters here, which
is plenty for spot intensities that are randomised anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from laue_live._errors import SettingsError

__all__ = ["Material", "MATERIALS", "get_material", "reciprocal_basis"]

_S0 = 0.65  # 1/Angstrom, width of the model atomic form factor


def reciprocal_basis(a: float, b: float, c: float, alpha: float, beta: float, gamma: float) -> np.ndarray:
    """Reciprocal basis ``B`` (columns a*, b*, c*, 1/Angstrom, no 2 pi) in the Busing-Levy frame.

    Parameters
    ----------
    a, b, c
        Lattice lengths, Angstrom.
    alpha, beta, gamma
        Lattice angles, degrees.

    Returns
    -------
    numpy.ndarray
        3 x 3 upper-triangular matrix with ``q = B @ (h, k, l)`` in the crystal's Cartesian frame
        (x along a*, z along c), the convention LaueTools uses too.
    """
    al, be, ga = np.radians([alpha, beta, gamma])
    # real-space basis as columns, a along x, b in the xy plane
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    cz = np.sqrt(max(c * c - cx * cx - cy * cy, 0.0))
    direct = np.array([[a, b * np.cos(ga), cx], [0.0, b * np.sin(ga), cy], [0.0, 0.0, cz]])
    if abs(np.linalg.det(direct)) < 1e-9:
        raise SettingsError(f"degenerate lattice {a, b, c, alpha, beta, gamma}")
    recip = np.linalg.inv(direct).T  # columns a*, b*, c*
    # rotate so that a* is along x and c along z (Busing-Levy): QR of the reciprocal basis
    q, r = np.linalg.qr(recip)
    signs = np.sign(np.diag(r))
    return r * signs[:, None]


@dataclass(frozen=True)
class Material:
    """A crystal: lattice and the atoms of its conventional cell.

    Parameters
    ----------
    name
        Short name (``"Si"``).
    lattice
        ``(a, b, c, alpha, beta, gamma)`` in Angstrom and degrees.
    atoms
        ``[(Z, [[x, y, z], ...]), ...]``: atomic number and fractional positions of every atom of
        the conventional cell.
    debye_waller
        Isotropic Debye-Waller ``B``, Angstrom^2.
    structure
        Human-readable structure type (for metadata).
    """

    name: str
    lattice: tuple[float, float, float, float, float, float]
    atoms: tuple[tuple[int, tuple[tuple[float, float, float], ...]], ...]
    debye_waller: float = 0.5
    structure: str = ""
    _b: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_b", reciprocal_basis(*self.lattice))

    @property
    def B(self) -> np.ndarray:  # noqa: N802 - the crystallographers' name
        """Reciprocal basis matrix (columns a*, b*, c*), 1/Angstrom."""
        return self._b.copy()

    def structure_factor_sq(self, hkl: np.ndarray, s: np.ndarray) -> np.ndarray:
        """``|F(hkl)|^2`` (electrons^2) with the model form factors.

        Parameters
        ----------
        hkl
            ``(n, 3)`` integer Miller indices.
        s
            ``(n,)`` ``sin(theta)/lambda`` of each reflection, 1/Angstrom.
        """
        hkl = np.asarray(hkl, dtype=float)
        re = np.zeros(len(hkl))
        im = np.zeros(len(hkl))
        for z, positions in self.atoms:
            f = z / (1.0 + (s / _S0) ** 2)
            phase = 2.0 * np.pi * hkl @ np.asarray(positions, dtype=float).T  # (n, n_atoms)
            re += f * np.cos(phase).sum(axis=1)
            im += f * np.sin(phase).sum(axis=1)
        return (re * re + im * im) * np.exp(-2.0 * self.debye_waller * s * s)

    def to_dict(self) -> dict:
        """Metadata form (name, lattice, structure)."""
        return {"name": self.name, "lattice": list(self.lattice), "structure": self.structure}


def _fcc(basis: list[tuple[float, float, float]]) -> tuple[tuple[float, float, float], ...]:
    shifts = [(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)]
    return tuple(
        ((bx + sx) % 1, (by + sy) % 1, (bz + sz) % 1) for bx, by, bz in basis for sx, sy, sz in shifts
    )


def _corundum() -> tuple:
    # R-3c, hexagonal axes: Al 12c (0,0,z), O 18e (x,0,1/4), with the R centring translations
    z, x = 0.35216, 0.30624
    al = [(0, 0, z), (0, 0, 0.5 - z), (0, 0, -z), (0, 0, 0.5 + z)]
    o = [(x, 0, 0.25), (0, x, 0.25), (-x, -x, 0.25), (-x, 0, 0.75), (0, -x, 0.75), (x, x, 0.75)]
    centring = [(0, 0, 0), (2 / 3, 1 / 3, 1 / 3), (1 / 3, 2 / 3, 2 / 3)]

    def expand(pos):
        return tuple(((p[0] + t[0]) % 1, (p[1] + t[1]) % 1, (p[2] + t[2]) % 1) for p in pos for t in centring)

    return ((13, expand(al)), (8, expand(o)))


_DIAMOND = [(0.0, 0.0, 0.0), (0.25, 0.25, 0.25)]

#: Materials known by name. Lattice parameters at room temperature.
MATERIALS: dict[str, Material] = {
    "Si": Material(
        "Si", (5.4309, 5.4309, 5.4309, 90, 90, 90), ((14, _fcc(_DIAMOND)),), 0.46, "diamond cubic"
    ),
    "Ge": Material(
        "Ge", (5.6575, 5.6575, 5.6575, 90, 90, 90), ((32, _fcc(_DIAMOND)),), 0.57, "diamond cubic"
    ),
    "Cu": Material("Cu", (3.6149, 3.6149, 3.6149, 90, 90, 90), ((29, _fcc([(0.0, 0.0, 0.0)])),), 0.55, "fcc"),
    "Al": Material("Al", (4.0495, 4.0495, 4.0495, 90, 90, 90), ((13, _fcc([(0.0, 0.0, 0.0)])),), 0.85, "fcc"),
    "Al2O3": Material(
        "Al2O3", (4.7589, 4.7589, 12.991, 90, 90, 120), _corundum(), 0.3, "corundum, R-3c (hexagonal axes)"
    ),
    # wurtzite, P6_3mc (the nanowires of the BM32 reference frames): Ga 2b, N 2b with u = 0.377
    "GaN": Material(
        "GaN",
        (3.189, 3.189, 5.185, 90, 90, 120),
        (
            (31, ((1 / 3, 2 / 3, 0.0), (2 / 3, 1 / 3, 0.5))),
            (7, ((1 / 3, 2 / 3, 0.377), (2 / 3, 1 / 3, 0.877))),
        ),
        0.4,
        "wurtzite, P6_3mc",
    ),
}


def get_material(material: str | Material) -> Material:
    """Return ``material`` itself or the :data:`MATERIALS` entry of that name.

    Raises
    ------
    SettingsError
        For an unknown name (the message lists the known ones).
    """
    if isinstance(material, Material):
        return material
    try:
        return MATERIALS[material]
    except (KeyError, TypeError):
        raise SettingsError(f"unknown material {material!r}; known: {sorted(MATERIALS)}") from None
