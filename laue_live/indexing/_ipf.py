"""Inverse-pole-figure (IPF) colours of orientations: which crystal direction lies along a sample direction.

A Laue pattern has the symmetry of the crystal's Laue group (the pattern rotations of
:func:`~laue_live.indexing.pattern_rotations` and the inversion), so a direction of the crystal is
known only up to it: every direction has one representative in the *fundamental sector*, a spherical
triangle (the standard triangle ``[001]-[101]-[111]`` for cubic crystals, ``[0001]``-and-two-mirror
directions ``180/N`` degrees apart for an ``N``-fold main axis with 2-fold axes across it: 30 degrees
for hexagonal 6/mmm, 60 for trigonal -3m, 45 for tetragonal 4/mmm, 90 for orthorhombic mmm). Its
corners are coloured red, green and blue; a direction inside gets each colour in proportion to its
angular distance from the opposite edge (TSL/EDAX-like key: the middle of the triangle is white).
Groups without 2-fold axes across the main axis (4/m, 6/m, -3, 2/m, -1) have a wedge-shaped sector:
hue by azimuth in the wedge, whiteness by the angle from the main axis.

Pure numpy; :class:`IPFSector` also gives what a colour key needs (corner labels, a raster of the
sector) so that the views draw it with matplotlib.
"""

from __future__ import annotations

import colorsys
import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from laue_live.geometry import Material, get_material
from laue_live.indexing._symmetry import pattern_rotations

__all__ = ["IPFSector", "ipf_sector", "ipf_colors", "mathtext_label", "draw_ipf_key", "SAMPLE_DIRECTIONS"]

#: Named sample directions, in LaueTools' lab frame (x along the beam, z up).
SAMPLE_DIRECTIONS = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}
_EPS = 1e-9


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _axis_and_order(r: np.ndarray) -> tuple[np.ndarray, int]:
    angle = np.degrees(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)))
    w, v = np.linalg.eig(r)
    axis = np.real(v[:, np.argmin(np.abs(w - 1.0))])
    return _unit(axis), int(round(360.0 / angle)) if angle > 1e-6 else 1


