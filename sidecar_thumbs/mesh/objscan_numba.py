"""The numba kernel of :mod:`sidecar_thumbs.mesh.objscan`: one pass over a Wavefront OBJ's bytes.

Python's line splitting costs ~1 µs a line, more than the whole budget of a 100k-triangle file
(issue 15 asks for ≤ 60 ms); this walks the bytes once, parsing ``v`` lines (3 coordinates, and a
colour when 6 or 7 numbers are given) and ``f`` lines (``v``, ``v/vt``, ``v//vn``, ``v/vt/vn``;
negative indices resolved against the vertices read so far) straight into growing arrays, and
records where ``usemtl`` and ``mtllib`` names lie for the Python side. Everything else (``vn``,
``vt``, ``o``, ``g``, ``s``, ``l``, comments, unknown statements) is skipped. Line continuations
(``\\`` at a line end) are joined by the caller before the scan.

Importing this module imports numba; :mod:`objscan` falls back to plain Python when that fails.
"""

from __future__ import annotations

import numba as nb
import numpy as np

# The same number grammar and rounding as the 3MF scanner (a change there is a change here: numba's
# cache does not follow imports, so clear the cache after editing it).
from sidecar_thumbs.mesh.objcodes import ERR_INDEX, ERR_LIMIT, ERR_NUMBER, ERR_RANGE, ERR_SHORT_VERTEX, OK
from sidecar_thumbs.mesh.xmlscan_numba import _number

__all__ = ["scan"]


@nb.njit(cache=True, nogil=True, inline="always")
def _blank(c: int) -> bool:
    return c == 32 or c == 9 or c == 13 or c == 11 or c == 12


@nb.njit(cache=True, nogil=True)
def _grow2(a: np.ndarray, used: int) -> np.ndarray:
    grown = np.empty((2 * a.shape[0], a.shape[1]), a.dtype)
    grown[:used] = a[:used]
    return grown


@nb.njit(cache=True, nogil=True)
def _grow1(a: np.ndarray, used: int) -> np.ndarray:
    grown = np.empty(2 * a.shape[0], a.dtype)
    grown[:used] = a[:used]
    return grown


@nb.njit(cache=True, nogil=True)
def _keyword(buf: np.ndarray, s: int, e: int, word: bytes) -> bool:
    """buf[s:e] starts with ``word`` followed by a blank or the line end."""
    m = len(word)
    if s + m > e:
        return False
    for j in range(m):
        if buf[s + j] != word[j]:
            return False
    return s + m == e or _blank(buf[s + m])


@nb.njit(cache=True, nogil=True)
def _rest(buf: np.ndarray, s: int, e: int) -> tuple[int, int]:
    """The trimmed text after a keyword: ``(start, end)``."""
    while s < e and not _blank(buf[s]):
        s += 1
    while s < e and _blank(buf[s]):
        s += 1
    while e > s and _blank(buf[e - 1]):
        e -= 1
    return s, e


@nb.njit(cache=True, nogil=True)
def _fail(code: int, start: int, end: int):  # type: ignore[no-untyped-def]
    return (
        code,
        start,
        end,
        np.empty((0, 3), np.float32),
        np.empty((0, 3), np.float32),
        np.empty(0, np.int32),
        np.zeros(1, np.int64),
        np.empty((0, 3), np.int64),
        np.empty((0, 2), np.int64),
        0,
    )


