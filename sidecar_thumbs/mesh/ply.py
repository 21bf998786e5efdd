"""PLY loader: ASCII and binary (either byte order), faces of any size or triangle strips, colours.

Elements are read in header order whatever they are (``face`` before ``vertex``, ``edge``,
``material``, anything unknown is read past). Properties come in any order and any type; a list
has any integer count type and any item type. Records of fixed size, and lists whose length is the
same in every record (all triangles: nearly every file), are read as one NumPy view; other lists
record by record. Faces are split into triangles by :mod:`sidecar_thumbs.mesh.polygons`; a
``tristrips`` element (``-1`` restarts a strip) gives a triangle per strip step, alternating winding.
PLY has no unit: coordinates are millimetres, Z up, as slicers import them.

Colours: a face's own ``red green blue``, else the mean of its corners' vertex colours (integer
types are 0..255, float types 0..1).
"""

from __future__ import annotations

import math
import struct
import warnings

import numpy as np

from sidecar_thumbs.errors import BadModelError, LimitExceededError, NoGeometryError
from sidecar_thumbs.mesh import DEFAULT_LIMITS, LoadLimits
from sidecar_thumbs.mesh.plyheader import PlyElement, PlyHeader, parse_ply_header
from sidecar_thumbs.mesh.polygons import polygon_triangle_count, triangulate
from sidecar_thumbs.mesh.soup import finish_coloured, rgba_from_unit

__all__ = ["load_ply_bytes"]

# A column: a scalar property's values (count,), or a list property's (flat values, starts).
_Column = np.ndarray | tuple[np.ndarray, np.ndarray]
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
    columns = _read_elements(data, header)
    vertex = _element(header, "vertex")
    if vertex is None or vertex.count == 0:
        raise NoGeometryError("no geometry: the PLY has no vertices")
    verts, vcolors = _vertices(vertex, columns["vertex"])
    faces = _element(header, "face")
    strips = _element(header, "tristrips")
    if (faces is None or faces.count == 0) and (strips is None or strips.count == 0):
        raise NoGeometryError(f"no geometry: a point cloud ({vertex.count} vertices, no faces)")
    tris_parts: list[np.ndarray] = []
    colour_parts: list[np.ndarray] = []
    if faces is not None and faces.count:
        corners, starts = _index_list(faces, columns["face"])
        _check_indices(corners, len(verts))
        if polygon_triangle_count(starts) > limits.max_triangles:
            raise LimitExceededError(f"PLY faces make more than the limit of {limits.max_triangles} triangles")
        tris, owner = triangulate(verts, corners.astype(np.int32), starts)
        tris_parts.append(tris)
        fcolors = _colours(faces, columns["face"])
        colour_parts.append(fcolors[owner] if fcolors is not None else np.full((len(tris), 3), np.nan))
    if strips is not None and strips.count:
        flat, _ = _index_list(strips, columns["tristrips"])
        tris = _strip_triangles(flat, limits.max_triangles)
        _check_indices(tris.reshape(-1), len(verts))
        tris_parts.append(tris)
        colour_parts.append(np.full((len(tris), 3), np.nan))
    tris = np.concatenate(tris_parts)
    if len(tris) > limits.max_triangles:
        raise LimitExceededError(f"PLY has more than the limit of {limits.max_triangles} triangles")
    if len(tris) == 0:
        raise NoGeometryError("no geometry: no PLY face has 3 or more corners")
    rgb = np.concatenate(colour_parts)
    if vcolors is not None:
        per_tri = vcolors[tris].mean(axis=1)
        use = np.isnan(rgb).any(axis=1)
        rgb[use] = per_tri[use]
    colors = rgba_from_unit(rgb) if not np.isnan(rgb).all() else None
    triangles, colors = finish_coloured(np.take(verts, tris, axis=0), colors, "no geometry")
    return triangles, ("ply-ascii" if header.format == "ascii" else "ply-binary"), colors


def _element(header: PlyHeader, name: str) -> PlyElement | None:
    return next((el for el in header.elements if el.name == name), None)


def _vertices(el: PlyElement, cols: list[_Column]) -> tuple[np.ndarray, np.ndarray | None]:
    xyz = []
    for axis in ("x", "y", "z"):
        i = el.index(axis)
        if i is None or el.properties[i].is_list:
            raise BadModelError(f"PLY vertex element has no {axis} property")
        xyz.append(cols[i])
    with np.errstate(over="ignore", invalid="ignore"):
        verts = np.stack(xyz, axis=1).astype(np.float32)
    return verts, _colours(el, cols)


