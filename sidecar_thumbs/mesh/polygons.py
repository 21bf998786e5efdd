"""Polygons to triangles, for OBJ and PLY faces of any size.

Triangles are kept; a quad is split along the diagonal through its reflex corner (either diagonal
of a convex quad); a larger polygon is ear-clipped in its best-fit plane (Newell's normal), so a
concave n-gon gives n − 2 triangles that stay inside it. A degenerate polygon (no area, all
corners on a line, a point repeated: the corpus's 936-gon walks the same square 234 times) still
gives n − 2 triangles: when a full lap finds no ear, the current corner is clipped anyway.

The functions below are written in the subset of Python that numba compiles:
:mod:`polygons_numba` compiles :func:`triangulate_loop` (the others are inlined into it through
``register_jitable``).
Without numba, triangles and quads are split here with NumPy and only the (rare) larger polygons
run as plain Python.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np

from sidecar_thumbs import numba_cache
from sidecar_thumbs.mesh.jit import jitable

__all__ = ["EAR_BUDGET", "MAX_EAR_CORNERS", "PYTHON_EAR_BUDGET", "polygon_triangle_count", "triangulate"]

# Ear clipping is O(n²) point tests for an ordinary polygon and O(n³) at worst. A polygon above
# MAX_EAR_CORNERS corners, and every polygon after a file has spent EAR_BUDGET point tests, is
# split as a fan instead (and the rest of a polygon that runs out): a hostile file costs at most about
# a second here, never hours.
MAX_EAR_CORNERS = 4096
EAR_BUDGET = 100_000_000  # about a second of point tests compiled (50 concave 4000-gons: 1.2 s)
PYTHON_EAR_BUDGET = 2_000_000  # the same second or two in plain Python (no numba)


def _load_kernel() -> ModuleType | None:
    return numba_cache.import_kernel("sidecar_thumbs.mesh.polygons_numba")


def polygon_triangle_count(starts: np.ndarray) -> int:
    """How many triangles :func:`triangulate` makes: n − 2 per polygon of n ≥ 3 corners."""
    sizes = np.diff(starts)
    return int((sizes[sizes >= 3] - 2).sum())


def triangulate(
    verts: np.ndarray,
    corners: np.ndarray,
    starts: np.ndarray,
    use_numba: bool | None = None,
    budget: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split polygons into triangles with the winding of the polygon.

    Args:
        verts: float32 or float64 ``(V, 3)``.
        corners: int32 vertex indices of every polygon, one after another (all < V).
        starts: int64 ``(P + 1,)``: polygon ``p`` is ``corners[starts[p]:starts[p + 1]]``.
        use_numba: force one implementation (tests); default: numba when importable.
        budget: point tests of ear clipping before the rest is fanned; default
            :data:`EAR_BUDGET` compiled, :data:`PYTHON_EAR_BUDGET` in Python (tests give both one).

    Returns:
        ``(triangles, owner)``: int32 ``(T, 3)`` vertex indices and int32 ``(T,)`` the polygon each
        triangle comes from. Polygons of fewer than 3 corners give none.
    """
    kernel = numba_cache.chosen_kernel(_load_kernel(), use_numba)
    total = polygon_triangle_count(starts)
    if kernel is not None:
        tris = np.empty((total, 3), np.int32)
        owner = np.empty(total, np.int32)
        kernel.triangulate_loop(verts, corners, starts, tris, owner, EAR_BUDGET if budget is None else budget)
        return tris, owner
    # Corners at inf (beyond float32) make NaN normals: the triangles are dropped later anyway, and
    # the kernel computes them silently; so does the twin.
    with np.errstate(all="ignore"):
        return _triangulate_numpy(verts, corners, starts, total, PYTHON_EAR_BUDGET if budget is None else budget)


