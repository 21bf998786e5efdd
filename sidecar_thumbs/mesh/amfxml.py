"""One AMF XML document read in a single streaming pass: objects, materials, constellations.

Read with expat directly (no tree: an AMF spends a dozen elements on each vertex) under the same
rules as 3MF: a document type declaration or an entity declaration anywhere refuses the file
before anything is expanded, whatever the encoding (a billion-laughs file costs nothing).
Coordinates and indices go into compact ``array`` buffers; colours (``<color>`` with ``r g b``,
on objects, volumes, vertices, triangles and materials) are kept for :mod:`sidecar_thumbs.mesh.amf`
to resolve. Blocks in the plain layout most writers use are read beforehand by
:mod:`sidecar_thumbs.mesh.amfbulk` and cut out, so expat walks only the structure around them.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from xml.parsers import expat

import numpy as np

from sidecar_thumbs.errors import BadModelError, LimitExceededError
from sidecar_thumbs.mesh.amfbulk import BulkCuts, cut_bulk

__all__ = ["AmfDocument", "AmfInstance", "AmfObject", "parse_amf_xml"]

_NAN = float("nan")
_RGB = (_NAN, _NAN, _NAN)
_INSTANCE_KEYS = frozenset(("deltax", "deltay", "deltaz", "rx", "ry", "rz", "scale", "scalex", "scaley", "scalez"))
_COORDINATES = frozenset(("x", "y", "z"))
_CORNERS = frozenset(("v1", "v2", "v3"))
_CHANNELS = frozenset(("r", "g", "b"))
_LEAVES = _INSTANCE_KEYS | _COORDINATES | _CORNERS | _CHANNELS
_MESH_PATH = ["amf", "object", "mesh"]
_VERTICES_PATH = ["amf", "object", "mesh", "vertices"]
_VOLUME_PATH = ["amf", "object", "mesh", "volume"]
_LEAF_PARENTS = frozenset(("coordinates", "triangle", "instance", "color"))


@dataclass
class AmfObject:
    """An object's mesh(es): vertices and triangles (indices into this object's vertices)."""

    id: str
    vertices: array[float] = field(default_factory=lambda: array("d"))  # x y z ...
    vertex_colors: array[float] = field(default_factory=lambda: array("d"))  # r g b per vertex (NaN: none)
    triangles: array[int] = field(default_factory=lambda: array("q"))  # v1 v2 v3 ...
    triangle_colors: array[float] = field(default_factory=lambda: array("d"))  # r g b per triangle (NaN: none)
    triangle_volume: array[int] = field(default_factory=lambda: array("q"))  # index into volumes
    volumes: list[tuple[tuple[float, float, float], str | None]] = field(default_factory=list)  # colour, materialid
    color: tuple[float, float, float] = _RGB


@dataclass(frozen=True)
class AmfInstance:
    """A placement in a constellation: ``objectid`` (an object or a constellation) and its values."""

    objectid: str
    values: dict[str, float]


@dataclass
class AmfDocument:
    unit: str = "millimeter"
    objects: dict[str, AmfObject] = field(default_factory=dict)
    materials: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    constellations: dict[str, list[AmfInstance]] = field(default_factory=dict)


class _Refused(Exception):
    pass


class _Reader:
    """expat callbacks; ``stack`` holds the local names of the open elements."""

    def __init__(self, doc: AmfDocument, part: str, max_triangles: int, bulk: BulkCuts | None) -> None:
        self.doc = doc
        self.bulk = bulk
        self.vertices_seen = 0  # ordinals of <vertices> and <volume> elements: how bulk blocks are found
        self.volumes_seen = 0
        self.part = part
        self.max_triangles = max_triangles
        self.triangles = 0
        self.stack: list[str] = []
        self.text: str | None = None  # the text of the open leaf, when it is one we read
        self.obj: AmfObject | None = None
        self.mesh_base = 0  # first vertex of the open <mesh>, within its object
        self.mesh_tri = 0  # first triangle of the open <mesh>
        self.values: dict[str, float] = {}  # the leaves of the open vertex, triangle, colour or instance
        self.color_values: dict[str, float] = {}
        self.item_color = _RGB  # the <color> of the open vertex or triangle
        self.material: str | None = None
        self.constellation: str | None = None
        self.instance: str | None = None

    def fail(self, message: str) -> None:
        raise BadModelError(f"AMF {self.part}: {message}")

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        # The hot path first: a file is mostly <x>, <y>, <z>, <v1>, <v2>, <v3> leaves (~1 µs a call).
        name = tag if ":" not in tag else tag.rpartition(":")[2]
        stack = self.stack
        parent = stack[-1] if stack else None
        stack.append(name)
        if name in _LEAVES and parent in _LEAF_PARENTS:
            self.text = ""
            return
        self.text = None
        if parent is None:
            if name != "amf":
                self.fail(f"not an AMF document (root element <{name}>)")
            self.doc.unit = attrs.get("unit", "millimeter").strip().lower()
        elif name in ("vertex", "triangle", "instance"):
            self.values = {}
            self.item_color = _RGB
            if name == "instance" and parent == "constellation":
                self.instance = attrs.get("objectid", "").strip()
        elif name == "object" and parent == "amf":
            oid = attrs.get("id", "").strip()
            if oid in self.doc.objects:
                self.fail(f"object id {oid!r} is defined twice")
            self.obj = self.doc.objects[oid] = AmfObject(oid)
        elif name == "mesh" and stack == _MESH_PATH and self.obj is not None:
            self.mesh_base = len(self.obj.vertices) // 3
            self.mesh_tri = len(self.obj.triangles) // 3
        elif name == "color":
            self.color_values = {}
        elif name == "vertices":
            self.vertices_seen += 1
            if self.bulk is not None and stack == _VERTICES_PATH and self.obj is not None:
                verts = self.bulk.vertices.get(self.vertices_seen - 1)
                if verts is not None:
                    self.obj.vertices.frombytes(verts.tobytes())
                    self.obj.vertex_colors.frombytes(np.full(verts.size, np.nan).tobytes())
        elif name == "volume":
            self.volumes_seen += 1
            if stack == _VOLUME_PATH and self.obj is not None:
                self.obj.volumes.append((_RGB, attrs.get("materialid")))
                if self.bulk is not None:
                    tris = self.bulk.triangles.get(self.volumes_seen - 1)
                    if tris is not None:
                        self._add_triangles(tris)
        elif name == "material" and parent == "amf":
            self.material = attrs.get("id", "").strip()
        elif name == "constellation" and parent == "amf":
            self.constellation = attrs.get("id", "").strip()
            self.doc.constellations.setdefault(self.constellation, [])

    def data(self, text: str) -> None:
        if self.text is not None:
            self.text += text

    def end(self, tag: str) -> None:
        name = self.stack.pop()
        parent = self.stack[-1] if self.stack else None
        text = self.text
        if text is not None:
            self.text = None
            self._leaf(name, parent, text)
            return
        obj = self.obj
        # Geometry counts only where AMF puts it: <amf><object><mesh><vertices>/<volume>. A stray
        # <vertex> or <triangle> elsewhere would escape the range check at </mesh>.
        if name == "vertex" and self.stack == _VERTICES_PATH and obj is not None:
            try:
                obj.vertices.extend((self.values["x"], self.values["y"], self.values["z"]))
            except KeyError:
                self.fail("a <vertex> lacks an x, y or z coordinate")
            obj.vertex_colors.extend(self.item_color)
        elif name == "triangle" and self.stack == _VOLUME_PATH and obj is not None:
            try:
                tri = (int(self.values["v1"]), int(self.values["v2"]), int(self.values["v3"]))
            except KeyError:
                self.fail("a <triangle> lacks v1, v2 or v3")
            self.triangles += 1
            if self.triangles > self.max_triangles:
                raise LimitExceededError(f"AMF has more than the limit of {self.max_triangles} triangles")
            base = self.mesh_base
            obj.triangles.extend((tri[0] + base, tri[1] + base, tri[2] + base))
            obj.triangle_colors.extend(self.item_color)  # the triangle's own <color>, if any
            obj.triangle_volume.append(len(obj.volumes) - 1)
        elif name == "mesh" and self.stack == _MESH_PATH[:2] and obj is not None:
            count = len(obj.vertices) // 3 - self.mesh_base
            # A copy, not a view: a view would stop the array from growing further.
            corners = np.array(obj.triangles[self.mesh_tri * 3 :], np.int64) - self.mesh_base
            if len(corners) and (corners.min() < 0 or corners.max() >= count):
                bad = int(corners.max()) if corners.max() >= count else int(corners.min())
                self.fail(f"triangle vertex index {bad} out of range (the mesh has {count})")
        elif name == "color":
            rgb = self._rgb()
            if parent in ("vertex", "triangle"):
                self.item_color = rgb
            elif parent == "volume" and obj is not None and obj.volumes:
                obj.volumes[-1] = (rgb, obj.volumes[-1][1])
            elif parent == "object" and obj is not None:
                obj.color = rgb
            elif parent == "material" and self.material is not None:
                self.doc.materials[self.material] = rgb
        elif name == "instance" and parent == "constellation" and self.constellation is not None:
            self.doc.constellations[self.constellation].append(AmfInstance(self.instance or "", dict(self.values)))
        elif name == "object":
            self.obj = None

    def _add_triangles(self, tris: np.ndarray) -> None:
        """Triangles read in bulk (:mod:`amfbulk`), as the <triangle> handler would add them."""
        obj = self.obj
        assert obj is not None
        self.triangles += len(tris)
        if self.triangles > self.max_triangles:
            raise LimitExceededError(f"AMF has more than the limit of {self.max_triangles} triangles")
        obj.triangles.frombytes((tris + self.mesh_base).astype(np.int64).tobytes())
        obj.triangle_colors.frombytes(np.full(tris.size, np.nan).tobytes())
        obj.triangle_volume.frombytes(np.full(len(tris), len(obj.volumes) - 1, np.int64).tobytes())

    def _leaf(self, name: str, parent: str | None, text: str) -> None:
        if parent == "coordinates":
            if name in _COORDINATES:
                self.values[name] = self._number(text, "vertex coordinate", name)
        elif parent == "triangle":
            if name in _CORNERS:
                text = text.strip()
                # int() alone takes signs and "_", refuses "²" (a digit to isdigit) and 5000 digits.
                digits = text.lstrip("0") or "0"
                if not (text.isascii() and text.isdigit()) or len(digits) > 10 or int(digits) >= 2**31:
                    self.fail(f"triangle index <{name}> {text[:40]!r} is not a non-negative integer below 2^31")
                self.values[name] = int(digits)
        elif parent == "instance":
            if name in _INSTANCE_KEYS:
                self.values[name] = self._number(text, "instance", name)
        elif parent == "color" and name in _CHANNELS:
            try:  # AMF allows a formula here; a colour we cannot read is simply no colour
                self.color_values[name] = float(text)
            except ValueError:
                self.color_values[name] = _NAN

    def _number(self, text: str, what: str, name: str) -> float:
        try:
            value = float(text)  # takes surrounding blanks, as XML allows
        except ValueError:
            value = _NAN
        if value - value != 0.0:  # NaN or ±inf (math.isfinite costs a global lookup and a call)
            self.fail(f"{what} <{name}> {text.strip()[:40]!r} is not a number")
        return value

    def _rgb(self) -> tuple[float, float, float]:
        c = self.color_values
        return (c.get("r", _NAN), c.get("g", _NAN), c.get("b", _NAN))


def _refuse(*_args: object) -> None:
    raise _Refused


def _refuse_external(_context: str, _base: str | None, _system_id: str | None, _public_id: str | None) -> int:
    raise _Refused


def parse_amf_xml(data: bytes, part: str, max_triangles: int, use_bulk: bool = True) -> AmfDocument:
    """Read one AMF document (``use_bulk``: let :mod:`amfbulk` read the plain blocks first; tests
    turn it off to compare).

    Raises:
        BadModelError: DTD/entities, XML not well-formed, not AMF, bad numbers or indices.
        LimitExceededError: more than ``max_triangles`` triangles.
    """
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise BadModelError(f"AMF {part}: XML DTD/entities not allowed")
    doc = AmfDocument()
    bulk = cut_bulk(data) if use_bulk else None
    reader = _Reader(doc, part, max_triangles, bulk)
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.ordered_attributes = False
    # Belt and braces for encodings the byte check above cannot see (UTF-16): any declaration stops.
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse_external
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.data
    try:
        parser.Parse(data if bulk is None else bulk.skeleton, True)
    except _Refused:
        raise BadModelError(f"AMF {part}: XML DTD/entities not allowed") from None
    except expat.ExpatError as exc:
        raise BadModelError(f"AMF {part}: XML is not well-formed: {exc}") from None
    except (ValueError, LookupError) as exc:
        raise BadModelError(f"AMF {part}: XML cannot be read: {exc}") from None
    return doc
