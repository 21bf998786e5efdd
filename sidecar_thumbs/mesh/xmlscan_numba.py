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
from numba.cpython.unsafe.numbers import trailing_zeros

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
from sidecar_thumbs.mesh.xmlscan_fast import TRIANGLE_ROOM, VERTEX_ROOM, _eq, _load8, triangle, vertex
from sidecar_thumbs.mesh.xmlscan_fastprops import PROPS_ROOM, triangle_props
from sidecar_thumbs.mesh.xmlscan_lex import _find, _index, _is_space, _lit, _named, _number, _startswith
from sidecar_thumbs.mesh.xmlscan_state import (
    NEED_MORE,
    ST_CUT_DEPTH,
    ST_CUT_START,
    ST_DEPTH,
    ST_IN_MESH,
    ST_NC,
    ST_NM,
    ST_NPAINT,
    ST_NT,
    ST_NV,
    ST_RES_DEPTH,
    ST_RESUME,
    _stop,
    finish,
    new_state,
    reserve,
)

# The streaming reader (xmlstream) drives the kernel through this module: scan_step and the state it resumes.
__all__ = ["finish", "new_state", "reserve", "reserve_and_scan", "scan_step"]

# Literals as global arrays: numba freezes these into the compiled code, where a bytes literal is
# allocated again at every evaluation (about 25 ns, which was most of the cost of a short tag).
_COMMENTOPEN = _lit(b"!--")
_COMMENTCLOSE = _lit(b"-->")
_CDATAOPEN = _lit(b"![CDATA[")
_CDATACLOSE = _lit(b"]]>")
_PICLOSE = _lit(b"?>")
_MESH = _lit(b"mesh")
_VERTEX = _lit(b"vertex")
_TRIANGLE = _lit(b"triangle")
_PID = _lit(b"pid")
_MATERIALID = _lit(b"materialid")
_PAINTCOLOR = _lit(b"paint_color")
_MMUSEGMENTATION = _lit(b"mmu_segmentation")
_RESOURCES = _lit(b"resources")
_OBJECT = _lit(b"object")
_U = np.uint64
_LTS = _U(0x3C3C3C3C3C3C3C3C)  # eight '<'


@nb.njit(cache=True, nogil=True, inline="always")
def _put_triangle(tris, props, nt, want_props, i1, i2, i3, pr0, pr1, pr2, pr3):  # type: ignore[no-untyped-def]
    """Store triangle ``nt`` (and its colour properties with ``want_props``): the fast path's and the general one's."""
    row = _U(nt)  # unsigned: no wraparound checks on the stores
    tris[row, 0] = i1
    tris[row, 1] = i2
    tris[row, 2] = i3
    if want_props:
        props[row, 0] = pr0
        props[row, 1] = pr1
        props[row, 2] = pr2
        props[row, 3] = pr3


@nb.njit(cache=True, nogil=True, inline="always")
def _gap(buf, i):  # type: ignore[no-untyped-def]
    """How many bytes stand before the first ``<`` in ``buf[i : i + 16]`` (16 when there is none);
    the caller guarantees 16 bytes."""
    t = np.int64(trailing_zeros(_eq(_load8(buf, i), _LTS)))
    t2 = np.int64(trailing_zeros(_eq(_load8(buf, i + 8), _LTS)))
    return (t if t < 64 else 64 + t2) >> 3


