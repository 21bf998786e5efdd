"""The numba kernel's passes for an indexed mesh (vertices and faces): framing and projection per vertex.

A 3MF (and most other formats) holds each vertex once, shared by about six triangles; a triangle soup
holds it at every corner. These passes look at each vertex once, and at the faces only through their
three indices, so the render needs no soup: the framing pass projects V vertices instead of 3F corners,
and :func:`_project_vertices` projects each vertex to the screen once for ``numba_raster._raster`` to
read through the face indices. Every value is computed with the same float32 expressions, in the same
order, as the soup's passes (``kernel_numba._extents``, ``numba_raster._raster``), so a mesh draws the
same picture, to the last bit, in either form (``tests/test_render_indexed.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types

from sidecar_thumbs.render.camera import FINITE_MAX
from sidecar_thumbs.render.numba_jit import _F32, _FACES, _JIT, _MAT, _STATE, _VEC, _VERTS

_SIG_FIRST = types.int64(_VERTS, _FACES)
_SIG_EXTENTS = types.Tuple((_F32, _F32, _F32, _F32, types.int64, types.int64))(
    _VERTS, _FACES, _VEC, _MAT, _STATE, types.boolean
)
_SIG_PROJECT = types.none(_VERTS, _VEC, _MAT, _VEC, _MAT)

BAD_INDEX = -2  # what the passes return for a face index outside the vertex array


@njit(_SIG_FIRST, **_JIT)
def _first_finite_face(v: np.ndarray, f: np.ndarray) -> int:
    """The first face whose three vertices are finite (-1 if none; BAD_INDEX for an index out of range)."""
    big = np.float32(FINITE_MAX)
    nv = v.shape[0]
    for i in range(f.shape[0]):
        ok = True
        for k in range(3):
            c = f[i, k]
            if c < 0 or c >= nv:
                return BAD_INDEX
            for a in range(3):
                x = v[c, a]
                ok = ok and -big < x < big  # false for NaN and inf
        if ok:
            return i
    return -1


@njit(_SIG_EXTENTS, **_JIT)
def _extents_indexed(
    v: np.ndarray, f: np.ndarray, origin: np.ndarray, a: np.ndarray, state: np.ndarray, volume: bool
) -> tuple[np.float32, np.float32, np.float32, np.float32, int, int]:
    """``kernel_numba._extents`` for an indexed mesh: the framing extents over the vertices of drawable
    faces (all three corners project to finite x, y), their count, and the back-face sign (0 without
    ``volume``: the caller knows the winding, and the volume would cost 0.3 ms of 100k faces' corners).

    ``state`` is scratch, one byte a vertex. The count is BAD_INDEX for a face index out of range.
    """
    ox, oy, oz = origin[0], origin[1], origin[2]
    a00, a01, a02 = a[0, 0], a[0, 1], a[0, 2]
    a10, a11, a12 = a[1, 0], a[1, 1], a[1, 2]
    big = np.float32(FINITE_MAX)
    nv = v.shape[0]
    # 1: whether each vertex projects to finite x, y (the soup pass's test on each corner).
    for c in range(nv):
        dx, dy, dz = v[c, 0] - ox, v[c, 1] - oy, v[c, 2] - oz
        x = a00 * dx + a01 * dy + a02 * dz
        y = a10 * dx + a11 * dy + a12 * dz
        state[c] = 1 if (-big < x < big and -big < y < big) else 0
    # 2: drawable faces mark their vertices as framed (a vertex no drawable face uses is not framed,
    # as the soup would not hold it) and add to the enclosed volume.
    n = 0
    vol, absvol = 0.0, 0.0
    for i in range(f.shape[0]):
        c0, c1, c2 = f[i, 0], f[i, 1], f[i, 2]
        if c0 < 0 or c0 >= nv or c1 < 0 or c1 >= nv or c2 < 0 or c2 >= nv:
            return big, -big, big, -big, BAD_INDEX, 0
        if (state[c0] & state[c1] & state[c2] & 1) == 0:
            continue
        state[c0] |= 2
        state[c1] |= 2
        state[c2] |= 2
        n += 1
        if not volume:
            continue
        dx0, dy0, dz0 = v[c0, 0] - ox, v[c0, 1] - oy, v[c0, 2] - oz
        dx1, dy1, dz1 = v[c1, 0] - ox, v[c1, 1] - oy, v[c1, 2] - oz
        dx2, dy2, dz2 = v[c2, 0] - ox, v[c2, 1] - oy, v[c2, 2] - oz
        det = float(dx0 * (dy1 * dz2 - dz1 * dy2) + dy0 * (dz1 * dx2 - dx1 * dz2) + dz0 * (dx1 * dy2 - dy1 * dx2))
        vol += det
        absvol += abs(det)
    # 3: the extents over the framed vertices (min and max are exact: the order does not matter).
    xlo, xhi, ylo, yhi = big, -big, big, -big
    for c in range(nv):
        if state[c] & 2:
            dx, dy, dz = v[c, 0] - ox, v[c, 1] - oy, v[c, 2] - oz
            x = a00 * dx + a01 * dy + a02 * dz
            y = a10 * dx + a11 * dy + a12 * dz
            xlo = min(xlo, x)
            xhi = max(xhi, x)
            ylo = min(ylo, y)
            yhi = max(yhi, y)
    back = 0
    if abs(vol) > 1e-3 * absvol:
        back = 1 if vol > 0.0 else -1
    return xlo, xhi, ylo, yhi, n, back


@njit(_SIG_PROJECT, **_JIT)
def _project_vertices(v: np.ndarray, origin: np.ndarray, m: np.ndarray, off: np.ndarray, out: np.ndarray) -> None:
    """Screen X, Y, Z of every vertex, as ``numba_raster._raster`` computes them for a soup's corners.

    A non-finite vertex projects to NaN or inf, which the raster's on-grid test drops with its faces.
    """
    ox, oy, oz = origin[0], origin[1], origin[2]
    m00, m01, m02 = m[0, 0], m[0, 1], m[0, 2]
    m10, m11, m12 = m[1, 0], m[1, 1], m[1, 2]
    m20, m21, m22 = m[2, 0], m[2, 1], m[2, 2]
    tx, ty = off[0], off[1]
    for c in range(v.shape[0]):
        dx, dy, dz = v[c, 0] - ox, v[c, 1] - oy, v[c, 2] - oz
        out[c, 0] = m00 * dx + m01 * dy + m02 * dz + tx
        out[c, 1] = m10 * dx + m11 * dy + m12 * dz + ty
        out[c, 2] = m20 * dx + m21 * dy + m22 * dz