def _colours(el: PlyElement, cols: list[_Column]) -> np.ndarray | None:
    """``(count, 3)`` float colours in 0..1 of an element's red/green/blue properties, or None."""
    found = [el.index(*names) for names in _COLOUR_NAMES]
    if any(i is None or el.properties[i].is_list for i in found):
        return None
    channels = []
    for i in found:
        assert i is not None
        values = np.asarray(cols[i], np.float64)
        channels.append(values if el.properties[i].type[0] == "f" else values / 255.0)
    return np.stack(channels, axis=1)


def _index_list(el: PlyElement, cols: list[_Column]) -> tuple[np.ndarray, np.ndarray]:
    i = el.index(*_INDEX_NAMES)
    if i is None:  # some writers name it otherwise; the element's only integer list is it
        lists = [k for k, p in enumerate(el.properties) if p.is_list and p.type[0] in "iu"]
        i = lists[0] if len(lists) == 1 else None
    if i is None or not el.properties[i].is_list or el.properties[i].type[0] == "f":
        raise BadModelError(f"PLY {el.name} element has no vertex_indices list")
    flat, starts = cols[i]  # type: ignore[misc]
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


# ---- element data ----


def _read_elements(data: bytes, header: PlyHeader) -> dict[str, list[_Column]]:
    """Columns of every element (by name; the first of a repeated name wins)."""
    out: dict[str, list[_Column]] = {}
    if header.format == "ascii":
        # One record a line, as every writer does it: a line may carry more numbers than the header
        # says (VCGLIB's texture numbers in trimesh's fuze.ply), which are ignored, as trimesh does.
        lines = [line for line in data[header.body_offset :].splitlines() if line.strip()]
        at = 0
        for el in header.elements:
            if at + el.count > len(lines):
                raise BadModelError(f"PLY data ends inside the {el.name} element ({el.count} records declared)")
            out.setdefault(el.name, _read_ascii(lines[at : at + el.count], el))
            at += el.count
    else:
        off = header.body_offset
        for el in header.elements:
            cols, off = _read_binary(data, off, el, header.byte_order)
            out.setdefault(el.name, cols)
    return out


def _ascii_numbers(text: bytes) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # NumPy < 2.3 only warns on junk
        try:
            return np.fromstring(text, dtype=np.float64, sep=" ")  # type: ignore[call-overload]
        except (ValueError, DeprecationWarning):
            raise BadModelError("PLY ASCII data holds something that is not a number") from None


def _read_ascii(lines: list[bytes], el: PlyElement) -> list[_Column]:
    n = el.count
    if n == 0:
        return [np.empty(0) if not p.is_list else (np.empty(0), np.zeros(1, np.int64)) for p in el.properties]
    # Guess the record layout from the first record; if every line has it, one reshape reads all.
    first = _ascii_numbers(lines[0])
    widths = []
    at = 0
    for p in el.properties:
        if at >= len(first):
            raise BadModelError(f"PLY {el.name} record is shorter than its properties")
        k = _list_length(first[at], el) if p.is_list else 0
        widths.append(k)
        at += 1 + k if p.is_list else 1
    stride = at
    tokens = _ascii_numbers(b"\n".join(lines))
    if len(tokens) == n * stride:
        rows = tokens.reshape(n, stride)
        if _uniform(rows, el, widths):
            return _split_rows(rows, el, widths)
    return _read_ascii_records(lines, el)


def _list_length(value: float, el: PlyElement) -> int:
    if not (math.isfinite(value) and value >= 0 and value == int(value)):
        raise BadModelError(f"PLY {el.name} list has a bad length {value!r}")
    return int(value)


def _uniform(rows: np.ndarray, el: PlyElement, widths: list[int]) -> bool:
    col = 0
    for p, k in zip(el.properties, widths, strict=True):
        if p.is_list:
            if not (rows[:, col] == k).all():
                return False
            col += 1 + k
        else:
            col += 1
    return True


def _split_rows(rows: np.ndarray, el: PlyElement, widths: list[int]) -> list[_Column]:
    n = rows.shape[0]
    cols: list[_Column] = []
    col = 0
    for p, k in zip(el.properties, widths, strict=True):
        if p.is_list:
            cols.append((rows[:, col + 1 : col + 1 + k].reshape(-1), np.arange(n + 1, dtype=np.int64) * k))
            col += 1 + k
        else:
            cols.append(rows[:, col])
            col += 1
    return cols