def _direction_label(v: np.ndarray, b: np.ndarray, hexagonal: bool) -> str:
    """Smallest-integer indices ``[uvw]`` (``[uvtw]`` on hexagonal axes) of a Cartesian direction.

    Negative indices are written with a minus sign (``[2-1-10]``); :func:`mathtext_label` bars them.
    """
    uvw = b.T @ v  # direct-lattice components (a_i . b*_j = delta_ij)
    if hexagonal:
        u, w2, w = uvw
        uvw = np.array([(2 * u - w2) / 3, (2 * w2 - u) / 3, -(u + w2) / 3, w])
    x = uvw / np.abs(uvw).max()
    ints = np.rint(12 * x).astype(int)
    for scale in range(1, 13):
        if np.allclose(x * scale, np.rint(x * scale), atol=1e-3 * scale):
            ints = np.rint(x * scale).astype(int)
            break
    g = int(np.gcd.reduce(np.abs(ints[ints != 0]))) if np.any(ints) else 1
    return "[" + "".join(str(i) for i in ints // max(g, 1)) + "]"


def mathtext_label(label: str) -> str:
    r"""Return a direction label with bars over negative indices, as mathtext (``$[2\bar{1}\bar{1}0]$``)."""
    return "$" + re.sub(r"-(\d)", r"\\bar{\1}", label) + "$"


@dataclass(frozen=True, eq=False)
class IPFSector:
    """The fundamental sector of a crystal's Laue group, and how its directions are coloured.

    Attributes
    ----------
    material
        Material name.
    kind
        ``"triangle"`` (corners red, green, blue) or ``"wedge"`` (hue by azimuth).
    corners
        ``(3, 3)`` unit directions in the crystal's Cartesian frame (``laue_live.geometry.reciprocal_basis``):
        the triangle's corners (red, green, blue); for a wedge, the main axis and the wedge's two edges.
    labels
        Direction indices of the corners (``[001]``; four-index on hexagonal axes).
    symmetry
        ``(2n, 3, 3)`` the Laue group: the pattern rotations and their negatives.
    """

    material: str
    kind: str
    corners: np.ndarray
    labels: tuple[str, str, str]
    symmetry: np.ndarray = field(repr=False)

    @property
    def normals(self) -> np.ndarray:
        """Inward normals of the triangle's edges opposite each corner, ``(3, 3)``."""
        c = self.corners
        n = np.stack([np.cross(c[1], c[2]), np.cross(c[2], c[0]), np.cross(c[0], c[1])])
        n = _unit(n)
        return n * np.sign(np.einsum("ij,ij->i", n, c))[:, None]

    def reduce(self, v: np.ndarray) -> np.ndarray:
        """Return the symmetry-equivalent in the sector of each unit direction ``v`` (``(n, 3)``, crystal)."""
        v = _unit(np.atleast_2d(v))
        cands = np.einsum("sij,nj->nsi", self.symmetry, v)  # (n, 2m, 3)
        if self.kind == "triangle":
            margin = np.einsum("nsi,ki->nsk", cands, self.normals).min(axis=2)  # >= 0 inside
            best = np.argmax(margin, axis=1)
        else:
            z, e0 = self.corners[0], self.corners[1]
            e1 = np.cross(z, e0)
            width = np.arctan2(self.corners[2] @ e1, self.corners[2] @ e0) % (2 * np.pi) or 2 * np.pi
            az = np.arctan2(cands @ e1, cands @ e0) % (2 * np.pi)
            ok = (cands @ z >= -_EPS) & (az <= width + 1e-9)
            best = np.argmax(ok * 4.0 + (cands @ z) - az * 1e-3, axis=1)
        return cands[np.arange(len(v)), best]

    def colors(self, v: np.ndarray) -> np.ndarray:
        """RGB in [0, 1], ``(n, 3)``, of unit directions ``v`` (crystal frame; reduced first)."""
        r = self.reduce(v)
        if self.kind == "triangle":
            n = self.normals
            d = np.arcsin(np.clip(r @ n.T, 0.0, 1.0))  # angle to each opposite edge
            dmax = np.arcsin(np.clip(np.einsum("ij,ij->i", self.corners, n), 0.0, 1.0))
            w = d / dmax
            return np.clip(w / np.maximum(w.max(axis=1, keepdims=True), _EPS), 0.0, 1.0)
        z, e0 = self.corners[0], self.corners[1]
        e1 = np.cross(z, e0)
        width = np.arctan2(self.corners[2] @ e1, self.corners[2] @ e0) % (2 * np.pi) or 2 * np.pi
        az = (np.arctan2(r @ e1, r @ e0) % (2 * np.pi)) / width
        polar = np.arccos(np.clip(r @ z, -1.0, 1.0)) / (np.pi / 2)
        return np.array([colorsys.hsv_to_rgb(h % 1.0, min(1.0, p), 1.0)
                         for h, p in zip(az, polar, strict=True)])

    def key_grid(self, n: int = 200) -> tuple[np.ndarray, tuple[float, float, float, float], np.ndarray]:
        """Return a raster of the sector in stereographic projection, for a colour key.

        Returns
        -------
        rgba, extent, corner_xy
            ``(n, n, 4)`` image (transparent outside the sector), its ``imshow`` extent
            ``(left, right, bottom, top)``, and the projected corners ``(3, 2)``. The projection's
            pole is the first corner, its x axis towards the second.
        """
        pole = self.corners[0]
        e0 = _unit(self.corners[1] - (self.corners[1] @ pole) * pole)
        e1 = np.cross(pole, e0)

        def project(v):
            v = np.atleast_2d(v)
            den = 1.0 + v @ pole
            return np.stack([(v @ e0) / den, (v @ e1) / den], axis=1)

        if self.kind == "triangle":
            edge = [np.cos(t) * self.corners[1] + np.sin(t) * _unit(
                self.corners[2] - (self.corners[2] @ self.corners[1]) * self.corners[1])
                for t in np.linspace(0, np.arccos(np.clip(self.corners[1] @ self.corners[2], -1, 1)), 50)]
            pts = project(np.vstack([self.corners, np.array(edge)]))
        else:
            pts = project(np.array([np.cos(t) * e0 + np.sin(t) * e1 for t in np.linspace(0, 2 * np.pi, 73)]))
            pts = np.vstack([pts, [[0.0, 0.0]]])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = 0.02 * (hi - lo).max()
        lo, hi = lo - pad, hi + pad
        xs, ys = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
        gx, gy = np.meshgrid(xs, ys)
        rho2 = gx ** 2 + gy ** 2
        # inverse stereographic projection (pole at +pole)
        zc = (1 - rho2) / (1 + rho2)
        v = ((2 * gx / (1 + rho2))[..., None] * e0 + (2 * gy / (1 + rho2))[..., None] * e1
             + zc[..., None] * pole)
        v = v.reshape(-1, 3)
        rgba = np.zeros((n * n, 4))
        if self.kind == "triangle":
            inside = (v @ self.normals.T >= -1e-9).all(axis=1)
        else:
            width = np.arctan2(self.corners[2] @ e1, self.corners[2] @ e0) % (2 * np.pi) or 2 * np.pi
            inside = (v @ pole >= 0) & ((np.arctan2(v @ e1, v @ e0) % (2 * np.pi)) <= width)
        if inside.any():
            rgba[inside, :3] = self.colors(v[inside])
            rgba[inside, 3] = 1.0
        return rgba.reshape(n, n, 4), (lo[0], hi[0], lo[1], hi[1]), project(self.corners)


def _laue_group(rotations: np.ndarray) -> np.ndarray:
    return np.concatenate([rotations, -rotations])


@lru_cache(maxsize=16)
def _sector_of(material: Material) -> IPFSector:
    _, rot = pattern_rotations(material)
    b = material.B
    sym = _laue_group(rot)
    axes = [_axis_and_order(r) for r in rot]
    name = material.name
    threes = [a for a, o in axes if o == 3]
    if len(rot) == 24 and len(threes) >= 8:  # cubic m-3m, conventional cell (cube axes = x, y, z)
        corners = _unit(np.array([[0, 0, 1], [1, 0, 1], [1, 1, 1]], dtype=float))
        labels = tuple(_direction_label(v, b, False) for v in corners)
        return IPFSector(name, "triangle", corners, labels, sym)
    order = max((o for _, o in axes), default=1)
    mains = [a for a, o in axes if o == order] if order > 1 else [np.array([0.0, 0.0, 1.0])]
    main = max(mains, key=lambda a: abs(a[2]))
    main = main if main[2] >= 0 else -main
    across = [a for a, o in axes if o == 2 and abs(a @ main) < 1e-6]
    a, b_len, gamma = material.lattice[0], material.lattice[1], material.lattice[5]
    hexagonal = abs(gamma - 120.0) < 1e-3 and abs(a - b_len) < 1e-6
    if across:  # dihedral: the sector is bounded by mirrors containing the main axis (normals: 2-fold axes)
        width = np.pi / order
        # the mirror directions (main x 2-fold axis, both signs); start from the one nearest +x
        edges = [_unit(s * np.cross(main, ax)) for ax in across for s in (1, -1)]
        e0 = max(edges, key=lambda e: (round(e[0], 6), round(e[1], 6)))
        e1 = np.cross(main, e0)
        third = np.cos(width) * e0 + np.sin(width) * e1
        if third[1] < -1e-9:  # turn the other way: the same sector up to symmetry, nicer labels
            third = np.cos(width) * e0 - np.sin(width) * e1
        corners = np.array([main, e0, third])
        kind = "triangle"
    else:  # a wedge of 360/N degrees of the upper hemisphere
        width = 2 * np.pi / order
        ref = np.array([1.0, 0.0, 0.0]) if abs(main[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        e0 = _unit(ref - (ref @ main) * main)
        e1 = np.cross(main, e0)
        corners = np.array([main, e0, np.cos(width) * e0 + np.sin(width) * e1])
        kind = "wedge"
    corners = _unit(corners)
    return IPFSector(name, kind, corners, tuple(_direction_label(v, b, hexagonal) for v in corners), sym)


def ipf_sector(material: str | Material) -> IPFSector:
    """Return the fundamental sector of ``material``'s Laue group (cached per material)."""
    return _sector_of(get_material(material))


def ipf_colors(u, sector: IPFSector, direction="z") -> np.ndarray:
    """IPF colours of orientations: the colour of the crystal direction along a sample direction.

    Parameters
    ----------
    u
        ``(3, 3)`` or ``(n, 3, 3)`` orientation matrices (``q = U B hkl``, LaueTools frame); rows of
        NaN give NaN colours.
    sector
        The crystal's sector (:func:`ipf_sector`).
    direction
        The sample direction: ``"x"`` (along the beam), ``"y"``, ``"z"`` (up), in LaueTools' lab frame,
        or a 3-vector.

    Returns
    -------
    numpy.ndarray
        ``(n, 3)`` RGB in [0, 1] (``(3,)`` for one matrix).
    """
    single = np.ndim(u) == 2
    u = np.asarray(u, dtype=float).reshape(-1, 3, 3)
    d = _unit(SAMPLE_DIRECTIONS[direction] if isinstance(direction, str) else direction)
    out = np.full((len(u), 3), np.nan)
    ok = np.isfinite(u).all(axis=(1, 2))
    if ok.any():
        crystal = np.einsum("nji,j->ni", u[ok], d)  # U^T d: the lab direction in the crystal frame
        out[ok] = sector.colors(crystal)
    return out[0] if single else out


def draw_ipf_key(ax, sector: IPFSector, direction="z", *, fontsize: float = 8.0) -> None:
    """Draw the colour key of an orientation map in ``ax``: the coloured sector, its corners labelled.

    Parameters
    ----------
    ax
        matplotlib Axes (e.g. an inset beside the map); its frame and ticks are removed.
    sector
        The fundamental sector of the material shown (:func:`ipf_sector`).
    direction
        The sample direction the map colours, for the title (``"x"``, ``"y"``, ``"z"`` or a vector).
    fontsize
        Font size of the labels and the title, in points.
    """
    rgba, extent, corners = sector.key_grid(160)
    ax.imshow(rgba, extent=extent, origin="lower", interpolation="bilinear")
    names = {"x": "x (beam)", "y": "y", "z": "z (up)"}
    places = (("right", "top"), ("left", "top"), ("left", "bottom"))
    for (x, y), label, (ha, va) in zip(corners, sector.labels, places, strict=True):
        ax.annotate(mathtext_label(label), (x, y), fontsize=fontsize, ha=ha, va=va,
                    xytext=(-2 if ha == "right" else 2, -2 if va == "top" else 2), textcoords="offset points")
    title = names.get(direction, str(direction)) if isinstance(direction, str) else str(list(direction))
    ax.set_title(f"{sector.material}: IPF-{title}", fontsize=fontsize)
    pad = 0.25 * (extent[1] - extent[0])
    ax.set_xlim(extent[0] - pad, extent[1] + pad)
    ax.set_ylim(extent[2] - pad, extent[3] + pad)
    ax.set_aspect("equal")
    ax.axis("off")