def _triangulate_numpy(
    verts: np.ndarray, corners: np.ndarray, starts: np.ndarray, total: int, budget: int
) -> tuple[np.ndarray, np.ndarray]:
    sizes = np.diff(starts)
    tris = np.empty((total, 3), np.int32)
    owner = np.empty(total, np.int32)
    # Each polygon's triangles go where the kernel would put them: in polygon order.
    first = np.concatenate([[0], np.cumsum(np.maximum(sizes - 2, 0))])
    p3 = np.flatnonzero(sizes == 3)
    tris[first[p3]] = corners[starts[p3][:, None] + np.arange(3)]
    owner[first[p3]] = p3
    p4 = np.flatnonzero(sizes == 4)
    if len(p4):
        q = corners[starts[p4][:, None] + np.arange(4)]
        p = verts[q].astype(np.float64)
        normal = np.cross(p[:, 2] - p[:, 0], p[:, 3] - p[:, 1])
        r1 = np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 1]), normal)
        r3 = np.einsum("ij,ij->i", np.cross(p[:, 3] - p[:, 2], p[:, 0] - p[:, 3]), normal)
        other = (r1 < 0) | (r3 < 0)
        a = np.where(other[:, None], q[:, [1, 2, 3]], q[:, [0, 1, 2]])
        b = np.where(other[:, None], q[:, [1, 3, 0]], q[:, [0, 2, 3]])
        tris[first[p4]] = a
        tris[first[p4] + 1] = b
        owner[first[p4]] = owner[first[p4] + 1] = p4
    # float64 as the kernel computes (NumPy 2 would keep float32 scalars in float32 arithmetic).
    verts64 = verts.astype(np.float64)
    for p in np.flatnonzero(sizes >= 5).tolist():
        k = int(first[p])
        budget = polygon_into(verts64, corners, int(starts[p]), int(starts[p + 1]), tris, k, budget)
        owner[k : k + int(sizes[p]) - 2] = p
    return tris, owner


# ---- numba-compatible core (compiled by polygons_numba; plain Python in the fallback) ----


@jitable
def plane_coords(verts: np.ndarray, corners: np.ndarray, s: int, e: int, xy: np.ndarray) -> bool:
    """Project polygon ``corners[s:e]`` onto its best-fit plane into ``xy`` (n, 2), counter-clockwise
    when seen against Newell's normal. False when the polygon has no area (or a non-finite corner)."""
    n = e - s
    cx = 0.0
    cy = 0.0
    cz = 0.0
    for k in range(n):
        v = corners[s + k]
        cx += verts[v, 0]
        cy += verts[v, 1]
        cz += verts[v, 2]
    cx /= n
    cy /= n
    cz /= n
    nx = 0.0
    ny = 0.0
    nz = 0.0
    for k in range(n):
        a = corners[s + k]
        b = corners[s + (k + 1) % n]
        ax = verts[a, 0] - cx
        ay = verts[a, 1] - cy
        az = verts[a, 2] - cz
        bx = verts[b, 0] - cx
        by = verts[b, 1] - cy
        bz = verts[b, 2] - cz
        nx += (ay - by) * (az + bz)
        ny += (az - bz) * (ax + bx)
        nz += (ax - bx) * (ay + by)
    length = math.sqrt(nx * nx + ny * ny + nz * nz)
    if not (length > 0.0 and length < math.inf):
        return False
    nx /= length
    ny /= length
    nz /= length
    # u: the coordinate axis least aligned with the normal, made perpendicular to it; v = n × u.
    if abs(nx) < 0.9:
        tx, ty, tz = 1.0, 0.0, 0.0
    else:
        tx, ty, tz = 0.0, 1.0, 0.0
    d = tx * nx + ty * ny + tz * nz
    ux = tx - d * nx
    uy = ty - d * ny
    uz = tz - d * nz
    ul = math.sqrt(ux * ux + uy * uy + uz * uz)
    ux /= ul
    uy /= ul
    uz /= ul
    vx = ny * uz - nz * uy
    vy = nz * ux - nx * uz
    vz = nx * uy - ny * ux
    for k in range(n):
        v = corners[s + k]
        px = verts[v, 0] - cx
        py = verts[v, 1] - cy
        pz = verts[v, 2] - cz
        xy[k, 0] = px * ux + py * uy + pz * uz
        xy[k, 1] = px * vx + py * vy + pz * vz
    return True


@jitable
def ear_clip(xy: np.ndarray, out: np.ndarray, budget: int) -> int:
    """Ear-clip the counter-clockwise polygon ``xy`` (n ≥ 3 points) into ``out`` ((n − 2, 3) local
    corner numbers). Returns the budget of point tests left; at 0 the rest is clipped without tests."""
    n = xy.shape[0]
    prev = np.empty(n, np.int64)
    nxt = np.empty(n, np.int64)
    for k in range(n):
        prev[k] = (k - 1) % n
        nxt[k] = (k + 1) % n
    m = n
    i = 0
    k = 0
    misses = 0
    while m > 3:
        a = prev[i]
        c = nxt[i]
        ax = xy[a, 0]
        ay = xy[a, 1]
        bx = xy[i, 0]
        by = xy[i, 1]
        cx = xy[c, 0]
        cy = xy[c, 1]
        budget -= 1  # every corner looked at counts, not only the point tests
        ear = budget <= 0 or misses >= m  # out of budget, or a full lap found no ear: clip anyway
        if not ear and (bx - ax) * (cy - by) - (by - ay) * (cx - bx) > 0.0:
            ear = True
            j = nxt[c]
            while j != a:
                budget -= 1
                px = xy[j, 0]
                py = xy[j, 1]
                j = nxt[j]
                # A point repeated at a corner of the ear does not block it.
                if (px == ax and py == ay) or (px == bx and py == by) or (px == cx and py == cy):
                    continue
                if (
                    (bx - ax) * (py - ay) - (by - ay) * (px - ax) >= 0.0
                    and (cx - bx) * (py - by) - (cy - by) * (px - bx) >= 0.0
                    and (ax - cx) * (py - cy) - (ay - cy) * (px - cx) >= 0.0
                ):
                    ear = False
                    break
        if ear:
            _put(out, k, a, i, c)
            k += 1
            nxt[a] = c
            prev[c] = a
            m -= 1
            misses = 0
            i = a  # the ear's neighbours may have just become ears
        else:
            misses += 1
            i = c
    _put(out, k, prev[i], i, nxt[i])
    return budget


