"""3MF loader: the build, placed in millimetres; and the lookup of a slicer's embedded thumbnail.

What is drawn: every ``<item>`` of the root part's ``<build>``, each placed by its transform (so
Bambu/Prusa plates show objects where the build puts them), expanding ``<components>`` recursively
with their transforms (``p' = p @ M``, row vectors, as in the spec), following production-extension
``p:path`` references into other model parts. Objects of type ``model``, ``solidsupport``,
``support`` and ``surface`` are drawn: supports are printed too, and a slicer shows them. Objects of
type ``other`` are not drawn (the spec says they are not part of the printed model; Bambu Studio
uses them for modifier volumes). Beam lattices, slices and other extensions are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sidecar_thumbs.errors import BadModelError, EmptyBuildError, LimitExceededError, NoGeometryError
from sidecar_thumbs.mesh import DEFAULT_LIMITS, LoadLimits, Mesh
from sidecar_thumbs.mesh.modelpart import ModelPart, parse_model_part_stream
from sidecar_thumbs.mesh.opc import Package
from sidecar_thumbs.mesh.soup import finish_triangles, finite_rows

__all__ = ["InstanceContext", "check_3mf_bytes", "find_embedded_thumbnail", "load_3mf_bytes", "load_3mf_mesh"]

MODEL_REL = "http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"
DEFAULT_ROOT = "3D/3dmodel.model"
MAX_DEPTH = 32  # component nesting; real files use 2 or 3 levels
DRAWN_TYPES = frozenset({"model", "solidsupport", "support", "surface"})

# (part name, mesh index, 4x4 transform in mm): one placed copy of a mesh.
_Instance = tuple[str, int, np.ndarray]


@dataclass(frozen=True)
class InstanceContext:
    """What decides an instance's colour: the object owning the mesh, the build item's object, and
    the (pid, pindex) inherited from the objects that refer to it as a component."""

    owner: int
    top: int
    inherited: tuple[int, int] | None


class _Assembly:
    """Resolves objects across model parts, with cycle, depth and instancing guards."""

    def __init__(self, package: Package, root: ModelPart, limits: LoadLimits, colors: bool = False) -> None:
        self.package = package
        self.limits = limits
        self.colors = colors
        self.parts = {root.name: root}
        self.root = root
        self._counts: dict[tuple[str, int], int] = {}
        self._visiting: set[tuple[str, int]] = set()

    def part(self, path: str | None, current: ModelPart) -> ModelPart:
        if not path:
            return current
        name = path.lstrip("/")
        info = self.package.find(name)
        key = info.filename if info is not None else name
        if key not in self.parts:
            self.parts[key] = _parse_part(self.package, name, key, self.limits.max_triangles, self.colors)
        return self.parts[key]

    def obj(self, part: ModelPart, oid: int):  # type: ignore[no-untyped-def]
        try:
            return part.objects[oid]
        except KeyError:
            raise BadModelError(f"3MF refers to object id {oid}, not defined in part {part.name}") from None

    def triangle_count(self, part: ModelPart, oid: int, depth: int = 0) -> int:
        """Triangles drawn for one instance of an object (checks references, cycles, depth)."""
        key = (part.name, oid)
        if key in self._counts:
            return self._counts[key]
        if key in self._visiting:
            raise BadModelError(f"3MF component cycle through object id {oid} in {part.name}")
        if depth > MAX_DEPTH:
            raise BadModelError(f"3MF components nested deeper than {MAX_DEPTH} levels")
        self._visiting.add(key)
        obj = self.obj(part, oid)
        total = 0
        if obj.type in DRAWN_TYPES:
            if obj.mesh is not None:
                _, _, _, _, t0, t1 = part.meshes.spans[obj.mesh].tolist()
                total += t1 - t0
            for comp in obj.components:
                total += self.triangle_count(self.part(comp.path, part), comp.object_id, depth + 1)
                if total > self.limits.max_triangles:
                    break  # Python ints do not overflow, but stop the work early
        self._visiting.discard(key)
        self._counts[key] = total
        return total

    def instances(
        self,
        part: ModelPart,
        oid: int,
        transform: np.ndarray,
        out: list[_Instance],
        contexts: list[InstanceContext] | None = None,
        top: int | None = None,
        inherited: tuple[int, int] | None = None,
    ) -> None:
        """Append every mesh of an object, placed by ``transform``, skipping empty branches (and, with
        ``contexts``, what decides each one's colour)."""
        if self._counts.get((part.name, oid), 0) == 0:
            return
        obj = part.objects[oid]
        top = oid if top is None else top
        if obj.pid is not None:
            inherited = (obj.pid, obj.pindex or 0)
        if obj.mesh is not None:
            out.append((part.name, obj.mesh, transform))
            if contexts is not None:
                contexts.append(InstanceContext(owner=oid, top=top, inherited=inherited))
        for comp in obj.components:
            child = self.part(comp.path, part)
            self.instances(child, comp.object_id, comp.transform @ transform, out, contexts, top, inherited)


def _parse_part(package: Package, member: str, name: str, max_triangles: int, colors: bool) -> ModelPart:
    """Parse a model part as it inflates (the ZIP header's size sizes the scanner's arrays)."""
    info = package.find(member)
    hint = info.file_size if info is not None else 0
    return parse_model_part_stream(
        package.stream(member), name, max_triangles, colors, lambda: package.stream(member), size_hint=hint
    )


def _root_part_name(package: Package) -> str:
    for rel_type, target in package.relationships():
        if rel_type.lower() == MODEL_REL:
            return target
    return DEFAULT_ROOT


def _assemble(data: bytes, limits: LoadLimits, colors: bool = False) -> tuple[_Assembly, ModelPart, int]:
    """Parse every part the build reaches and count the triangles it places (nothing placed yet)."""
    if len(data) > limits.max_file_bytes:
        raise LimitExceededError(f"file is {len(data)} bytes, more than the limit of {limits.max_file_bytes}")
    package = Package(data, limits.max_decompressed_bytes)
    root_name = _root_part_name(package)
    if package.find(root_name) is None:
        raise BadModelError(f"3MF root model part /{root_name} is missing from the package")
    root = _parse_part(package, root_name, root_name, limits.max_triangles, colors)
    if root.build is None:
        raise BadModelError(f"3MF root model part /{root_name} has no <build> element")
    if not root.build:
        # Told apart from a build of things we do not draw (a beam lattice): a slicer's picture of
        # such a package shows nothing the file holds, so it is never used either.
        raise EmptyBuildError(f"no geometry: the build of 3MF root model part /{root_name} has no items")
    asm = _Assembly(package, root, limits, colors)

    total = 0
    for item in root.build:
        total += asm.triangle_count(asm.part(item.path, root), item.object_id)
        if total > limits.max_triangles:
            raise LimitExceededError(f"3MF build places more than the limit of {limits.max_triangles} triangles")
    if total == 0:
        raise NoGeometryError(
            "no geometry: the build places no mesh triangles (beam lattices, slices and 'other' objects are not drawn)"
        )
    return asm, root, total


def check_3mf_bytes(data: bytes, limits: LoadLimits = DEFAULT_LIMITS) -> int:
    """Check that a 3MF loads (every check of :func:`load_3mf_bytes`) without placing its triangles.

    Used before a slicer's embedded picture is taken, so a sidecar is only ever written for a
    model that loads.

    Returns:
        the number of triangles the build places.

    Raises:
        The same errors as :func:`load_3mf_bytes`.
    """
    return _assemble(data, limits)[2]


def load_3mf_bytes(data: bytes, limits: LoadLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, str]:
    """Parse a 3MF file's bytes.

    Returns:
        ``(triangles, "3mf")``: C-contiguous float32 ``(N, 3, 3)`` in millimetres, every build
        item and component transform applied, non-finite triangles dropped.

    Raises:
        BadModelError: not a ZIP, missing parts, XML errors, dangling references, cycles.
        NoGeometryError: the build places no triangles.
        LimitExceededError: a cap on size, inflated bytes or (instanced) triangles is exceeded.
    """
    return load_3mf_mesh(data, limits, colors=False).triangles, "3mf"


def load_3mf_mesh(data: bytes, limits: LoadLimits = DEFAULT_LIMITS, colors: bool = True) -> Mesh:
    """Parse a 3MF file's bytes into a :class:`Mesh`, with the model's own colours when ``colors``.

    Colours come from the materials extension (per object and per triangle) and from a slicer
    project's filament assignments and paint (see :mod:`sidecar_thumbs.mesh.threemf_colors`).

    Raises:
        The same errors as :func:`load_3mf_bytes`; colours never add one.
    """
    asm, root, total = _assemble(data, limits, colors)
    assert root.build is not None  # checked by _assemble
    placed: list[_Instance] = []
    contexts: list[InstanceContext] = []
    for item in root.build:
        asm.instances(asm.part(item.path, root), item.object_id, item.transform, placed, contexts)
    vertices, faces, finite, winding = _place(asm.parts, placed, total)
    face_colors = color_mask = None
    if colors:
        from sidecar_thumbs.mesh.threemf_colors import instance_colors

        found = instance_colors(asm.package, asm.parts, placed, contexts, len(faces))
        if found is not None:
            face_colors, color_mask = found
    if vertices is None:  # instances holding far more vertices than they use: placed as a soup
        soup = faces
        if not finite:
            keep = finite_rows(soup)
            if keep is not None and face_colors is not None and color_mask is not None:
                face_colors, color_mask = face_colors[keep], color_mask[keep]
            soup = finish_triangles(soup, "no geometry")
        return Mesh(triangles=soup, format="3mf", face_colors=face_colors, color_mask=color_mask)
    if not finite:
        # A triangle with a NaN or infinite corner is dropped (finish_triangles' rule), with its colour.
        keep = np.isfinite(vertices).all(axis=1)[faces].all(axis=1)
        if not keep.any():
            raise NoGeometryError("no geometry: every triangle has a non-finite coordinate")
        faces = np.ascontiguousarray(faces[keep])
        if face_colors is not None and color_mask is not None:
            face_colors, color_mask = face_colors[keep], color_mask[keep]
    return Mesh(
        format="3mf", face_colors=face_colors, color_mask=color_mask, vertices=vertices, faces=faces, winding=winding
    )


def _place(
    parts: dict[str, ModelPart], placed: list[_Instance], total: int
) -> tuple[np.ndarray | None, np.ndarray, bool, int]:
    """The placed meshes as ``(vertices, faces, finite, winding)``: float32 ``(V, 3)`` in millimetres, int32
    ``(F, 3)`` indices into them, whether every vertex is finite (each placed vertex array is checked
    with two reductions; the faces are masked only when one is not), and :attr:`Mesh.winding`: the spec
    winds every triangle outward, and a placement with a negative determinant (a mirror) turns it inward.

    No triangle soup is built: the renderer reads corners through the indices. Each instance adds its
    mesh's vertices; when those would outnumber the corners of the triangles placed (a hostile file: a
    huge vertex list instanced many times for a few triangles), the soup is built instead, as memory is
    then bounded by the triangles: ``(None, soup (F, 3, 3), finite)``.
    """
    items = []
    n_verts = 0
    for part_name, mesh_index, m in placed:
        part = parts[part_name]
        verts, tris = part.meshes.mesh(mesh_index)
        if len(tris):
            items.append((part, verts, tris, m))
            n_verts += len(verts)
    indexed = n_verts <= 3 * total
    worlds, index_lists, soups = [], [], []
    finite = True
    base = 0
    mirrored = set()
    for part, verts, tris, m in items:
        linear = m[:3, :3] * part.scale
        mirrored.add(bool(np.linalg.det(linear) < 0.0))
        if np.array_equal(linear, np.eye(3)) and not m[3, :3].any():
            world = verts
        else:
            # float64 for the product so large coordinates (far-out-ring) keep their precision.
            # A hostile transform may overflow float32: inf, dropped with its triangles, no warning.
            with np.errstate(over="ignore", invalid="ignore"):
                world = (verts.astype(np.float64) @ linear + m[3, :3]).astype(np.float32)
        finite = finite and bool(np.isfinite(world.min()) and np.isfinite(world.max()))
        if indexed:
            worlds.append(world)
            index_lists.append(tris if base == 0 else tris + np.int32(base))
            base += len(world)
        else:
            # Indices were range-checked by the scanner.
            soups.append(np.take(world, tris, axis=0))
    if not items:  # _assemble refuses a build that places no triangle
        raise NoGeometryError("no geometry")
    if not indexed:
        soup = np.concatenate(soups) if len(soups) > 1 else soups[0]
        return None, soup, finite, 0
    vertices = np.concatenate(worlds) if len(worlds) > 1 else worlds[0]
    faces = np.concatenate(index_lists) if len(index_lists) > 1 else index_lists[0]
    winding = 0 if len(mirrored) > 1 else (-1 if True in mirrored else 1)  # a mix of both: let the volume say
    return (
        np.ascontiguousarray(vertices, dtype=np.float32),
        np.ascontiguousarray(faces, dtype=np.int32),
        finite,
        winding,
    )


def find_embedded_thumbnail(data: bytes, limits: LoadLimits = DEFAULT_LIMITS) -> tuple[str, bytes] | None:
    """The thumbnail a slicer or CAD tool stored in a 3MF, if there is a usable one.

    Looks, in order, at the package thumbnail relationship in ``_rels/.rels``, then
    ``Metadata/thumbnail.png``, ``Metadata/plate_1.png`` and
    ``Auxiliaries/.thumbnails/thumbnail_middle.png`` (names matched in any case). An image is
    accepted only if it is a PNG or JPEG that Pillow verifies, at most 20 MB and 4096x4096 pixels.

    Returns:
        ``(member name, image bytes)`` or None. Never raises for a bad package: the mesh loader
        reports the real error.
    """
    from sidecar_thumbs.mesh.thumbnail3mf import find_thumbnail

    return find_thumbnail(data, limits)
