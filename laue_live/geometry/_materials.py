"""Crystal structures: lattice, atoms, space group, reciprocal basis, structure factors, extinctions.

Extinctions are not tabulated: they follow from the structure factor of the atoms in the
conventional cell (a reflection is forbidden when ``|F|^2`` vanishes), so diamond-cubic, fcc and
R-3c rules all come out of the same code. A material given by its lattice and space group only
(no atoms, :meth:`Material.from_space_group`) takes the space group's systematic absences instead
(computed by gemmi).

Atomic scattering factors use a documented simple model, ``f(s) = Z / (1 + (s / s0)^2)`` with
``s = sin(theta) / lambda = |q| / 2`` (1/Angstrom) and ``s0 = 0.65`` 1/Angstrom, times a Debye-Waller
factor ``exp(-B s^2)``. It follows tabulated factors to ~25% over the range that matters here, which
is plenty for spot intensities that are randomised anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gemmi
import numpy as np

from laue_live._errors import SettingsError

__all__ = ["Material", "MATERIALS", "get_material", "reciprocal_basis", "ALLOWED_F2_FRACTION"]

_S0 = 0.65  # 1/Angstrom, width of the model atomic form factor
#: A reflection is allowed when ``|F|^2 > ALLOWED_F2_FRACTION * |F(000)|^2`` (the simulator's rule too).
ALLOWED_F2_FRACTION = 1e-6


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
    space_group
        Hermann-Mauguin symbol (``"Fd-3m"``, ``"R-3c"`` on hexagonal axes, ...) or ``""`` if unknown.
        Metadata when ``atoms`` are given; with ``atoms=()`` the space group's systematic absences
        decide which reflections exist (see :meth:`from_space_group`).
    """

    name: str
    lattice: tuple[float, float, float, float, float, float]
    atoms: tuple[tuple[int, tuple[tuple[float, float, float], ...]], ...]
    debye_waller: float = 0.5
    structure: str = ""
    space_group: str = ""
    _b: np.ndarray = field(init=False, repr=False, compare=False)
    _ops: object = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_b", reciprocal_basis(*self.lattice))
        if self.space_group:
            sg = gemmi.find_spacegroup_by_name(self.space_group)
            if sg is None:
                raise SettingsError(f"material {self.name}: unknown space group {self.space_group!r}")
            object.__setattr__(self, "_ops", sg.operations())
        elif not self.atoms:
            raise SettingsError(f"material {self.name}: give its atoms or its space group (or both)")

    @classmethod
    def from_space_group(
        cls,
        name: str,
        lattice,
        space_group: str,
        atoms=None,
        debye_waller: float = 0.5,
    ) -> Material:
        """Make a material from its lattice parameters and space group, optionally with its atoms.

        Parameters
        ----------
        name
            Short name.
        lattice
            ``(a, b, c, alpha, beta, gamma)`` in Angstrom and degrees, in the space group's
            conventional setting (hexagonal axes for rhombohedral groups such as ``"R-3c"``).
        space_group
            Hermann-Mauguin symbol or number as gemmi knows it (``"Fd-3m"``, ``"P6_3mc"``, ``"227"``).
        atoms
            ``[(element or Z, (x, y, z)), ...]``: the asymmetric unit, fractional coordinates; the
            space group's operations generate the rest of the cell. ``None``: no atoms; reflections
            are then allowed unless the space group forbids them (systematic absences), and every
            allowed reflection gets ``|F|^2 = 1``.
        debye_waller
            Isotropic Debye-Waller ``B``, Angstrom^2.

        Raises
        ------
        SettingsError
            On an unknown space group or element, or a lattice that does not fit the space group.
        """
        sg = gemmi.find_spacegroup_by_name(str(space_group))
        if sg is None:
            raise SettingsError(f"unknown space group {space_group!r}")
        try:
            lat = tuple(float(v) for v in lattice)
        except (TypeError, ValueError):
            raise SettingsError(f"lattice must be 6 numbers (a, b, c, alpha, beta, gamma), got {lattice!r}") \
                from None
        if len(lat) != 6 or not all(np.isfinite(lat)) or min(lat[:3]) <= 0:
            raise SettingsError(f"lattice must be 6 finite numbers with a, b, c > 0, got {lattice!r}")
        cell = gemmi.UnitCell(*lat)
        if not cell.is_compatible_with_spacegroup(sg, 1e-3):
            raise SettingsError(f"lattice {lat} does not fit space group {sg.hm}")
        expanded: tuple = ()
        if atoms:
            ops = sg.operations()
            by_z: dict[int, list] = {}
            for element, xyz in atoms:
                z = _atomic_number(element)
                site = gemmi.Fractional(*(float(v) for v in xyz))
                for pos in _orbit(ops, site):
                    by_z.setdefault(z, []).append(pos)
            expanded = tuple((z, tuple(_unique_positions(p))) for z, p in by_z.items())
        return cls(name, lat, expanded, debye_waller, f"space group {sg.hm}", sg.xhm())

    @property
    def space_group_operations(self):
        """Gemmi ``GroupOps`` of :attr:`space_group`, or ``None`` if it is not given."""
        return self._ops

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
        if not self.atoms:  # space group only: 1 unless systematically absent
            return np.where(self._ops.systematic_absences(np.rint(hkl).astype(np.int32)), 0.0, 1.0)
        re = np.zeros(len(hkl))
        im = np.zeros(len(hkl))
        for z, positions in self.atoms:
            f = z / (1.0 + (s / _S0) ** 2)
            phase = 2.0 * np.pi * hkl @ np.asarray(positions, dtype=float).T  # (n, n_atoms)
            re += f * np.cos(phase).sum(axis=1)
            im += f * np.sin(phase).sum(axis=1)
        return (re * re + im * im) * np.exp(-2.0 * self.debye_waller * s * s)

    def allowed(self, hkl) -> np.ndarray:
        """Whether each reflection exists: ``|F|^2 > ALLOWED_F2_FRACTION |F(000)|^2`` (bool array).

        Parameters
        ----------
        hkl
            ``(n, 3)`` integer Miller indices of the conventional cell.
        """
        hkl = np.asarray(hkl, dtype=float).reshape(-1, 3)
        s = np.linalg.norm(hkl @ self._b.T, axis=1) / 2.0
        f000 = max(self.structure_factor_sq(np.zeros((1, 3)), np.zeros(1))[0], 1.0)
        return self.structure_factor_sq(hkl, s) > ALLOWED_F2_FRACTION * f000

    def to_dict(self) -> dict:
        """Metadata form (name, lattice, structure, space group)."""
        return {"name": self.name, "lattice": list(self.lattice), "structure": self.structure,
                "space_group": self.space_group}