@jitable
def polygon_into(verts: np.ndarray, corners: np.ndarray, s: int, e: int, tris: np.ndarray, k: int, budget: int) -> int:
    """Triangulate polygon ``corners[s:e]`` (n ≥ 5) into ``tris[k:k + n − 2]``; returns the budget left."""
    n = e - s
    xy = np.empty((n, 2), np.float64)
    if n <= MAX_EAR_CORNERS and budget > 0 and plane_coords(verts, corners, s, e, xy):
        local = np.empty((n - 2, 3), np.int64)
        budget = ear_clip(xy, local, budget)
        for t in range(n - 2):
            _put(tris, k + t, corners[s + local[t, 0]], corners[s + local[t, 1]], corners[s + local[t, 2]])
    else:
        for t in range(n - 2):  # a fan: no area to split by, or too large to ear-clip
            _put(tris, k + t, corners[s], corners[s + t + 1], corners[s + t + 2])
    return budget


def triangulate_loop(
    verts: np.ndarray, corners: np.ndarray, starts: np.ndarray, tris: np.ndarray, owner: np.ndarray, budget: int
) -> int:
    """Fill ``tris``/``owner`` (sized by :func:`polygon_triangle_count`) polygon by polygon."""
    k = 0
    for p in range(starts.shape[0] - 1):
        s = starts[p]
        e = starts[p + 1]
        n = e - s
        if n < 3:
            continue
        if n == 3:
            _put(tris, k, corners[s], corners[s + 1], corners[s + 2])
        elif n == 4:
            # Newell's normal of a quad is (p2 − p0) × (p3 − p1); a corner whose turn goes against it
            # is reflex, and the quad is split along the diagonal through it.
            q0 = corners[s]
            q1 = corners[s + 1]
            q2 = corners[s + 2]
            q3 = corners[s + 3]
            ax, ay, az = _edge(verts, q0, q2)
            bx, by, bz = _edge(verts, q1, q3)
            nx = ay * bz - az * by
            ny = az * bx - ax * bz
            nz = ax * by - ay * bx
            if _turn(verts, q0, q1, q2, nx, ny, nz) < 0.0 or _turn(verts, q2, q3, q0, nx, ny, nz) < 0.0:
                _put(tris, k, q1, q2, q3)
                _put(tris, k + 1, q1, q3, q0)
            else:
                _put(tris, k, q0, q1, q2)
                _put(tris, k + 1, q0, q2, q3)
        else:
            budget = polygon_into(verts, corners, s, e, tris, k, budget)
        for t in range(n - 2):
            owner[k + t] = p
        k += n - 2
    return budget


@jitable
def _turn(verts: np.ndarray, a: int, b: int, c: int, nx: float, ny: float, nz: float) -> float:
    """((b − a) × (c − b)) · n: negative when the polygon turns against ``n`` at ``b``."""
    ux, uy, uz = _edge(verts, a, b)
    vx, vy, vz = _edge(verts, b, c)
    return (uy * vz - uz * vy) * nx + (uz * vx - ux * vz) * ny + (ux * vy - uy * vx) * nz


@jitable
def _edge(verts: np.ndarray, a: int, b: int) -> tuple[float, float, float]:
    """Vertex b − vertex a in float64."""
    return float(verts[b, 0]) - verts[a, 0], float(verts[b, 1]) - verts[a, 1], float(verts[b, 2]) - verts[a, 2]


@jitable
def _put(tris: np.ndarray, k: int, a: int, b: int, c: int) -> None:
    tris[k, 0] = a
    tris[k, 1] = b
    tris[k, 2] = c
