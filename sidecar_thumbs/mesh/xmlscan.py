"""Fast extraction of every ``<mesh>`` (vertices and triangles) from a 3MF model part.

The XML of a model part is almost entirely ``<vertex>`` and ``<triangle>`` elements; a general XML
parser spends about 1 µs on each. The scanner here (a numba kernel, or its NumPy twin when numba is
missing) reads them straight into arrays in one pass and reports where each mesh's content lies,
so that the remaining structure (objects, components, build) can be parsed by ElementTree with the
mesh contents cut out.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from sidecar_thumbs import numba_cache
from sidecar_thumbs.mesh.cutout import cut_out
from sidecar_thumbs.mesh.scancodes import OK, scan_error
from sidecar_thumbs.mesh.triprops import TriangleProps

__all__ = ["MeshScan", "numba_available", "scan_meshes", "warm_up"]


def _load_kernel() -> ModuleType | None:
    # Imported on first use: numba costs ~0.4 s to import, which `import sidecar_thumbs.mesh`
    # should not pay. numba is optional (no wheels for every platform): the NumPy twin gives the
    # same arrays. SIDECAR_THUMBS_NO_NUMBA=1 forces the twin.
    return numba_cache.import_kernel("sidecar_thumbs.mesh.xmlscan_whole")


def numba_available() -> bool:
    """True when the numba kernel is in use."""
    return _load_kernel() is not None


@dataclass(frozen=True, eq=False)
class MeshScan:
    """All meshes of one model part, in document order.

    Attributes:
        vertices: float32 ``(V, 3)``, the vertices of every mesh one after another.
        triangles: int32 ``(T, 3)``, indices relative to the first vertex of their own mesh.
        spans: int64 ``(M, 6)``, per mesh: content start and end byte offsets (what lies between
            ``<mesh ...>`` and ``</mesh>``), vertex range, triangle range.
        skippable: int64 ``(K, 2)``, byte ranges (contents of non-object resources) that the
            structural parse may skip too; may be empty.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    spans: np.ndarray
    skippable: np.ndarray
    props: TriangleProps | None = None  # only when asked for (colours)

    def skeleton(self, data: bytes) -> bytes:
        """``data`` without the mesh contents and the skippable ranges: what ElementTree parses."""
        ranges = sorted(map(tuple, np.concatenate([self.spans[:, :2], self.skippable]).tolist()))
        if not ranges:
            return data
        return cut_out(data, ranges)

    def mesh(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(vertices, triangles)`` of the mesh at ``index``."""
        _, _, v0, v1, t0, t1 = (int(x) for x in self.spans[index])
        return self.vertices[v0:v1], self.triangles[t0:t1]


def scan_meshes(
    data: bytes,
    max_triangles: int,
    part: str = "model part",
    use_numba: bool | None = None,
    want_props: bool = False,
) -> MeshScan:
    """Scan a model part's XML for its meshes.

    Args:
        data: the decompressed part (UTF-8 XML).
        max_triangles: stop with :class:`LimitExceededError` beyond this many triangles.
        part: the part's name, for messages.
        use_numba: force one implementation (tests); default: numba when importable.
        want_props: also read each triangle's property attributes and slicer paint (for colours).

    Raises:
        BadModelError: malformed markup, a DTD, a bad number or index, a missing attribute.
        LimitExceededError: more than ``max_triangles`` triangles.
    """
    kernel = numba_cache.chosen_kernel(_load_kernel(), use_numba)
    if kernel is not None:
        status, s, e, verts, tris, spans, cuts, props, paints = kernel.scan(
            np.frombuffer(data, np.uint8), max_triangles, want_props
        )
        if status == OK:
            found = TriangleProps.from_arrays(data, props, paints) if want_props else None
            return MeshScan(vertices=verts, triangles=tris, spans=spans, skippable=cuts, props=found)
    else:
        from sidecar_thumbs.mesh import xmlscan_numpy

        status, s, e, verts, tris, spans, cuts = xmlscan_numpy.scan(data, max_triangles)
        if status == OK:
            scan = MeshScan(vertices=verts, triangles=tris, spans=spans, skippable=cuts)
            if want_props:
                from sidecar_thumbs.mesh.xmlprops import triangle_props_re

                scan = MeshScan(verts, tris, spans, cuts, triangle_props_re(data, scan))
            return scan
    line = data.count(b"\n", 0, s) + 1
    raise scan_error(status, data, s, e, f"{part} line {line}", max_triangles)


def warm_up() -> None:
    """Load (or compile, the first time on a machine) the numba kernel on a tiny input."""
    if _load_kernel() is not None:
        scan_meshes(b'<mesh><vertex x="1" y="2" z="3"/><triangle v1="0" v2="0" v3="0"/></mesh>', 1)