@nb.njit(cache=True, nogil=True)
def scan(buf: np.ndarray, max_triangles: int):  # type: ignore[no-untyped-def]
    """Scan an OBJ file.

    Returns:
        ``(status, err_start, err_end, vertices, colors, corners, starts, materials, libraries,
        short_faces)``: float32 ``(V, 3)`` vertices; float32 ``(V, 3)`` vertex colours (NaN where a
        vertex has none; ``(0, 3)`` when no vertex has one); int32 corners (0-based vertex indices)
        of every face, face ``p`` being ``corners[starts[p]:starts[p + 1]]``; int64 ``(U, 3)``
        ``usemtl`` statements as (first face they apply to, name start, name end); int64 ``(L, 2)``
        byte ranges of ``mtllib`` arguments; the number of faces with fewer than 3 corners (not
        kept). On error ``buf[err_start:err_end]`` is the offending text, except for ``ERR_RANGE``
        after the scan, where they are the 1-based index and the number of vertices.
    """
    n = len(buf)
    verts = np.empty((max(256, n // 64), 3), np.float32)
    colors = np.empty((max(256, n // 64), 3), np.float32)
    corners = np.empty(max(1024, n // 8), np.int32)
    starts = np.empty(max(256, n // 32), np.int64)
    starts[0] = 0
    mtls = np.empty((16, 3), np.int64)
    libs = np.empty((4, 2), np.int64)
    vals = np.zeros(7, np.float64)
    nv = 0
    ncolor = 0
    nc = 0
    npoly = 0
    nmtl = 0
    nlib = 0
    ntri = 0
    short = 0
    i = 0
    while i < n:
        e = i
        while e < n and buf[e] != 10:
            e += 1
        s = i
        i = e + 1
        while s < e and _blank(buf[s]):
            s += 1
        if s >= e:
            continue
        c = buf[s]
        c1 = buf[s + 1] if s + 1 < e else 32  # a keyword alone on its line
        if c == 118 and _blank(c1):  # "v "
            k = 0
            j = s + 2
            while k < 7:
                while j < e and _blank(buf[j]):
                    j += 1
                if j >= e or buf[j] == 35:  # '#': a trailing comment
                    break
                val, stop, ok = _number(buf, j, e)
                if not ok or (stop < e and buf[stop] != 35 and not _blank(buf[stop - 1])):
                    t = j
                    while t < e and not _blank(buf[t]):
                        t += 1
                    return _fail(ERR_NUMBER, j, t)
                vals[k] = val
                k += 1
                j = stop
            if k < 3:
                return _fail(ERR_SHORT_VERTEX, s, e)
            if nv >= verts.shape[0]:
                verts = _grow2(verts, nv)
                colors = _grow2(colors, nv)
            verts[nv, 0] = vals[0]
            verts[nv, 1] = vals[1]
            verts[nv, 2] = vals[2]
            if k >= 6:  # x y z r g b [a]; 4 numbers are x y z w (w is 1 for every printable file)
                colors[nv, 0] = vals[3]
                colors[nv, 1] = vals[4]
                colors[nv, 2] = vals[5]
                ncolor += 1
            else:
                colors[nv, 0] = np.nan
                colors[nv, 1] = np.nan
                colors[nv, 2] = np.nan
            nv += 1
        elif c == 102 and _blank(c1):  # "f "
            count = 0
            j = s + 2
            while True:
                while j < e and _blank(buf[j]):
                    j += 1
                if j >= e or buf[j] == 35:
                    break
                t = j
                neg = False
                if buf[t] == 45 or buf[t] == 43:
                    neg = buf[t] == 45
                    t += 1
                d0 = t
                v = 0
                while t < e and 48 <= buf[t] <= 57:
                    if v < 4294967296:
                        v = v * 10 + (buf[t] - 48)
                    t += 1
                if t == d0 or v == 0 or v >= 2147483648 or (t < e and buf[t] != 47 and not _blank(buf[t])):
                    while t < e and not _blank(buf[t]):
                        t += 1
                    return _fail(ERR_INDEX, j, t)
                if neg:
                    v = nv - v  # -1 is the last vertex read so far
                    if v < 0:
                        return _fail(ERR_INDEX, j, t)
                else:
                    v -= 1
                while t < e and not _blank(buf[t]):  # the /vt/vn part: not needed to draw
                    t += 1
                if nc >= corners.shape[0]:
                    corners = _grow1(corners, nc)
                corners[nc] = v
                nc += 1
                count += 1
                j = t
            if count < 3:
                nc -= count
                short += 1
                continue
            ntri += count - 2
            if ntri > max_triangles:
                return _fail(ERR_LIMIT, s, e)
            npoly += 1
            if npoly >= starts.shape[0]:
                starts = _grow1(starts, npoly)
            starts[npoly] = nc
        elif c == 117 and _keyword(buf, s, e, b"usemtl"):
            a, b = _rest(buf, s, e)
            if nmtl >= mtls.shape[0]:
                mtls = _grow2(mtls, nmtl)
            mtls[nmtl, 0] = npoly
            mtls[nmtl, 1] = a
            mtls[nmtl, 2] = b
            nmtl += 1
        elif c == 109 and _keyword(buf, s, e, b"mtllib"):
            a, b = _rest(buf, s, e)
            if nlib >= libs.shape[0]:
                libs = _grow2(libs, nlib)
            libs[nlib, 0] = a
            libs[nlib, 1] = b
            nlib += 1
    for k in range(nc):
        if corners[k] >= nv:
            return _fail(ERR_RANGE, corners[k] + 1, nv)
    # Copies release the over-allocated growth buffers.
    out_colors = colors[:nv].copy() if ncolor else np.empty((0, 3), np.float32)
    return (
        OK,
        0,
        0,
        verts[:nv].copy(),
        out_colors,
        corners[:nc].copy(),
        starts[: npoly + 1].copy(),
        mtls[:nmtl].copy(),
        libs[:nlib].copy(),
        short,
    )
