"""The numba kernel of :mod:`sidecar_thumbs.mesh.xmlscan`: one pass over a 3MF model part's bytes.

It walks the markup itself (comments, CDATA, processing instructions, quoted attribute values that
may contain ``>``), and inside every ``<mesh>`` element (any namespace prefix) it parses the
``x``/``y``/``z`` attributes of ``<vertex>`` and the ``v1``/``v2``/``v3`` attributes of
``<triangle>`` (any order, extra attributes, either quote, whitespace anywhere XML allows) straight
into growing arrays. Everything else (objects, components, build) is left to ElementTree, which
parses the part with the mesh contents cut out; see :mod:`sidecar_thumbs.mesh.threemf`.

Importing this module imports numba; :mod:`xmlscan` falls back to NumPy when that fails.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from sidecar_thumbs.mesh.scancodes import (
    ERR_DTD,
    ERR_INDEX,
    ERR_LIMIT,
    ERR_MARKUP,
    ERR_NESTING,
    ERR_NUMBER,
    ERR_RANGE,
    ERR_TRIANGLE_ATTR,
    ERR_VERTEX_ATTR,
    OK,
)

# Exact powers of ten in float64 (10**22 is the largest exactly representable).
_POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)
_EXACT_MANTISSA = 2**53


@nb.njit(cache=True, nogil=True, inline="always")
def _is_space(c: int) -> bool:
    return c == 32 or c == 9 or c == 10 or c == 13


@nb.njit(cache=True, nogil=True)
def _find(buf: np.ndarray, start: int, pattern: bytes) -> int:
    # pattern is a small literal; a plain loop is fast enough for comments and CDATA.
    n = len(buf)
    m = len(pattern)
    i = start
    while i + m <= n:
        if buf[i] == pattern[0]:
            j = 1
            while j < m and buf[i + j] == pattern[j]:
                j += 1
            if j == m:
                return i
        i += 1
    return -1


@nb.njit(cache=True, nogil=True)
def _startswith(buf: np.ndarray, start: int, pattern: bytes) -> bool:
    if start + len(pattern) > len(buf):
        return False
    for j in range(len(pattern)):  # noqa: SIM110 (numba compiles loops, not generators)
        if buf[start + j] != pattern[j]:
            return False
    return True


@nb.njit(cache=True, nogil=True)
def _named(buf: np.ndarray, start: int, length: int, name: bytes) -> bool:
    return length == len(name) and _startswith(buf, start, name)


@nb.njit(cache=True, nogil=True)
def _number(buf: np.ndarray, s: int, e: int) -> tuple[float, int, bool]:
    """Parse ``[ws] [+-] (digits [. digits*] | . digits) [(e|E) [+-] digits] [ws]`` from buf[s:].

    Stops at the first byte that cannot continue the number (at most ``e``) and returns
    ``(value, stop, ok)``; the caller checks that ``stop`` is where the value must end (the
    closing quote), which is what lets the kernel parse an attribute value in a single pass.

    Up to 19 significant digits are kept exactly. When the mantissa fits 53 bits and the decimal
    exponent is at most 22 in magnitude the float64 result is correctly rounded (one IEEE operation
    on exact operands), which is every coordinate a 3D tool writes; beyond that it is within a few
    ulps of float64, far below the float32 the result is stored in.
    """
    while s < e and _is_space(buf[s]):
        s += 1
    neg = False
    if s < e and (buf[s] == 45 or buf[s] == 43):  # - +
        neg = buf[s] == 45
        s += 1
    mant = 0
    ndig = 0  # significant digits kept in mant
    exp10 = 0
    seen = False
    while s < e and 48 <= buf[s] <= 57:
        seen = True
        if ndig < 19:
            mant = mant * 10 + (buf[s] - 48)
            if mant != 0:
                ndig += 1
        else:
            exp10 += 1
        s += 1
    if s < e and buf[s] == 46:  # .
        s += 1
        while s < e and 48 <= buf[s] <= 57:
            seen = True
            if ndig < 19:
                mant = mant * 10 + (buf[s] - 48)
                if mant != 0:
                    ndig += 1
                exp10 -= 1
            s += 1
    if not seen:
        return 0.0, s, False
    if s < e and (buf[s] == 101 or buf[s] == 69):  # e E
        s += 1
        eneg = False
        if s < e and (buf[s] == 45 or buf[s] == 43):
            eneg = buf[s] == 45
            s += 1
        if s >= e or not (48 <= buf[s] <= 57):
            return 0.0, s, False
        ev = 0
        while s < e and 48 <= buf[s] <= 57:
            if ev < 100000:
                ev = ev * 10 + (buf[s] - 48)
            s += 1
        exp10 += -ev if eneg else ev
    while s < e and _is_space(buf[s]):
        s += 1
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
def _index(buf: np.ndarray, s: int, e: int) -> tuple[int, int, bool]:
    """Parse ``[ws] [+] digits [ws]`` (an XSD nonNegativeInteger below 2**31) from buf[s:e];
    returns ``(value, stop, ok)`` like :func:`_number`."""
    while s < e and _is_space(buf[s]):
        s += 1
    if s < e and buf[s] == 43:
        s += 1
    start = s
    v = 0
    while s < e and 48 <= buf[s] <= 57:
        v = v * 10 + (buf[s] - 48)
        if v >= 2147483648:
            return 0, s, False
        s += 1
    if s == start:
        return 0, s, False
    while s < e and _is_space(buf[s]):
        s += 1
    return v, s, True


@nb.njit(cache=True, nogil=True)
def _fail(code: int, start: int, end: int):  # type: ignore[no-untyped-def]
    return (
        code,
        start,
        end,
        np.empty((0, 3), np.float32),
        np.empty((0, 3), np.int32),
        np.empty((0, 6), np.int64),
        np.empty((0, 2), np.int64),
    )


@nb.njit(cache=True, nogil=True)
def _grow(a: np.ndarray, used: int) -> np.ndarray:
    grown = np.empty((2 * a.shape[0], a.shape[1]), a.dtype)
    grown[:used] = a[:used]
    return grown


@nb.njit(cache=True, nogil=True)
def scan(buf: np.ndarray, max_triangles: int):  # type: ignore[no-untyped-def]
    """Scan a model part.

    Returns:
        ``(status, err_start, err_end, vertices, triangles, spans, cuts)``. ``vertices`` is float32
        ``(V, 3)``; ``triangles`` int32 ``(T, 3)`` with indices relative to their mesh; ``spans``
        int64 ``(M, 6)``: content start and end (byte offsets of what lies between ``<mesh ...>``
        and ``</mesh>``), vertex range and triangle range of each mesh in document order.
        ``cuts`` int64 ``(K, 2)``: contents of the children of ``<resources>`` other than
        ``<object>`` (materials, colour and texture groups, slice stacks), which the structural
        parse does not need and which can be as large as the meshes. On error,
        ``buf[err_start:err_end]`` is the offending text.
    """
    n = len(buf)
    verts = np.empty((max(1024, n // 150), 3), np.float32)
    tris = np.empty((max(1024, n // 150), 3), np.int32)
    spans = np.empty((16, 6), np.int64)
    cuts = np.empty((16, 2), np.int64)
    nv = 0
    nt = 0
    nm = 0
    nc = 0
    in_mesh = False
    depth = 0  # open elements
    resources_depth = -1  # depth inside <resources>, when open
    cut_depth = -1  # depth inside the resource being cut, when one is open
    cut_start = 0
    i = 0
    while True:
        while i < n and buf[i] != 60:  # <
            i += 1
        if i >= n:
            break
        lt = i
        i += 1
        if i >= n:
            return _fail(ERR_MARKUP, lt, n)
        c = buf[i]
        if c == 33:  # !
            if _startswith(buf, i, b"!--"):
                j = _find(buf, i + 3, b"-->")
                if j < 0:
                    return _fail(ERR_MARKUP, lt, n)
                i = j + 3
                continue
            if _startswith(buf, i, b"![CDATA["):
                j = _find(buf, i + 8, b"]]>")
                if j < 0:
                    return _fail(ERR_MARKUP, lt, n)
                i = j + 3
                continue
            return _fail(ERR_DTD, lt, min(n, lt + 9))
        if c == 63:  # ?
            j = _find(buf, i + 1, b"?>")
            if j < 0:
                return _fail(ERR_MARKUP, lt, n)
            i = j + 2
            continue
        closing = c == 47  # /
        if closing:
            i += 1
        name_start = i
        local = i
        while i < n:
            c = buf[i]
            if _is_space(c) or c == 62 or c == 47 or c == 60:
                break
            if c == 58:  # ':' ends a namespace prefix
                local = i + 1
            i += 1
        if i == name_start or i >= n or buf[i] == 60:
            return _fail(ERR_MARKUP, lt, min(n, i + 1))
        ln = i - local
        kind = 0
        if _named(buf, local, ln, b"mesh"):
            kind = 1
        elif in_mesh and _named(buf, local, ln, b"vertex"):
            kind = 2
        elif in_mesh and _named(buf, local, ln, b"triangle"):
            kind = 3
        if closing:
            while i < n and _is_space(buf[i]):
                i += 1
            if i >= n or buf[i] != 62:
                return _fail(ERR_MARKUP, lt, min(n, i + 1))
            i += 1
            depth -= 1
            if depth < 0:
                return _fail(ERR_MARKUP, lt, i)
            if depth == cut_depth:
                if nc >= cuts.shape[0]:
                    cuts = _grow(cuts, nc)
                cuts[nc, 0] = cut_start
                cuts[nc, 1] = lt
                nc += 1
                cut_depth = -1
            if depth == resources_depth - 1:
                resources_depth = -1
            if kind == 1:
                if not in_mesh:
                    return _fail(ERR_NESTING, lt, i)
                in_mesh = False
                spans[nm - 1, 1] = lt
                spans[nm - 1, 3] = nv
                spans[nm - 1, 5] = nt
                count = nv - spans[nm - 1, 2]
                for k in range(spans[nm - 1, 4], nt):
                    if tris[k, 0] >= count or tris[k, 1] >= count or tris[k, 2] >= count:
                        return _fail(ERR_RANGE, lt, i)
            continue
        # Attributes of a start tag.
        x = 0.0
        y = 0.0
        z = 0.0
        val = 0.0
        idx = 0
        code = 0
        i1 = 0
        i2 = 0
        i3 = 0
        seen = 0  # bit mask of the three wanted attributes
        self_closing = False
        while True:
            while i < n and _is_space(buf[i]):
                i += 1
            if i >= n:
                return _fail(ERR_MARKUP, lt, n)
            c = buf[i]
            if c == 62:
                i += 1
                break
            if c == 47:
                if i + 1 < n and buf[i + 1] == 62:
                    i += 2
                    self_closing = True
                    break
                return _fail(ERR_MARKUP, lt, i + 1)
            an = i
            while i < n:
                c = buf[i]
                if _is_space(c) or c == 61 or c == 62 or c == 47 or c == 60:
                    break
                i += 1
            ae = i
            while i < n and _is_space(buf[i]):
                i += 1
            if ae == an or i >= n or buf[i] != 61:  # =
                return _fail(ERR_MARKUP, lt, min(n, i + 1))
            i += 1
            while i < n and _is_space(buf[i]):
                i += 1
            if i >= n or (buf[i] != 34 and buf[i] != 39):  # " '
                return _fail(ERR_MARKUP, lt, min(n, i + 1))
            q = buf[i]
            i += 1
            vs = i
            target = 0  # 1..3: x/y/z of a vertex, 4..6: v1/v2/v3 of a triangle
            if kind == 2 and ae - an == 1 and 120 <= buf[an] <= 122:  # x y z
                target = buf[an] - 119
            elif kind == 3 and ae - an == 2 and buf[an] == 118 and 49 <= buf[an + 1] <= 51:  # v1..v3
                target = buf[an + 1] - 45
            if target != 0:
                # Parse the value in place; it must end exactly at the closing quote.
                if target <= 3:
                    val, stop, ok = _number(buf, vs, n)
                    code = ERR_NUMBER
                else:
                    idx, stop, ok = _index(buf, vs, n)
                    code = ERR_INDEX
                if ok and stop < n and buf[stop] == q:
                    i = stop + 1
                    if target == 1:
                        x = val
                    elif target == 2:
                        y = val
                    elif target == 3:
                        z = val
                    elif target == 4:
                        i1 = idx
                    elif target == 5:
                        i2 = idx
                    else:
                        i3 = idx
                    seen |= 1 << ((target - 1) % 3)
                    continue
            while i < n and buf[i] != q:
                if buf[i] == 60:
                    return _fail(ERR_MARKUP, lt, i + 1)
                i += 1
            if i >= n:
                return _fail(ERR_MARKUP, lt, n)
            if target != 0:
                return _fail(code, vs, i)
            i += 1
        if kind == 2:
            if seen != 7:
                return _fail(ERR_VERTEX_ATTR, lt, i)
            if nv >= verts.shape[0]:
                verts = _grow(verts, nv)
            verts[nv, 0] = x
            verts[nv, 1] = y
            verts[nv, 2] = z
            nv += 1
        elif kind == 3:
            if seen != 7:
                return _fail(ERR_TRIANGLE_ATTR, lt, i)
            if nt >= max_triangles:
                return _fail(ERR_LIMIT, lt, i)
            if nt >= tris.shape[0]:
                tris = _grow(tris, nt)
            tris[nt, 0] = i1
            tris[nt, 1] = i2
            tris[nt, 2] = i3
            nt += 1
        elif kind == 1:
            if in_mesh:
                return _fail(ERR_NESTING, lt, i)
            cut_depth = -1  # a mesh outside an object (invalid) keeps its resource in the skeleton
            if nm >= spans.shape[0]:
                spans = _grow(spans, nm)
            spans[nm, 0] = i
            spans[nm, 1] = i
            spans[nm, 2] = nv
            spans[nm, 3] = nv
            spans[nm, 4] = nt
            spans[nm, 5] = nt
            nm += 1
            in_mesh = not self_closing
        if not self_closing:
            if _named(buf, local, ln, b"resources"):
                resources_depth = depth + 1
            elif depth == resources_depth and cut_depth < 0 and not _named(buf, local, ln, b"object"):
                cut_depth = depth
                cut_start = i
            depth += 1
    if in_mesh or depth != 0:
        return _fail(ERR_NESTING if in_mesh else ERR_MARKUP, n, n)
    # Copies release the over-allocated growth buffers.
    return OK, 0, 0, verts[:nv].copy(), tris[:nt].copy(), spans[:nm].copy(), cuts[:nc].copy()
