"""AMF loader: plain XML or zip-compressed, objects placed by constellations, in millimetres.

What is drawn: with constellations, every instance of the constellations that no other
constellation uses (nested ones expanded, each placed by ``deltax/y/z``, ``rx/ry/rz`` in degrees
applied x then y then z, and PrusaSlicer's ``scale``/``scalex..z``), plus any object no
constellation places, where it stands (as PrusaSlicer does); without constellations, every object
where it stands. A zip-compressed AMF (Slic3r writes them) may hold several ``.amf`` entries: all
are drawn, each a document of its own (ids and unit), their inflated bytes capped together.

Colours, most specific first: the triangle's ``<color>``, the mean of its vertices' colours, its
volume's colour, its volume's material colour, its object's colour.
"""

from __future__ import annotations

import math

import numpy as np

from sidecar_thumbs.errors import BadModelError, LimitExceededError, NoGeometryError
from sidecar_thumbs.mesh import DEFAULT_LIMITS, LoadLimits
from sidecar_thumbs.mesh.amfxml import AmfDocument, AmfInstance, AmfObject, parse_amf_xml
from sidecar_thumbs.mesh.soup import finish_coloured, rgba_from_unit

__all__ = ["UNITS", "load_amf_bytes"]

UNITS = {
    "millimeter": 1.0,
    "millimetre": 1.0,
    "mm": 1.0,
    "micron": 0.001,
    "micrometer": 0.001,
    "centimeter": 10.0,
    "inch": 25.4,
    "feet": 304.8,
    "foot": 304.8,
    "meter": 1000.0,
    "metre": 1000.0,
}
MAX_DEPTH = 16  # constellations inside constellations; real files use one level
_ZIP_MAGIC = b"PK\x03\x04"

# (object, 4x4 transform in mm, column vectors)
_Placement = tuple[AmfObject, np.ndarray]