def _atomic_number(element) -> int:
    if isinstance(element, int | np.integer):
        z = int(element)
    else:
        z = gemmi.Element(str(element).strip()).atomic_number
    if not 1 <= z <= 118:
        raise SettingsError(f"unknown element {element!r}")
    return z


def _orbit(ops, site) -> list[tuple[float, float, float]]:
    return [tuple(v % 1.0 for v in op.apply_to_xyz(site.tolist())) for op in ops]


def _unique_positions(positions, tol: float = 1e-4) -> list[tuple[float, float, float]]:
    out: list[np.ndarray] = []
    for p in positions:
        p = np.asarray(p, dtype=float)
        if not any(np.all(np.abs((p - q + 0.5) % 1.0 - 0.5) < tol) for q in out):
            out.append(p)
    return [tuple(float(v) for v in p) for p in out]


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
        "Si", (5.4309, 5.4309, 5.4309, 90, 90, 90), ((14, _fcc(_DIAMOND)),), 0.46, "diamond cubic", "Fd-3m"
    ),
    "Ge": Material(
        "Ge", (5.6575, 5.6575, 5.6575, 90, 90, 90), ((32, _fcc(_DIAMOND)),), 0.57, "diamond cubic", "Fd-3m"
    ),
    "Cu": Material(
        "Cu", (3.6149, 3.6149, 3.6149, 90, 90, 90), ((29, _fcc([(0.0, 0.0, 0.0)])),), 0.55, "fcc", "Fm-3m"
    ),
    "Al": Material(
        "Al", (4.0495, 4.0495, 4.0495, 90, 90, 90), ((13, _fcc([(0.0, 0.0, 0.0)])),), 0.85, "fcc", "Fm-3m"
    ),
    "Al2O3": Material(
        "Al2O3", (4.7589, 4.7589, 12.991, 90, 90, 120), _corundum(), 0.3, "corundum, R-3c (hexagonal axes)",
        "R-3c",
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
        "P6_3mc",
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
