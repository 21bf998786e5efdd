"""Fast reading of a Wavefront OBJ's vertices and faces (the numba kernel, or its Python twin)."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from sidecar_thumbs import numba_cache
from sidecar_thumbs.errors import BadModelError, LimitExceededError
from sidecar_thumbs.mesh.objcodes import ERR_LIMIT, ERR_RANGE, MESSAGES, OK

__all__ = ["ObjScan", "numba_available", "scan_obj", "warm_up"]


def _load_kernel() -> ModuleType | None:
    # Imported on first use (numba costs ~0.4 s to import); SIDECAR_THUMBS_NO_NUMBA=1 forces the twin.
    return numba_cache.import_kernel("sidecar_thumbs.mesh.objscan_numba")


def numba_available() -> bool:
    """True when the numba kernel is in use."""
    return _load_kernel() is not None


@dataclass(frozen=True, eq=False)
class ObjScan:
    """What an OBJ holds that a thumbnail needs.

    Attributes:
        vertices: float32 ``(V, 3)``.
        colors: float32 ``(V, 3)`` per-vertex colours as written (NaN where a vertex has none), or
            ``(0, 3)`` when no vertex has one.
        corners: int32 0-based vertex indices of every face, all < V.
        starts: int64 ``(P + 1,)``: face ``p`` is ``corners[starts[p]:starts[p + 1]]`` (3+ corners).
        materials: int64 ``(U, 3)``: each ``usemtl`` as (first face it applies to, name byte range).
        libraries: int64 ``(L, 2)``: byte ranges of the ``mtllib`` arguments.
        short_faces: face lines with fewer than 3 vertices (not drawable, not kept).
    """

    vertices: np.ndarray
    colors: np.ndarray
    corners: np.ndarray
    starts: np.ndarray
    materials: np.ndarray
    libraries: np.ndarray
    short_faces: int

    @property
    def face_count(self) -> int:
        return int(self.starts.shape[0] - 1)


def scan_obj(data: bytes, max_triangles: int, use_numba: bool | None = None) -> ObjScan:
    """Scan an OBJ's bytes (line continuations already joined).

    Raises:
        BadModelError: a coordinate that is not a number, a vertex with fewer than 3 coordinates,
            a face index that is not a non-zero integer or points outside the vertices.
        LimitExceededError: the faces make more than ``max_triangles`` triangles.
    """
    kernel = numba_cache.chosen_kernel(_load_kernel(), use_numba)
    if kernel is not None:
        result = kernel.scan(np.frombuffer(data, np.uint8), max_triangles)
    else:
        from sidecar_thumbs.mesh import objscan_python

        result = objscan_python.scan(data, max_triangles)
    status, s, e = int(result[0]), int(result[1]), int(result[2])
    if status == OK:
        verts, colors, corners, starts, materials, libraries = result[3:9]
        return ObjScan(verts, colors, corners, starts, materials, libraries, short_faces=int(result[9]))
    if status == ERR_RANGE:
        raise BadModelError(f"OBJ face refers to vertex {s}, but the file has {e} vertices")
    line = data.count(b"\n", 0, s) + 1
    if status == ERR_LIMIT:
        raise LimitExceededError(f"OBJ faces make more than the limit of {max_triangles} triangles (line {line})")
    text = data[s : min(e, s + 40)].decode("utf-8", "replace").strip()
    raise BadModelError(f"OBJ {MESSAGES.get(status, 'scan failed')} (line {line}): {text!r}")


def warm_up() -> None:
    """Load (or compile, the first time on a machine) the numba kernels on a tiny input."""
    if _load_kernel() is not None:
        from sidecar_thumbs.mesh.polygons import triangulate

        scan = scan_obj(b"v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 1\nf 1 2 3 4\nf 1 2 3 4 1\n", 10)
        triangulate(scan.vertices, scan.corners, scan.starts)
