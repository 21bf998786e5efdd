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

from sidecar_thumbs.mesh.lex import NO_SPACE, number, startswith
from sidecar_thumbs.mesh.objcodes import ERR_INDEX, ERR_LIMIT, ERR_NUMBER, ERR_RANGE, ERR_SHORT_VERTEX, OK

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
def _push(table: np.ndarray, used: int, first: int, a: int, b: int) -> np.ndarray:
    """Row ``used`` of a growing ``(R, 3)`` table set to ``(first, a, b)``; returns the table."""
    if used >= table.shape[0]:
        table = _grow2(table, used)
    table[used, 0] = first
    table[used, 1] = a
    table[used, 2] = b
    return table


@nb.njit(cache=True, nogil=True)
def _keyword(buf: np.ndarray, s: int, e: int, word: bytes) -> bool:
    """buf[s:e] starts with ``word`` followed by a blank or the line end."""
    m = len(word)
    return s + m <= e and startswith(buf, s, word) and (s + m == e or _blank(buf[s + m]))


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


@nb.njit(cache=True, nogil=True, inline="always")
def _next_word(buf: np.ndarray, j: int, n: int) -> tuple[int, bool]:
    """Past the blanks at ``buf[j:]``: where the next word starts, and whether the statement ends
    there instead (line end, ``#`` comment, file end)."""
    while j < n and _blank(buf[j]):
        j += 1
    return j, j >= n or buf[j] == 10 or buf[j] == 35


@nb.njit(cache=True, nogil=True, inline="always")
def _word_end(buf: np.ndarray, t: int, n: int) -> int:
    while t < n and buf[t] != 10 and not _blank(buf[t]):
        t += 1
    return t


@nb.njit(cache=True, nogil=True)
def _fail(code: int, start: int, end: int):  # type: ignore[no-untyped-def]
    no_xyz = np.empty((0, 3), np.float32)
    return (
        code,
        start,
        end,
        no_xyz,
        no_xyz.copy(),
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
    libs = np.empty((4, 3), np.int64)
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
        # One statement per line; only the lines skipped whole are searched for their end.
        while i < n and _blank(buf[i]):
            i += 1
        if i >= n:
            break
        s = i
        c = buf[s]
        c1 = buf[s + 1] if s + 1 < n else 10
        if c == 118 and (_blank(c1) or c1 == 10):  # "v"
            k = 0
            j = s + 1
            while True:
                j, end = _next_word(buf, j, n)
                if end or k == 7:  # extra numbers are ignored
                    break
                val, stop, ok = number(buf, j, n, True, NO_SPACE)
                if not ok or (stop < n and buf[stop] != 10 and buf[stop] != 35 and not _blank(buf[stop])):
                    return _fail(ERR_NUMBER, j, _word_end(buf, j, n))
                vals[k] = val
                k += 1
                j = stop
            if k < 3:
                return _fail(ERR_SHORT_VERTEX, s, j)
            if nv >= verts.shape[0]:
                verts = _grow2(verts, nv)
                colors = _grow2(colors, nv)
            # x y z r g b [a] has a colour; 4 numbers are x y z w (w is 1 for every printable file).
            for q in range(3):
                verts[nv, q] = vals[q]
                colors[nv, q] = vals[3 + q] if k >= 6 else np.nan
            ncolor += k >= 6
            nv += 1
            i = j
        elif c == 102 and (_blank(c1) or c1 == 10):  # "f"
            count = 0
            j = s + 1
            while True:
                j, end = _next_word(buf, j, n)
                if end:
                    break
                t = j
                neg = False
                if buf[t] == 45 or buf[t] == 43:
                    neg = buf[t] == 45
                    t += 1
                d0 = t
                v = 0
                while t < n and 48 <= buf[t] <= 57:
                    if v < 4294967296:
                        v = v * 10 + (buf[t] - 48)
                    t += 1
                if (
                    t == d0
                    or v == 0
                    or v >= 2147483648
                    or (t < n and buf[t] != 47 and buf[t] != 10 and not _blank(buf[t]))
                ):
                    return _fail(ERR_INDEX, j, _word_end(buf, t, n))
                if neg:
                    v = nv - v  # -1 is the last vertex read so far
                    if v < 0:
                        return _fail(ERR_INDEX, j, t)
                else:
                    v -= 1
                t = _word_end(buf, t, n)  # the /vt/vn part: not needed to draw
                if nc >= corners.shape[0]:
                    corners = _grow1(corners, nc)
                corners[nc] = v
                nc += 1
                count += 1
                j = t
            i = j
            if count < 3:
                nc -= count
                short += 1
            else:
                ntri += count - 2
                if ntri > max_triangles:
                    return _fail(ERR_LIMIT, s, j)
                npoly += 1
                if npoly >= starts.shape[0]:
                    starts = _grow1(starts, npoly)
                starts[npoly] = nc
        else:
            e = i
            while e < n and buf[e] != 10:
                e += 1
            if c == 117 and _keyword(buf, s, e, b"usemtl"):
                a, b = _rest(buf, s, e)
                mtls = _push(mtls, nmtl, npoly, a, b)
                nmtl += 1
            elif c == 109 and _keyword(buf, s, e, b"mtllib"):
                a, b = _rest(buf, s, e)
                libs = _push(libs, nlib, 0, a, b)  # column 0 unused
                nlib += 1
            i = e
        # Past the rest of the line (a '#' comment) and its newline.
        while i < n and buf[i] != 10:
            i += 1
        i += 1
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
        libs[:nlib, 1:].copy(),
        short,
    )