@nb.njit(cache=True, nogil=True)
def scan_step(buf, base, final, max_triangles, want_props, st, verts, tris, props, paints, spans, cuts):  # type: ignore[no-untyped-def]
    """Scan ``buf`` (the part's bytes from absolute offset ``base``) from where ``st`` left off.

    Offsets written to ``spans``, ``cuts`` and ``paints`` are absolute. Unless ``final``, an error
    that ran into the end of ``buf`` (a tag, number or comment cut by the chunk boundary) returns
    ``NEED_MORE`` with the state as it was before that construct: ``st[ST_RESUME]`` is the absolute
    offset to feed again with more bytes behind it. The arrays must have room for what ``buf``
    can add (:func:`reserve`). Returns ``(status, err_start, err_end, verts,
    tris, props, paints, spans, cuts)`` (the arrays may have been reallocated to grow).
    """
    n = len(buf)
    nv = st[ST_NV]
    nt = st[ST_NT]
    nm = st[ST_NM]
    nc = st[ST_NC]
    npaint = st[ST_NPAINT]
    in_mesh = st[ST_IN_MESH] != 0
    depth = st[ST_DEPTH]
    resources_depth = st[ST_RES_DEPTH]
    cut_depth = st[ST_CUT_DEPTH]
    cut_start = st[ST_CUT_START]
    i = st[ST_RESUME] - base
    lt = i
    nested = False  # whether the slots only the general path changes are to be stored again
    while True:
        # Every construct starts here with the state consistent: a cut one resumes from this point.
        # The fast path changes only the counts: storing all eleven slots after each of its tags
        # cost ~10 % of a scan (one store a cycle), so the other seven wait for the general path.
        st[ST_NV] = nv
        st[ST_NT] = nt
        st[ST_NPAINT] = npaint
        st[ST_RESUME] = base + i
        if nested:
            st[ST_NM] = nm
            st[ST_NC] = nc
            st[ST_IN_MESH] = 1 if in_mesh else 0
            st[ST_DEPTH] = depth
            st[ST_RES_DEPTH] = resources_depth
            st[ST_CUT_DEPTH] = cut_depth
            st[ST_CUT_START] = cut_start
            nested = False
        while i < n and buf[_U(i)] != 60:  # < (an unsigned index: no negative-index wraparound)
            i += 1
        if i >= n:
            st[ST_RESUME] = base + n
            break
        lt = i
        i += 1
        if i >= n:
            return _stop(final, base, n, ERR_MARKUP, lt, n, verts, tris, props, paints, spans, cuts)
        c = buf[_U(i)]
        if c == 33:  # !
            if _startswith(buf, i, _COMMENTOPEN):
                j = _find(buf, i + 3, _COMMENTCLOSE)
                if j < 0:
                    return _stop(final, base, n, ERR_MARKUP, lt, n, verts, tris, props, paints, spans, cuts)
                i = j + 3
                continue
            if _startswith(buf, i, _CDATAOPEN):
                j = _find(buf, i + 8, _CDATACLOSE)
                if j < 0:
                    return _stop(final, base, n, ERR_MARKUP, lt, n, verts, tris, props, paints, spans, cuts)
                i = j + 3
                continue
            return _stop(final, base, n, ERR_DTD, lt, min(n, lt + 9), verts, tris, props, paints, spans, cuts)
        if c == 63:  # ?
            j = _find(buf, i + 1, _PICLOSE)
            if j < 0:
                return _stop(final, base, n, ERR_MARKUP, lt, n, verts, tris, props, paints, spans, cuts)
            i = j + 2
            continue
        if in_mesh:  # the fast path for the tags that are nearly all of a part (see xmlscan_fast)
            if c == 118 and i + VERTEX_ROOM <= n:  # v
                j, x, y, z = vertex(buf, i)
                if j >= 0:
                    row = _U(nv)  # unsigned: no wraparound checks on the stores
                    verts[row, 0] = x
                    verts[row, 1] = y
                    verts[row, 2] = z
                    nv += 1
                    i = j
                    # The rest of a run of vertices, in one small loop: going round the whole scan
                    # loop for each cost ~20 % of a scan. The next tag is looked for where the gap
                    # before the last one ended (the white space between tags is the same all
                    # through a file), and that gap is checked after the read: the next tag's
                    # position then does not wait for the bytes before it. (The same loop for runs
                    # of triangles made the whole scan slower, measured: not by its work, by how
                    # LLVM lays out this large function.)
                    gap = _gap(buf, i)
                    while gap < 16:  # 16: no '<' in sight
                        k = i + gap + 1
                        if k + VERTEX_ROOM > n or buf[_U(k)] != 118:
                            break
                        j, x, y, z = vertex(buf, k)
                        if j < 0 or _gap(buf, i) != gap:
                            break
                        row = _U(nv)
                        verts[row, 0] = x
                        verts[row, 1] = y
                        verts[row, 2] = z
                        nv += 1
                        i = j
                    continue
            elif c == 116 and i + TRIANGLE_ROOM <= n and nt < max_triangles:  # t
                pr0, pr1, pr2, pr3, ps, pe = -1, -1, -1, -1, 0, 0
                # Colours and paint too (see xmlscan_fastprops), read and dropped without want_props: a
                # coloured part scanned for its mesh alone (model colours off) otherwise took the general
                # path for every triangle, twice as slow (a 100k-triangle part's scan 10.9 -> 21.2 ms).
                if i + PROPS_ROOM <= n:
                    j, i1, i2, i3, pr0, pr1, pr2, pr3, ps, pe = triangle_props(buf, i, n)
                else:
                    j, i1, i2, i3 = triangle(buf, i)
                if j >= 0:
                    _put_triangle(tris, props, nt, want_props, i1, i2, i3, pr0, pr1, pr2, pr3)
                    if want_props and pe > ps:
                        paints[npaint, 0] = nt
                        paints[npaint, 1] = base + ps
                        paints[npaint, 2] = base + pe
                        npaint += 1
                    nt += 1
                    i = j
                    continue
        nested = True  # from here on the general path may change any slot
        closing = c == 47  # /
        if closing:
            i += 1
        name_start = i
        local = i
        while i < n:
            c = buf[_U(i)]
            if _is_space(c) or c == 62 or c == 47 or c == 60:
                break
            if c == 58:  # ':' ends a namespace prefix
                local = i + 1
            i += 1
        if i == name_start or i >= n or buf[_U(i)] == 60:
            return _stop(final, base, n, ERR_MARKUP, lt, min(n, i + 1), verts, tris, props, paints, spans, cuts)
        ln = i - local
        kind = 0
        if _named(buf, local, ln, _MESH):
            kind = 1
        elif in_mesh and _named(buf, local, ln, _VERTEX):
            kind = 2
        elif in_mesh and _named(buf, local, ln, _TRIANGLE):
            kind = 3
        if closing:
            while i < n and _is_space(buf[_U(i)]):
                i += 1
            if i >= n or buf[_U(i)] != 62:
                return _stop(final, base, n, ERR_MARKUP, lt, min(n, i + 1), verts, tris, props, paints, spans, cuts)
            i += 1
            depth -= 1
            if depth < 0:
                return _stop(final, base, n, ERR_MARKUP, lt, i, verts, tris, props, paints, spans, cuts)
            if depth == cut_depth:
                cuts[nc, 0] = cut_start
                cuts[nc, 1] = base + lt
                nc += 1
                cut_depth = -1
            if depth == resources_depth - 1:
                resources_depth = -1
            if kind == 1:
                if not in_mesh:
                    return _stop(final, base, n, ERR_NESTING, lt, i, verts, tris, props, paints, spans, cuts)
                in_mesh = False
                spans[nm - 1, 1] = base + lt
                spans[nm - 1, 3] = nv
                spans[nm - 1, 5] = nt
                count = nv - spans[nm - 1, 2]
                for k in range(spans[nm - 1, 4], nt):
                    if tris[k, 0] >= count or tris[k, 1] >= count or tris[k, 2] >= count:
                        return _stop(final, base, n, ERR_RANGE, lt, i, verts, tris, props, paints, spans, cuts)
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
        pr0 = -1
        pr1 = -1
        pr2 = -1
        pr3 = -1
        seen = 0  # bit mask of the three wanted attributes
        self_closing = False
        while True:
            while i < n and _is_space(buf[_U(i)]):
                i += 1
            if i >= n:
                return _stop(final, base, n, ERR_MARKUP, lt, n, verts, tris, props, paints, spans, cuts)
            c = buf[_U(i)]
            if c == 62:
                i += 1
                break
            if c == 47:
                if i + 1 < n and buf[_U(i + 1)] == 62:
                    i += 2
                    self_closing = True
                    break
                return _stop(final, base, n, ERR_MARKUP, lt, i + 1, verts, tris, props, paints, spans, cuts)
            an = i
            while i < n:
                c = buf[_U(i)]
                if _is_space(c) or c == 61 or c == 62 or c == 47 or c == 60:
                    break
                i += 1
            ae = i
            while i < n and _is_space(buf[_U(i)]):
                i += 1
            if ae == an or i >= n or buf[_U(i)] != 61:  # =
                return _stop(final, base, n, ERR_MARKUP, lt, min(n, i + 1), verts, tris, props, paints, spans, cuts)
            i += 1
            while i < n and _is_space(buf[_U(i)]):
                i += 1
            if i >= n or (buf[_U(i)] != 34 and buf[_U(i)] != 39):  # " '
                return _stop(final, base, n, ERR_MARKUP, lt, min(n, i + 1), verts, tris, props, paints, spans, cuts)
            q = buf[_U(i)]
            i += 1
            vs = i
            target = 0  # 1..3: x/y/z of a vertex, 4..6: v1/v2/v3 of a triangle
            if kind == 2 and ae - an == 1 and 120 <= buf[_U(an)] <= 122:  # x y z
                target = buf[_U(an)] - 119
            elif kind == 3 and ae - an == 2 and buf[_U(an)] == 118 and 49 <= buf[_U(an + 1)] <= 51:  # v1..v3
                target = buf[_U(an + 1)] - 45
            elif kind == 3 and want_props:
                al = an  # the attribute's local name, after any namespace prefix
                for k in range(an, ae):
                    if buf[_U(k)] == 58:
                        al = k + 1
                if _named(buf, an, ae - an, _PID) or _named(buf, an, ae - an, _MATERIALID):
                    target = 7
                elif ae - an == 2 and buf[_U(an)] == 112 and 49 <= buf[_U(an + 1)] <= 51:  # p1 p2 p3
                    target = buf[_U(an + 1)] - 41
                elif _named(buf, al, ae - al, _PAINTCOLOR) or _named(buf, al, ae - al, _MMUSEGMENTATION):
                    target = 11
            if target >= 7:
                # Colour attributes never fail a model: a bad value is just "no property".
                if target <= 10:
                    idx, stop, ok = _index(buf, vs, n)
                    if ok and stop < n and buf[_U(stop)] == q:
                        if target == 7:
                            pr0 = idx
                        elif target == 8:
                            pr1 = idx
                        elif target == 9:
                            pr2 = idx
                        else:
                            pr3 = idx
                else:
                    j = vs
                    while j < n and buf[_U(j)] != q:
                        j += 1
                    if j > vs:
                        paints[npaint, 0] = nt
                        paints[npaint, 1] = base + vs
                        paints[npaint, 2] = base + j
                        npaint += 1
                target = 0
            elif target != 0:
                # Parse the value in place; it must end exactly at the closing quote.
                if target <= 3:
                    val, stop, ok = _number(buf, vs, n)
                    code = ERR_NUMBER
                else:
                    idx, stop, ok = _index(buf, vs, n)
                    code = ERR_INDEX
                if ok and stop < n and buf[_U(stop)] == q:
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
            while i < n and buf[_U(i)] != q:
                if buf[_U(i)] == 60:
                    return _stop(final, base, n, ERR_MARKUP, lt, i + 1, verts, tris, props, paints, spans, cuts)
                i += 1
            if i >= n:
                return _stop(final, base, n, ERR_MARKUP, lt, n, verts, tris, props, paints, spans, cuts)
            if target != 0:
                return _stop(final, base, n, code, vs, i, verts, tris, props, paints, spans, cuts)
            i += 1
        if kind == 2:
            if seen != 7:
                return _stop(final, base, n, ERR_VERTEX_ATTR, lt, i, verts, tris, props, paints, spans, cuts)
            verts[nv, 0] = x
            verts[nv, 1] = y
            verts[nv, 2] = z
            nv += 1
        elif kind == 3:
            if seen != 7:
                return _stop(final, base, n, ERR_TRIANGLE_ATTR, lt, i, verts, tris, props, paints, spans, cuts)
            if nt >= max_triangles:
                return _stop(final, base, n, ERR_LIMIT, lt, i, verts, tris, props, paints, spans, cuts)
            _put_triangle(tris, props, nt, want_props, i1, i2, i3, pr0, pr1, pr2, pr3)
            nt += 1
        elif kind == 1:
            if in_mesh:
                return _stop(final, base, n, ERR_NESTING, lt, i, verts, tris, props, paints, spans, cuts)
            cut_depth = -1  # a mesh outside an object (invalid) keeps its resource in the skeleton
            spans[nm, 0] = base + i
            spans[nm, 1] = base + i
            spans[nm, 2] = nv
            spans[nm, 3] = nv
            spans[nm, 4] = nt
            spans[nm, 5] = nt
            nm += 1
            in_mesh = not self_closing
        if not self_closing:
            if _named(buf, local, ln, _RESOURCES):
                resources_depth = depth + 1
            elif depth == resources_depth and cut_depth < 0 and not _named(buf, local, ln, _OBJECT):
                cut_depth = depth
                cut_start = base + i
            depth += 1
    if not final:
        return NEED_MORE, 0, 0, verts, tris, props, paints, spans, cuts
    if in_mesh or depth != 0:
        return _stop(
            final, base, n, ERR_NESTING if in_mesh else ERR_MARKUP, n, n, verts, tris, props, paints, spans, cuts
        )
    return OK, 0, 0, verts, tris, props, paints, spans, cuts


@nb.njit(cache=True, nogil=True)
def reserve_and_scan(buf, base, final, max_triangles, want_props, st, verts, tris, props, paints, spans, cuts):  # type: ignore[no-untyped-def]
    """:func:`reserve` for ``buf`` then :func:`scan_step`, in one call from Python: each call costs a few
    microseconds of unboxing and boxing the arrays, and a streamed part takes ~50 steps."""
    verts, tris, props, paints, spans, cuts = reserve(
        st, base + len(buf) - st[ST_RESUME], want_props, verts, tris, props, paints, spans, cuts
    )
    return scan_step(buf, base, final, max_triangles, want_props, st, verts, tris, props, paints, spans, cuts)
