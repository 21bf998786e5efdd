"""PLY loader: ASCII and binary (either byte order), faces of any size or triangle strips, colours.

Elements are read in header order whatever they are (``face`` before ``vertex``, ``edge``,
``material``, anything unknown is read past), see :mod:`sidecar_thumbs.mesh.plydata`. Faces are
split into triangles by :mod:`sidecar_thumbs.mesh.polygons`; a ``tristrips`` element (``-1``
restarts a strip) gives a triangle per strip step, alternating winding.
PLY has no unit: coordinates are millimetres, Z up, as slicers import them.

Colours: a face's own ``red green blue``, else the mean of its corners' vertex colours (integer
types are 0..255, float types 0..1).
"""

from __future__ import annotations

import numpy as np

from sidecar_thumbs.errors import BadModelError, LimitExceededError, NoGeometryError
from sidecar_thumbs.mesh import DEFAULT_LIMITS, LoadLimits
from sidecar_thumbs.mesh.plydata import Column, read_elements
from sidecar_thumbs.mesh.plyheader import PlyElement, PlyHeader, parse_ply_header
from sidecar_thumbs.mesh.polygons import polygon_triangle_count, triangulate
from sidecar_thumbs.mesh.soup import finish_coloured, rgba_from_unit
from sidecar_thumbs.mesh.vertexcolors import mean_vertex_rgba

__all__ = ["load_ply_bytes"]

_COLOUR_NAMES = (("red", "r", "diffuse_red"), ("green", "g", "diffuse_green"), ("blue", "b", "diffuse_blue"))
_INDEX_NAMES = ("vertex_indices", "vertex_index", "vertex_indexes")


