"""Materials from CIF files, read by gemmi (a maintained crystallographic library, MPL-2.0).

A small-molecule / inorganic CIF (as from the COD or ICSD) gives the cell, the space group and the
asymmetric unit; gemmi expands the sites to the full conventional cell, and the structure factor of
:class:`~laue_live.geometry.Material` then gives the extinctions.
"""

from __future__ import annotations

from pathlib import Path

import gemmi

from laue_live._errors import SettingsError
from laue_live.geometry._materials import Material

__all__ = ["read_cif"]


def read_cif(path: str | Path, name: str | None = None, block: str | None = None) -> Material:
    """Read a crystal structure from a CIF file.

    Parameters
    ----------
    path
        The ``.cif`` file.
    name
        Name of the material; by default the data block's name.
    block
        Data block to read (by name); by default the first one that holds a cell and atom sites.

    Returns
    -------
    Material
        Lattice and space group of the file, atoms of the full conventional cell (occupancies are
        taken as 1: partially occupied sites keep their extinctions, not their intensities).

    Raises
    ------
    SettingsError
        If the file cannot be read or holds no cell, space group or atom site.
    """
    path = Path(path)
    try:
        doc = gemmi.cif.read_file(str(path))
    except (OSError, ValueError, RuntimeError) as exc:
        raise SettingsError(f"cannot read CIF file {path}: {exc}") from None
    blocks = [b for b in doc if block is None or b.name == block]
    blocks = [b for b in blocks if b.find_value("_cell_length_a") is not None]
    if not blocks:
        named = f" named {block!r}" if block else ""
        raise SettingsError(f"{path}: no data block with a unit cell{named}")
    try:
        st = gemmi.make_small_structure_from_block(blocks[0])
    except (ValueError, RuntimeError) as exc:
        raise SettingsError(f"{path}: cannot read the structure: {exc}") from None
    cell = st.cell
    lattice = (cell.a, cell.b, cell.c, cell.alpha, cell.beta, cell.gamma)
    if min(lattice[:3]) <= 1.0 or 1.0 in lattice[:3]:
        raise SettingsError(f"{path}: missing or invalid cell lengths {lattice[:3]}")
    sg = st.spacegroup
    if sg is None:
        raise SettingsError(f"{path}: no space group (_space_group_name_H-M_alt, "
                            "_symmetry_space_group_name_H-M or symmetry operations)")
    sites = st.get_all_unit_cell_sites()
    if not sites:
        raise SettingsError(f"{path}: no atom site (_atom_site_fract_x/y/z)")
    by_z: dict[int, list] = {}
    for site in sites:
        z = site.element.atomic_number
        if z < 1:
            raise SettingsError(f"{path}: atom site {site.label!r} has an unknown element "
                                f"{site.type_symbol!r}")
        by_z.setdefault(z, []).append(tuple(v % 1.0 for v in site.fract.tolist()))
    atoms = tuple((z, tuple(p)) for z, p in sorted(by_z.items()))
    return Material(name or blocks[0].name, lattice, atoms, 0.5, f"from {path.name}", sg.xhm())
