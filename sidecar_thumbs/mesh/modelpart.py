"""One 3MF model part (an XML ``.model`` file): its unit, objects and build items.

Meshes are read by the fast scanner (:mod:`sidecar_thumbs.mesh.xmlscan`); the rest of the part is
parsed by ElementTree from a *skeleton*: the part with every mesh's content cut out, so a 24 MB
part becomes a few kilobytes. The i-th element named ``mesh`` in the skeleton (document order) is
the scanner's i-th mesh, which is how objects find their geometry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain

import numpy as np

from sidecar_thumbs.errors import BadModelError
from sidecar_thumbs.mesh.colors3mf import PartColors, read_part_colors
from sidecar_thumbs.mesh.opc import parse_xml
from sidecar_thumbs.mesh.triprops import TriangleProps
from sidecar_thumbs.mesh.xmlscan import MeshScan, numba_available, scan_meshes

__all__ = [
    "CORE_NAMESPACES",
    "UNITS",
    "Component",
    "ModelPart",
    "ObjectDef",
    "parse_model_part",
    "parse_model_part_stream",
]

# The 2015/02 core namespace, and the one of 3MF 0.93 files that lib3mf still reads.
CORE_NAMESPACES = (
    "http://schemas.microsoft.com/3dmanufacturing/core/2015/02",
    "http://schemas.microsoft.com/3dmanufacturing/2013/01",
)
PRODUCTION_NS = "http://schemas.microsoft.com/3dmanufacturing/production/2015/06"
UNITS = {
    "micron": 0.001,
    "millimeter": 1.0,
    "centimeter": 10.0,
    "inch": 25.4,
    "foot": 304.8,
    "meter": 1000.0,
}
OBJECT_TYPES = ("model", "solidsupport", "support", "surface", "other")
_P_PATH = "{" + PRODUCTION_NS + "}path"
_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']""")


@dataclass(frozen=True)
class Component:
    """A reference from an object (or build item) to an object, placed by a transform.

    ``transform`` is a 4x4 float64 matrix in the row-vector convention of the spec
    (``p' = p @ M``), with its translation already converted to millimetres.
    """

    object_id: int
    path: str | None  # production extension: the model part that holds the object
    transform: np.ndarray


@dataclass(frozen=True)
class ObjectDef:
    """An ``<object>``: a mesh (index into the part's scan) or components."""

    id: int
    type: str
    mesh: int | None
    components: tuple[Component, ...]
    pid: int | None = None  # materials extension: the object's default property group and index
    pindex: int | None = None


@dataclass(frozen=True, eq=False)
class ModelPart:
    """A parsed model part: ``scale`` converts its coordinates to millimetres."""

    name: str
    scale: float
    objects: dict[int, ObjectDef]
    build: tuple[Component, ...] | None  # None when the part has no <build> element
    meshes: MeshScan
    # Read only when colours are wanted and the part carries any (see mesh.colors3mf).
    colors: PartColors | None = None
    props: TriangleProps | None = None


def parse_model_part(data: bytes, name: str, max_triangles: int, colors: bool = False) -> ModelPart:
    """Parse a model part's bytes (with ``colors``, also its property groups, triangle properties and
    slicer paint).

    Raises:
        BadModelError: not UTF-8, DTD/entities, XML not well-formed, not a 3MF ``<model>``, bad
            attribute values, duplicate object ids.
        LimitExceededError: the part alone holds more than ``max_triangles`` triangles.
    """
    _check_utf8(data, name)
    # The scanner refuses any markup declaration (<!DOCTYPE, <!ENTITY) outside comments and CDATA
    # in the whole part, and parse_xml checks the skeleton again before ElementTree sees it.
    meshes = scan_meshes(data, max_triangles, name, want_props=colors)
    return _structure(data, meshes, name)


def parse_model_part_stream(
    chunks: Iterable[bytes],
    name: str,
    max_triangles: int,
    colors: bool = False,
    restart: Callable[[], Iterable[bytes]] | None = None,
    size_hint: int = 4 << 20,
) -> ModelPart:
    """:func:`parse_model_part` from the part's inflated chunks, scanned as they arrive: memory is
    bounded by the meshes and the markup outside them, not by the XML text (numba kernel; without
    numba the chunks are joined and parsed whole). ``restart`` yields the chunks again, for the line
    number of an error; ``size_hint``, the part's inflated size, sizes the mesh arrays up front."""
    it = iter(chunks)
    first = next(it, b"")
    _check_utf8(first, name)
    if not numba_available():
        return parse_model_part(b"".join(chain((first,), it)), name, max_triangles, colors)
    from sidecar_thumbs.mesh.xmlstream import scan_meshes_stream

    meshes, kept = scan_meshes_stream(
        chain((first,), it), max_triangles, name, colors, restart=restart, size_hint=size_hint
    )
    return _structure(kept, meshes, name)


