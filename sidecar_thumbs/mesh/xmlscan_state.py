"""The resumable state of the numba 3MF scanner (:mod:`xmlscan_numba`): slots, arrays, capacity, results.

The scanner's growing arrays are sized here, before each step, never inside the scan loop.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from sidecar_thumbs.mesh.scancodes import OK


@nb.njit(cache=True, nogil=True)
def _ensure(a: np.ndarray, used: int, need: int) -> np.ndarray:
    if a.shape[0] >= need:
        return a
    grown = np.empty((max(need, 2 * a.shape[0]), a.shape[1]), a.dtype)
    grown[:used] = a[:used]
    return grown


@nb.njit(cache=True, nogil=True)
def reserve(st, n, want_props, verts, tris, props, paints, spans, cuts):  # type: ignore[no-untyped-def]
    """Grow the arrays to hold whatever ``n`` more bytes of XML can add, before a step.

    :func:`scan_step` never grows an array itself: an array reassigned inside its loop costs an
    atomic reference count change at every tag, about a third of the scan. The bounds are the
    shortest markup of each kind (``<vertex x="0" y="0" z="0"/>`` is 26 bytes, a triangle 33,
    a paint attribute 16, ``<mesh/>`` 7); rows are allocated, not touched.
    """
    nt = st[ST_NT]
    verts = _ensure(verts, st[ST_NV], st[ST_NV] + n // 26 + 1)
    tris = _ensure(tris, nt, nt + n // 33 + 1)
    if want_props:
        props = _ensure(props, nt, nt + n // 33 + 1)
    paints = _ensure(paints, st[ST_NPAINT], st[ST_NPAINT] + n // 16 + 1)
    spans = _ensure(spans, st[ST_NM], st[ST_NM] + n // 7 + 1)
    cuts = _ensure(cuts, st[ST_NC], st[ST_NC] + n // 7 + 1)
    return verts, tris, props, paints, spans, cuts


# Slots of the resumable scanner state (an int64 array): counts, nesting, the open cut, and where to resume.
ST_NV, ST_NT, ST_NM, ST_NC, ST_NPAINT, ST_IN_MESH, ST_DEPTH, ST_RES_DEPTH, ST_CUT_DEPTH, ST_CUT_START, ST_RESUME = (
    range(11)
)
ST_SIZE = 11
NEED_MORE = -1  # a step ended inside an unfinished construct: resume at ST_RESUME with more bytes
_STEP = 4 << 20


@nb.njit(cache=True, nogil=True)
def new_state(guess: int, want_props: bool):  # type: ignore[no-untyped-def]
    """Fresh state and growing arrays for :func:`scan_step`, sized for ``guess`` bytes of XML.

    A part written the usual way spends about 135 bytes a vertex (one vertex, two triangles of
    ~45 bytes each): rows for ``guess / 96`` vertices and ``guess / 48`` triangles hold such a part
    and the reserve of its last step without a growing copy. Rows are allocated, not touched, so
    a generous guess costs address space, not memory.
    """
    st = np.zeros(ST_SIZE, np.int64)
    st[ST_RES_DEPTH] = -1
    st[ST_CUT_DEPTH] = -1
    rows = max(1024, guess // 96)
    tri_rows = max(1024, guess // 48)
    return (
        st,
        np.empty((rows, 3), np.float32),
        np.empty((tri_rows, 3), np.int32),
        np.empty((tri_rows if want_props else 0, 4), np.int32),
        np.empty((16, 3), np.int64),
        np.empty((16, 6), np.int64),
        np.empty((16, 2), np.int64),
    )


@nb.njit(cache=True, nogil=True)
def finish(st, want_props, verts, tris, props, paints, spans, cuts):  # type: ignore[no-untyped-def]
    """The result tuple of :func:`scan` from a finished state.

    The arrays are views of the used rows, not copies: the rows past them were never written, so
    they hold address space but no memory, and a copy would cost a pass over the mesh.
    """
    nt = st[ST_NT]
    return (
        OK,
        0,
        0,
        verts[: st[ST_NV]],
        tris[:nt],
        spans[: st[ST_NM]],
        cuts[: st[ST_NC]],
        props[: nt if want_props else 0],
        paints[: st[ST_NPAINT]],
    )


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
        np.empty((0, 4), np.int32),
        np.empty((0, 3), np.int64),
    )


@nb.njit(cache=True, nogil=True)
def _stop(final, base, n, code, start, end, verts, tris, props, paints, spans, cuts):  # type: ignore[no-untyped-def]
    # A failure that ran into the end of a non-final buffer may be a construct cut by the chunk
    # boundary: ask for more (the state still holds the start of that construct).
    if not final and end >= n:
        code = NEED_MORE
    return code, base + start, base + end, verts, tris, props, paints, spans, cuts