def _read_ascii_records(lines: list[bytes], el: PlyElement) -> list[_Column]:
    """Line by line, for lists whose length varies or lines with extra numbers."""
    scalars: list[list[float]] = [[] for _ in el.properties]
    lists: list[tuple[list[np.ndarray], list[int]]] = [([], [0]) for _ in el.properties]
    for line in lines:
        values = _ascii_numbers(line)
        pos = 0
        for i, p in enumerate(el.properties):
            if pos >= len(values):
                raise BadModelError(f"PLY {el.name} record is shorter than its properties")
            if p.is_list:
                k = _list_length(values[pos], el)
                if pos + 1 + k > len(values):
                    raise BadModelError(f"PLY {el.name} record is shorter than its list")
                items, starts = lists[i]
                items.append(values[pos + 1 : pos + 1 + k])
                starts.append(starts[-1] + k)
                pos += 1 + k
            else:
                scalars[i].append(float(values[pos]))
                pos += 1
    cols: list[_Column] = []
    for i, p in enumerate(el.properties):
        if p.is_list:
            items, starts = lists[i]
            cols.append((np.concatenate(items) if items else np.empty(0), np.array(starts, np.int64)))
        else:
            cols.append(np.array(scalars[i], np.float64))
    return cols


def _read_binary(data: bytes, off: int, el: PlyElement, order: str) -> tuple[list[_Column], int]:
    n = el.count
    counts = []
    at = off
    for p in el.properties:  # the first record gives the guessed layout
        if not p.is_list:
            at += np.dtype(p.type).itemsize
            continue
        assert p.count_type is not None
        csize = np.dtype(p.count_type).itemsize
        if n == 0:
            counts.append(0)
            continue
        if at + csize > len(data):
            raise BadModelError(f"PLY data ends inside the {el.name} element")
        k = int(np.frombuffer(data, order + p.count_type, 1, at)[0])
        if k < 0:
            raise BadModelError(f"PLY {el.name} list has a negative length {k}")
        counts.append(k)
        at += csize + k * np.dtype(p.type).itemsize
        if at > len(data):
            raise BadModelError(f"PLY data ends inside the {el.name} element")
    fields = []
    li = 0
    for i, p in enumerate(el.properties):
        if p.is_list:
            fields.append((f"n{i}", order + str(p.count_type)))
            fields.append((f"p{i}", order + p.type, (counts[li],)))
            li += 1
        else:
            fields.append((f"p{i}", order + p.type))
    dtype = np.dtype(fields)
    if off + n * dtype.itemsize <= len(data):
        rec = np.frombuffer(data, dtype, n, off)
        lists = [i for i, p in enumerate(el.properties) if p.is_list]
        if all((rec[f"n{i}"] == k).all() for i, k in zip(lists, counts, strict=True)):
            cols: list[_Column] = []
            for i, p in enumerate(el.properties):
                values = rec[f"p{i}"]
                if p.is_list:
                    k = values.shape[1] if values.ndim == 2 else 0
                    cols.append((values.reshape(-1), np.arange(n + 1, dtype=np.int64) * k))
                else:
                    cols.append(values)
            return cols, off + n * dtype.itemsize
    elif not any(p.is_list for p in el.properties):
        raise BadModelError(f"PLY data ends inside the {el.name} element ({n} records declared)")
    return _read_binary_records(data, off, el, order)


def _read_binary_records(data: bytes, off: int, el: PlyElement, order: str) -> tuple[list[_Column], int]:
    """Record by record, for lists whose length varies (polygons of mixed sizes)."""
    steps = []
    for p in el.properties:
        if p.is_list:
            assert p.count_type is not None
            steps.append((struct.Struct(order + _struct_code(p.count_type)), np.dtype(order + p.type)))
        else:
            steps.append((struct.Struct(order + _struct_code(p.type)), None))
    scalars: list[list[float]] = [[] for _ in el.properties]
    lists: list[tuple[list[tuple[int, int]], list[int]]] = [([], [0]) for _ in el.properties]
    end = len(data)
    try:
        for _ in range(el.count):
            for i, (st, item) in enumerate(steps):
                (value,) = st.unpack_from(data, off)
                off += st.size
                if item is None:
                    scalars[i].append(value)
                    continue
                size = value * item.itemsize
                if value < 0 or off + size > end:
                    raise BadModelError(f"PLY {el.name} list has a bad length {value}")
                spans, starts = lists[i]
                spans.append((off, value))
                starts.append(starts[-1] + value)
                off += size
    except struct.error:
        raise BadModelError(f"PLY data ends inside the {el.name} element") from None
    cols: list[_Column] = []
    for i, (_, item) in enumerate(steps):
        if item is None:
            cols.append(np.array(scalars[i], np.float64))
            continue
        spans, starts = lists[i]
        flat = np.empty(starts[-1], item)
        for (at, k), s in zip(spans, starts, strict=False):
            flat[s : s + k] = np.frombuffer(data, item, k, at)
        cols.append((flat, np.array(starts, np.int64)))
    return cols, off


def _struct_code(numpy_type: str) -> str:
    return {"i1": "b", "u1": "B", "i2": "h", "u2": "H", "i4": "i", "u4": "I", "f4": "f", "f8": "d"}[numpy_type]