def _structure(data: bytes, meshes: MeshScan, name: str) -> ModelPart:
    # ``data`` is the part, or (streamed) the part without its mesh contents: ``meshes`` points into it.
    root = parse_xml(meshes.skeleton(data), name)
    ns, tag = _split(root.tag)
    if tag != "model" or ns not in CORE_NAMESPACES:
        raise BadModelError(f"3MF part {name} is not a 3MF model (root element <{tag}>)")
    unit = root.get("unit", "millimeter")
    if unit not in UNITS:
        raise BadModelError(f"3MF part {name} has an unknown unit {unit!r}")
    scale = UNITS[unit]
    q = "{" + ns + "}"

    mesh_elements = [el for el in root.iter() if isinstance(el.tag, str) and _split(el.tag)[1] == "mesh"]
    if len(mesh_elements) != len(meshes.spans):
        raise BadModelError(f"3MF part {name}: XML is not well-formed around <mesh> elements")
    mesh_index = {id(el): i for i, el in enumerate(mesh_elements)}

    objects: dict[int, ObjectDef] = {}
    for resources in root.findall(q + "resources"):
        for obj in resources.findall(q + "object"):
            oid = _resource_id(obj.get("id"), name, "object id")
            if oid in objects:
                raise BadModelError(f"3MF part {name} defines object id {oid} twice")
            otype = obj.get("type", "model")
            if otype not in OBJECT_TYPES:
                raise BadModelError(f"3MF part {name}: object {oid} has an invalid type {otype!r}")
            mesh = obj.find(q + "mesh")
            comps = obj.find(q + "components")
            components = () if comps is None else tuple(
                _component(c, name, scale) for c in comps.findall(q + "component")
            )  # fmt: skip
            objects[oid] = ObjectDef(
                id=oid,
                type=otype,
                mesh=None if mesh is None else mesh_index[id(mesh)],
                components=components,
                pid=_optional_int(obj.get("pid") or obj.get("materialid")),  # materialid: 3MF 0.93
                pindex=_optional_int(obj.get("pindex")),
            )
    build_el = root.find(q + "build")
    build = None
    if build_el is not None:
        build = tuple(_component(item, name, scale) for item in build_el.findall(q + "item"))
    part_colors, props = None, meshes.props
    if props is not None and (props.any or any(o.pid is not None for o in objects.values())):
        first_mesh = int(meshes.spans[0, 0]) if len(meshes.spans) else len(data)
        part_colors = read_part_colors(data, meshes.skippable, first_mesh)
    return ModelPart(
        name=name, scale=scale, objects=objects, build=build, meshes=meshes, colors=part_colors, props=props
    )


def _optional_int(text: str | None) -> int | None:
    # Colour attributes are best-effort: a bad value means "no colour", never a failed model.
    try:
        value = int(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


def _check_utf8(data: bytes, name: str) -> None:
    # 3MF requires UTF-8 (core spec 2.3); the scanner relies on an ASCII-compatible encoding.
    head = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    head = head.lstrip(b" \t\r\n")[:200]
    m = _ENCODING.match(head)
    declared = m.group(1).decode("ascii", "replace").lower() if m else "utf-8"
    if not head.startswith(b"<") or b"\x00" in head or declared not in ("utf-8", "utf8"):
        raise BadModelError(f"3MF part {name}: XML must be UTF-8 encoded")


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _resource_id(text: str | None, part: str, what: str) -> int:
    try:
        value = int(text or "")
    except ValueError:
        raise BadModelError(f"3MF part {part}: {what} {text!r} is not a number") from None
    if value < 0:
        raise BadModelError(f"3MF part {part}: {what} {text!r} is negative")
    return value


def _component(el, part: str, scale: float) -> Component:  # type: ignore[no-untyped-def]
    oid = _resource_id(el.get("objectid"), part, "objectid")
    path = el.get(_P_PATH) or el.get("path")  # some writers drop the p: prefix
    return Component(object_id=oid, path=path, transform=_transform(el.get("transform"), part, scale))


_IDENTITY = np.eye(4)
_IDENTITY.setflags(write=False)


def _transform(text: str | None, part: str, scale: float) -> np.ndarray:
    """``"m00 m01 m02 m10 m11 m12 m20 m21 m22 m30 m31 m32"`` -> 4x4 row-vector matrix (mm)."""
    if text is None or not text.strip():
        return _IDENTITY
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        values = []
    if len(values) != 12 or not all(np.isfinite(values)):
        raise BadModelError(f"3MF part {part}: bad transform {' '.join(text.split())[:80]!r}")
    m = np.eye(4)
    m[:, :3] = np.array(values).reshape(4, 3)
    m[3, :3] *= scale  # translations are in the part's unit; vertices are scaled separately
    return m