def load_amf_bytes(data: bytes, limits: LoadLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Parse an AMF file's bytes.

    Returns:
        ``(triangles, "amf" | "amf-zip", face_colors)``: float32 ``(N, 3, 3)`` in millimetres;
        uint8 ``(N, 4)`` RGBA or None.

    Raises:
        BadModelError: bad XML or ZIP, DTD/entities, an unknown unit, bad numbers or indices, a
            constellation naming a missing id or itself.
        NoGeometryError: nothing with triangles is placed.
        LimitExceededError: inflated bytes or (instanced) triangles above the caps.
    """
    if data.startswith(_ZIP_MAGIC):
        docs, kind = _read_zip(data, limits), "amf-zip"
    else:
        docs, kind = [parse_amf_xml(data, "file", limits.max_triangles)], "amf"
    budget = [limits.max_triangles]
    placements = []
    for doc in docs:
        scale = UNITS.get(doc.unit)
        if scale is None:
            raise BadModelError(f"AMF has an unknown unit {doc.unit[:40]!r}")
        placements += [(doc, obj, m) for obj, m in _placements(doc, scale, budget)]
    total = sum(len(obj.triangles) // 3 for _, obj, _ in placements)
    if total == 0:
        raise NoGeometryError("no geometry: the AMF places no triangles")
    tri_parts = []
    colour_parts = []
    for doc, obj, m in placements:
        verts = np.frombuffer(obj.vertices, np.float64).reshape(-1, 3)
        tris = np.frombuffer(obj.triangles, np.int64).reshape(-1, 3)
        if len(tris) == 0:
            continue
        if tris.max() >= len(verts):  # the reader checks each mesh; this guards the indexing below
            raise BadModelError(f"AMF object {obj.id[:40]!r}: triangle vertex index out of range")
        # Beyond float32 becomes inf (dropped by finish_coloured), not a warning.
        with np.errstate(over="ignore", invalid="ignore"):
            world = verts @ m[:3, :3].T + m[:3, 3]
            tri_parts.append(world[tris].astype(np.float32))
        colour_parts.append(_colours(obj, doc, tris))
    rgb = np.concatenate(colour_parts)
    colors = None if np.isnan(rgb).all() else rgba_from_unit(rgb)
    triangles, colors = finish_coloured(np.concatenate(tri_parts), colors, "no geometry")
    return triangles, kind, colors


def _read_zip(data: bytes, limits: LoadLimits) -> list[AmfDocument]:
    from sidecar_thumbs.mesh.opc import Package

    package = Package(data, limits.max_decompressed_bytes, label="AMF")
    members = [m for m in package.members() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    entries = [m for m in members if m.filename.lower().endswith(".amf")] or members
    if not entries:
        raise BadModelError("AMF zip holds no entry")
    docs = []
    budget = limits.max_decompressed_bytes  # shared by all entries: several small ones are one bomb too
    for info in entries:
        if budget <= 0:
            raise LimitExceededError(f"AMF entries inflate to more than the limit of {limits.max_decompressed_bytes}")
        xml = package.read_member(info, cap=budget)
        budget -= len(xml)
        docs.append(parse_amf_xml(xml, info.filename, limits.max_triangles))
    return docs


def _placements(doc: AmfDocument, scale: float, budget: list[int]) -> list[_Placement]:
    unit = np.diag([scale, scale, scale, 1.0])
    out: list[_Placement] = []
    used = {inst.objectid for insts in doc.constellations.values() for inst in insts}
    for cid in doc.constellations:
        if cid not in used:
            _expand(doc, cid, unit, 0, out, budget, set())
    for oid, obj in doc.objects.items():
        if oid not in used:
            _place(obj, unit, out, budget)
    return out


def _spend(budget: list[int], amount: int) -> None:
    # Every placement costs at least 1, so instancing empty objects or constellations cannot run away.
    budget[0] -= max(1, amount)
    if budget[0] < 0:
        raise LimitExceededError("AMF instances place more triangles than the limit")


def _place(obj: AmfObject, m: np.ndarray, out: list[_Placement], budget: list[int]) -> None:
    _spend(budget, len(obj.triangles) // 3)
    out.append((obj, m))


def _expand(
    doc: AmfDocument, cid: str, m: np.ndarray, depth: int, out: list[_Placement], budget: list[int], seen: set[str]
) -> None:
    if depth > MAX_DEPTH:
        raise BadModelError(f"AMF constellations nested deeper than {MAX_DEPTH} levels")
    if cid in seen:
        raise BadModelError(f"AMF constellation {cid[:40]!r} contains itself")
    seen = seen | {cid}
    for inst in doc.constellations[cid]:
        _spend(budget, 1)
        placed = m @ _instance_matrix(inst)
        if inst.objectid in doc.constellations:
            _expand(doc, inst.objectid, placed, depth + 1, out, budget, seen)
        elif inst.objectid in doc.objects:
            _place(doc.objects[inst.objectid], placed, out, budget)
        else:
            raise BadModelError(f"AMF constellation instance refers to a missing id {inst.objectid[:40]!r}")


def _instance_matrix(inst: AmfInstance) -> np.ndarray:
    """The instance's placement in file units (the caller's matrix carries the unit scale)."""
    v = inst.values
    rx, ry, rz = (math.radians(v.get(k, 0.0)) for k in ("rx", "ry", "rz"))
    cx, sx, cy, sy, cz, sz = math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    uniform = v.get("scale", 1.0)
    scale = np.diag([v.get("scalex", uniform), v.get("scaley", uniform), v.get("scalez", uniform)])
    m = np.eye(4)
    m[:3, :3] = rot_z @ rot_y @ rot_x @ scale
    m[:3, 3] = (v.get("deltax", 0.0), v.get("deltay", 0.0), v.get("deltaz", 0.0))
    return m


def _colours(obj: AmfObject, doc: AmfDocument, tris: np.ndarray) -> np.ndarray:
    rgb = np.frombuffer(obj.triangle_colors, np.float64).reshape(-1, 3).copy()
    missing = np.isnan(rgb).any(axis=1)
    if missing.any() and len(obj.vertex_colors):
        vcol = np.frombuffer(obj.vertex_colors, np.float64).reshape(-1, 3)
        per_tri = vcol[tris].mean(axis=1)
        rgb[missing] = per_tri[missing]
        missing = np.isnan(rgb).any(axis=1)
    if missing.any():
        fallback = []
        for colour, material in obj.volumes:
            if math.isnan(sum(colour)) and material is not None:
                colour = doc.materials.get(material.strip(), colour)
            if math.isnan(sum(colour)):
                colour = obj.color
            fallback.append(colour)
        if fallback:
            per_volume = np.array(fallback, np.float64).reshape(-1, 3)
            volume = np.frombuffer(obj.triangle_volume, np.int64)
            rgb[missing] = per_volume[volume[missing]]
    return rgb
