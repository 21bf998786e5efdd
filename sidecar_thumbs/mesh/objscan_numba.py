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

from sidecar_thumbs.mesh.objcodes import ERR_INDEX, ERR_LIMIT, ERR_NUMBER, ERR_RANGE, ERR_SHORT_VERTEX, OK

__all__ = ["scan"]

# Exact powers of ten in float64 (10**22 is the largest exactly representable).
_POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)
_EXACT_MANTISSA = 2**53


@nb.njit(cache=True, nogil=True, inline="always")
def _blank(c: int) -> bool:
    return c == 32 or c == 9 or c == 13 or c == 11 or c == 12


@nb.njit(cache=True, nogil=True)
def _num(buf: np.ndarray, s: int, n: int) -> tuple[float, int, bool]:
    """``[+-] (digits [. digits*] | . digits) [(e|E) [+-] digits]`` at buf[s:], the 3MF scanner's
    grammar and rounding without its whitespace skipping (a newline ends an OBJ statement).
    Returns ``(value, stop, ok)``; the caller checks what follows ``stop``."""
    neg = False
    if s < n and (buf[s] == 45 or buf[s] == 43):  # - +
        neg = buf[s] == 45
        s += 1
    mant = 0
    ndig = 0  # significant digits kept in mant (19 fit an int64)
    exp10 = 0
    seen = False
    while s < n and 48 <= buf[s] <= 57:
        seen = True
        if ndig < 19:
            mant = mant * 10 + (buf[s] - 48)
            if mant != 0:
                ndig += 1
        else:
            exp10 += 1
        s += 1
    if s < n and buf[s] == 46:  # .
        s += 1
        while s < n and 48 <= buf[s] <= 57:
            seen = True
            if ndig < 19:
                mant = mant * 10 + (buf[s] - 48)
                if mant != 0:
                    ndig += 1
                exp10 -= 1
            s += 1
    if not seen:
        return 0.0, s, False
    if s < n and (buf[s] == 101 or buf[s] == 69):  # e E
        s += 1
        eneg = False
        if s < n and (buf[s] == 45 or buf[s] == 43):
            eneg = buf[s] == 45
            s += 1
        if s >= n or not (48 <= buf[s] <= 57):
            return 0.0, s, False
        ev = 0
        while s < n and 48 <= buf[s] <= 57:
            if ev < 100000:
                ev = ev * 10 + (buf[s] - 48)
            s += 1
        exp10 += -ev if eneg else ev
    if mant == 0:
        value = 0.0
    elif mant < _EXACT_MANTISSA and -22 <= exp10 <= 22:
        value = mant * _POW10[exp10] if exp10 >= 0 else mant / _POW10[-exp10]
    elif exp10 > 400:
        value = np.inf
    elif exp10 < -400:
        value = 0.0
    else:
        value = float(mant) * 10.0**exp10
    return (-value if neg else value), s, True


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
                while j < n and _blank(buf[j]):
                    j += 1
                if j >= n or buf[j] == 10 or buf[j] == 35 or k == 7:  # end, '#' comment, extra numbers
                    break
                val, stop, ok = _num(buf, j, n)
                if not ok or (stop < n and buf[stop] != 10 and buf[stop] != 35 and not _blank(buf[stop])):
                    t = j
                    while t < n and buf[t] != 10 and not _blank(buf[t]):
                        t += 1
                    return _fail(ERR_NUMBER, j, t)
                vals[k] = val
                k += 1
                j = stop
            if k < 3:
                return _fail(ERR_SHORT_VERTEX, s, j)
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
            i = j
        elif c == 102 and (_blank(c1) or c1 == 10):  # "f"
            count = 0
            j = s + 1
            while True:
                while j < n and _blank(buf[j]):
                    j += 1
                if j >= n or buf[j] == 10 or buf[j] == 35:
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
                    while t < n and buf[t] != 10 and not _blank(buf[t]):
                        t += 1
                    return _fail(ERR_INDEX, j, t)
                if neg:
                    v = nv - v  # -1 is the last vertex read so far
                    if v < 0:
                        return _fail(ERR_INDEX, j, t)
                else:
                    v -= 1
                while t < n and buf[t] != 10 and not _blank(buf[t]):  # the /vt/vn part: not needed to draw
                    t += 1
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
        libs[:nlib].copy(),
        short,
    )