def load_ply_bytes(data: bytes, limits: LoadLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Parse a PLY file's bytes.

    Returns:
        ``(triangles, "ply-ascii" | "ply-binary", face_colors)``: float32 ``(N, 3, 3)``; uint8
        ``(N, 4)`` RGBA or None.

    Raises:
        BadModelError: a bad header, truncated or malformed data, an index out of range.
        NoGeometryError: no faces or strips (a point cloud), or none with 3 corners.
        LimitExceededError: more than ``limits.max_triangles`` triangles.
    """
    header = parse_ply_header(data)
    columns = read_elements(data, header)
    vertex = _element(header, "vertex")
    if vertex is None or vertex.count == 0:
        raise NoGeometryError("no geometry: the PLY has no vertices")
    verts, vcolors = _vertices(vertex, columns["vertex"])
    faces = _element(header, "face")
    strips = _element(header, "tristrips")
    if (faces is None or faces.count == 0) and (strips is None or strips.count == 0):
        raise NoGeometryError(f"no geometry: a point cloud ({vertex.count} vertices, no faces)")
    tris_parts: list[np.ndarray] = []
    colour_parts: list[np.ndarray | None] = []  # None: the faces have no colour of their own
    if faces is not None and faces.count:
        corners, starts = _index_list(faces, columns["face"])
        _check_indices(corners, len(verts))
        if polygon_triangle_count(starts) > limits.max_triangles:
            raise LimitExceededError(f"PLY faces make more than the limit of {limits.max_triangles} triangles")
        tris, owner = triangulate(verts, corners.astype(np.int32), starts)
        tris_parts.append(tris)
        fcolors = _colours(faces, columns["face"])
        colour_parts.append(fcolors[owner] if fcolors is not None else None)
    if strips is not None and strips.count:
        flat, _ = _index_list(strips, columns["tristrips"])
        tris = _strip_triangles(flat, limits.max_triangles)
        _check_indices(tris.reshape(-1), len(verts))
        tris_parts.append(tris)
        colour_parts.append(None)
    tris = np.concatenate(tris_parts)
    if len(tris) > limits.max_triangles:
        raise LimitExceededError(f"PLY has more than the limit of {limits.max_triangles} triangles")
    if len(tris) == 0:
        raise NoGeometryError("no geometry: no PLY face has 3 or more corners")
    # The faces' own colours (NaN where a face has none), or None when no face has any.
    rgb = None
    if any(part is not None for part in colour_parts):
        rgb = np.concatenate(
            [np.full((len(t), 3), np.nan) if c is None else c for t, c in zip(tris_parts, colour_parts, strict=True)]
        )
    if vcolors is not None:  # the mean of the corners' colours where a face has none
        colors: np.ndarray | None = mean_vertex_rgba(vcolors, tris, rgb, vertex_first=False)
    else:
        colors = rgba_from_unit(rgb) if rgb is not None else None
    triangles, colors = finish_coloured(np.take(verts, tris, axis=0), colors, "no geometry")
    return triangles, ("ply-ascii" if header.format == "ascii" else "ply-binary"), colors


def _element(header: PlyHeader, name: str) -> PlyElement | None:
    return next((el for el in header.elements if el.name == name), None)


def _vertices(el: PlyElement, cols: list[Column]) -> tuple[np.ndarray, np.ndarray | None]:
    xyz = []
    for axis in ("x", "y", "z"):
        i = el.index(axis)
        if i is None or el.properties[i].is_list:
            raise BadModelError(f"PLY vertex element has no {axis} property")
        xyz.append(cols[i])
    with np.errstate(over="ignore", invalid="ignore"):
        verts = np.stack(xyz, axis=1).astype(np.float32)
    return verts, _colours(el, cols)


def _colours(el: PlyElement, cols: list[Column]) -> np.ndarray | None:
    """``(count, 3)`` float colours in 0..1 of an element's red/green/blue properties, or None."""
    found = [el.index(*names) for names in _COLOUR_NAMES]
    if any(i is None or el.properties[i].is_list for i in found):
        return None
    channels = []
    for i in found:
        assert i is not None
        values = np.asarray(cols[i], np.float64)
        kind = el.properties[i].type
        # Floats are 0..1; 16-bit integers 0..65535 (some scanners); other integers 0..255.
        channels.append(values if kind[0] == "f" else values / (65535.0 if kind[1] == "2" else 255.0))
    return np.stack(channels, axis=1)


def _index_list(el: PlyElement, cols: list[Column]) -> tuple[np.ndarray, np.ndarray]:
    i = el.index(*_INDEX_NAMES)
    if i is None:  # some writers name it otherwise; the element's only integer list is it
        lists = [k for k, p in enumerate(el.properties) if p.is_list and p.type[0] in "iu"]
        i = lists[0] if len(lists) == 1 else None
    if i is None or not el.properties[i].is_list or el.properties[i].type[0] == "f":
        raise BadModelError(f"PLY {el.name} element has no vertex_indices list")
    flat, starts = cols[i]
    return np.asarray(flat, np.int64), starts


def _check_indices(corners: np.ndarray, count: int) -> None:
    if len(corners) and (corners.min() < 0 or corners.max() >= count):
        bad = int(corners.max()) if corners.max() >= count else int(corners.min())
        raise BadModelError(f"PLY face refers to vertex {bad}, but the file has {count} vertices (0-based)")


def _strip_triangles(flat: np.ndarray, max_triangles: int) -> np.ndarray:
    """Triangles of strips separated by -1: each step makes one, every other one flipped so all
    keep the strip's winding; steps repeating a vertex (used to join strips) make none."""
    if len(flat) > 4 * max_triangles:  # a step makes at most one triangle; joins repeat a few vertices
        raise LimitExceededError(f"PLY strips make more than the limit of {max_triangles} triangles")
    breaks = np.flatnonzero(flat < 0)
    edges = np.concatenate([[-1], breaks, [len(flat)]])
    parts = []
    for s, e in zip(edges[:-1] + 1, edges[1:], strict=True):
        strip = flat[s:e]
        if len(strip) < 3:
            continue
        t = np.stack([strip[:-2], strip[1:-1], strip[2:]], axis=1)
        t[1::2, [0, 1]] = t[1::2, [1, 0]]
        parts.append(t)
    if not parts:
        return np.empty((0, 3), np.int32)
    tris = np.concatenate(parts)
    keep = (tris[:, 0] != tris[:, 1]) & (tris[:, 1] != tris[:, 2]) & (tris[:, 0] != tris[:, 2])
    return tris[keep].astype(np.int32)
