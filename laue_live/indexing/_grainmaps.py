"""Per-frame values of an indexed scan for maps: one grain per frame, its orientation, strain and quality.

Pure pandas/numpy on the ``grains`` table of an analysis run (:data:`laue_live._schema.GRAIN_COLUMNS`,
one row per grain and frame), shared by the catalog's maps (:mod:`laue_live.catalog`), the live
matplotlib views and the dashboard, so that a map means the same everywhere.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from laue_live._errors import SettingsError
from laue_live._maps import GRAIN_VALUES, MapValue
from laue_live.geometry import MATERIALS, Material, get_material
from laue_live.indexing._ipf import ipf_colors, ipf_sector
from laue_live.indexing._symmetry import misorientation_deg, pattern_rotations

__all__ = ["GRAIN_MAP_VALUES", "select_grains", "grain_values", "orientation_colors", "grain_map_table",
           "u_matrices", "material_from_metadata", "materials_from_indexing"]

logger = logging.getLogger(__name__)

_U_COLS = [f"u{i + 1}{j + 1}" for i in range(3) for j in range(3)]


#: The grain values a map can show, by name: :data:`laue_live._maps.GRAIN_VALUES` (labels and units;
#: the one list the catalog, the views and the dashboard share); ``orientation`` is drawn in IPF colours.
GRAIN_MAP_VALUES: dict[str, MapValue] = {v.name: v for v in GRAIN_VALUES}
#: Factor from the stored value to the one shown (strain: 1e-3 units).
_SCALE = {v.name: 1e3 for v in GRAIN_VALUES if v.unit == "10⁻³"}


def u_matrices(table: pd.DataFrame) -> np.ndarray:
    """Return the ``(n, 3, 3)`` orientation matrices of the rows of a grains table."""
    return table[_U_COLS].to_numpy(dtype=float).reshape(-1, 3, 3)


def select_grains(grains: pd.DataFrame, grain: str | int = "largest") -> pd.DataFrame:
    """One grain per frame: the one with the most matched spots (``"largest"``), or grain number ``grain``.

    Returns the selected rows indexed by frame (frames without such a grain are absent).
    """
    if grains is None or not len(grains):
        return pd.DataFrame(columns=list(grains.columns) if grains is not None else []).set_index(
            pd.Index([], name="frame", dtype=np.int64))
    if grain == "largest":
        order = grains.sort_values(["frame", "n_matched", "grain"], ascending=[True, False, True],
                                   kind="stable")
        chosen = order.drop_duplicates("frame", keep="first")
    elif isinstance(grain, int | np.integer):
        chosen = grains[grains["grain"] == int(grain)].drop_duplicates("frame", keep="last")
    else:
        raise SettingsError(f"grain must be 'largest' or a grain number, not {grain!r}")
    return chosen.set_index("frame").sort_index()


def material_from_metadata(entry: Mapping | str) -> Material:
    """Build a material from a name or a mapping ``{"name", "lattice", "space_group", "atoms"}``.

    The form of start documents and of the ``materials`` entries of an analysis run's ``indexing``
    metadata. A project material (``Si``...) with the recorded lattice (or none) is taken as is;
    another is built from its lattice and space group, with its atoms if given
    (``[[element, [x, y, z]], ...]``, the asymmetric unit), else from the space group's absences.

    Raises
    ------
    SettingsError
        An unknown name without a lattice and space group, or bad lattice, atoms or space group.
    """
    if isinstance(entry, str):
        return get_material(entry)
    name = str(entry.get("name") or "")
    known = MATERIALS.get(name)
    try:
        lattice = tuple(float(v) for v in entry.get("lattice") or ())
        atoms = entry.get("atoms")
        atoms = None if atoms is None else [(el, tuple(float(x) for x in pos)) for el, pos in atoms]
    except (TypeError, ValueError):
        raise SettingsError(f"material {name!r}: 'lattice' must be 6 numbers and 'atoms' "
                            "[[element, [x, y, z]], ...]") from None
    if known is not None and atoms is None and (not lattice or np.allclose(known.lattice, lattice)):
        return known
    if len(lattice) != 6 or not entry.get("space_group"):
        if known is None and not lattice:
            return get_material(name)  # the unknown-material message, with the known ones
        raise SettingsError(f"material {name!r}: give 'lattice' (6 numbers) and 'space_group'")
    return Material.from_space_group(name or "custom", lattice, str(entry["space_group"]), atoms=atoms)


def materials_from_indexing(info: Mapping | None) -> dict[str, Material]:
    """Return the materials of an analysis run's ``indexing`` metadata by name (for their symmetry in maps).

    An entry that cannot be rebuilt is left out with a warning: its grains are then mapped with the
    project's material of that name.
    """
    info = info or {}
    out = {}
    for entry in info.get("materials") or info.get("material") or []:
        try:
            m = material_from_metadata(entry)
        except Exception as exc:  # noqa: BLE001 - a map of that material's grains then uses its name
            logger.warning("cannot rebuild material %r of the run: %s", entry, exc)
            continue
        out[m.name] = m
    return out


def _materials(grains: pd.DataFrame, materials: Mapping[str, Material] | None) -> dict[str, Material]:
    out = dict(materials or {})
    for name in grains["material"].unique() if len(grains) else ():
        if name not in out:
            out[name] = get_material(name)
    return out


def grain_values(grains: pd.DataFrame, value: str, *, grain: str | int = "largest", reference="first",
                 materials: Mapping[str, Material] | None = None) -> pd.Series:
    """One value per indexed frame (a Series indexed by frame), in the unit of :data:`GRAIN_MAP_VALUES`.

    Parameters
    ----------
    grains
        The run's grains table (``frame`` + :data:`laue_live.indexing.GRAIN_COLUMNS`).
    value
        A key of :data:`GRAIN_MAP_VALUES`.
    grain
        Which grain of a frame: ``"largest"`` (most matched spots) or a grain number.
    reference
        For ``misorientation``: ``"first"`` (the selected grain of the first indexed frame) or a
        3 x 3 orientation matrix; degrees, up to the crystal's symmetry.
    materials
        Materials by name (default: the project's), for the symmetry.
    """
    if value not in GRAIN_MAP_VALUES:
        raise KeyError(f"unknown grain map value {value!r}; known: {sorted(GRAIN_MAP_VALUES)}")
    if value == "n_grains":
        return grains.groupby("frame").size().astype(float) if len(grains) else pd.Series(dtype=float)
    return _chosen_values(select_grains(grains, grain), value, reference, materials)


@functools.lru_cache(maxsize=32)
def _rotations(material: Material) -> np.ndarray:
    return pattern_rotations(material)[1]  # ~30 ms: once per material


def _chosen_values(chosen: pd.DataFrame, value: str, reference, materials) -> pd.Series:
    """One value of each frame's selected grain (``chosen``: :func:`select_grains`)."""
    if value != "misorientation":
        return chosen[value].astype(float) * _SCALE.get(value, 1.0)
    if not len(chosen):
        return pd.Series(dtype=float)
    mats = _materials(chosen, materials)
    if isinstance(reference, str):
        if reference != "first":
            raise SettingsError(f"reference must be 'first' or a 3 x 3 matrix, not {reference!r}")
        ref_u, ref_material = u_matrices(chosen.iloc[:1])[0], chosen["material"].iloc[0]
    else:
        ref_u = np.asarray(reference, dtype=float)
        if ref_u.shape != (3, 3) or not np.all(np.isfinite(ref_u)):
            raise SettingsError("reference orientation must be a finite 3 x 3 matrix")
        ref_material = None
    out = np.full(len(chosen), np.nan)
    for i, (u, name) in enumerate(zip(u_matrices(chosen), chosen["material"], strict=True)):
        if ref_material is None or name == ref_material:
            out[i] = misorientation_deg(u, ref_u, _rotations(mats[name]))
    return pd.Series(out, index=chosen.index)


def orientation_colors(grains: pd.DataFrame, direction="z", *, grain: str | int = "largest",
                       materials: Mapping[str, Material] | None = None) -> pd.DataFrame:
    """Inverse-pole-figure colours per indexed frame: a DataFrame indexed by frame with ``r, g, b, material``.

    Each frame's selected grain is coloured with its material's sector (:func:`ipf_sector`).
    """
    return _colours(select_grains(grains, grain), direction, materials)


def _colours(chosen: pd.DataFrame, direction, materials) -> pd.DataFrame:
    rgb = np.full((len(chosen), 3), np.nan)
    if len(chosen):
        mats = _materials(chosen, materials)
        us = u_matrices(chosen)
        names = chosen["material"].to_numpy()
        for name in np.unique(names):
            sel = names == name
            rgb[sel] = ipf_colors(us[sel], ipf_sector(mats[name]), direction)
    return pd.DataFrame({"r": rgb[:, 0], "g": rgb[:, 1], "b": rgb[:, 2],
                         "material": chosen["material"].to_numpy() if len(chosen) else []},
                        index=chosen.index)


def grain_map_table(grains: pd.DataFrame, direction="z", *, grain: str | int = "largest", reference="first",
                    materials: Mapping[str, Material] | None = None) -> pd.DataFrame:
    """Every map value of a grains table at once: one row per frame with a grain, indexed by frame.

    Columns: the :data:`GRAIN_MAP_VALUES` (as :func:`grain_values` gives them) and the orientation's
    inverse-pole-figure colour ``r, g, b`` (:func:`orientation_colors`) and ``material``. What the
    dashboard shows of a run, live (a frame at a time, ``reference`` the run's first grain) or read
    back from the catalog.
    """
    chosen = select_grains(grains, grain)  # once for every value
    values = {name: grain_values(grains, name) if name == "n_grains" else
              _chosen_values(chosen, name, reference, materials) for name in GRAIN_MAP_VALUES}
    colours = _colours(chosen, direction, materials)
    table = pd.DataFrame(values)
    return table.join(colours, how="left") if len(table) else pd.DataFrame(
        columns=[*GRAIN_MAP_VALUES, "r", "g", "b", "material"])
