"""The whole-part driver of the numba 3MF scanner: :func:`scan` feeds a part's bytes to
:func:`~sidecar_thumbs.mesh.xmlscan_numba.scan_step` in steps of a few MiB.

:mod:`sidecar_thumbs.mesh.xmlscan` imports this module as its kernel (the NumPy twin is
:mod:`xmlscan_numpy`); the streaming reader (:mod:`xmlstream`) drives ``scan_step`` itself.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from sidecar_thumbs.mesh.scancodes import OK
from sidecar_thumbs.mesh.xmlscan_numba import scan_step
from sidecar_thumbs.mesh.xmlscan_state import _STEP, NEED_MORE, ST_RESUME, _fail, finish, new_state, reserve

__all__ = ["scan"]

# The base offset of a whole part, typed int64 as the streaming reader's: a literal 0 made numba compile
# scan_step a second time for it (Literal[int](0)), ~70 s of CPU on a cold cache for the same machine code.
_BASE = np.int64(0)


@nb.njit(cache=True, nogil=True)
def scan(buf: np.ndarray, max_triangles: int, want_props: bool):  # type: ignore[no-untyped-def]
    """Scan a whole model part.

    Returns:
        ``(status, err_start, err_end, vertices, triangles, spans, cuts, props, paints)``. ``vertices`` is float32
        ``(V, 3)``; ``triangles`` int32 ``(T, 3)`` with indices relative to their mesh; ``spans``
        int64 ``(M, 6)``: content start and end (byte offsets of what lies between ``<mesh ...>``
        and ``</mesh>``), vertex range and triangle range of each mesh in document order.
        ``cuts`` int64 ``(K, 2)``: contents of the children of ``<resources>`` other than
        ``<object>`` (materials, colour and texture groups, slice stacks), which the structural
        parse does not need and which can be as large as the meshes. With ``want_props``, ``props``
        int32 ``(T, 4)`` holds each triangle's ``pid`` (or 3MF 0.93 ``materialid``), ``p1``, ``p2``,
        ``p3`` (-1 when absent) and ``paints`` int64 ``(K, 3)`` the triangle, start and end of each
        slicer paint value (``paint_color``, ``*:mmu_segmentation``); without it both are empty, and
        a triangle's extra attributes cost nothing more than before. On error,
        ``buf[err_start:err_end]`` is the offending text.
    """
    n = len(buf)
    st, verts, tris, props, paints, spans, cuts = new_state(n, want_props)
    # Steps of a few MiB keep the reserved rows (see reserve) in proportion to a step, not the part.
    end = 0
    while True:
        resume = st[ST_RESUME]
        end = min(n, max(end, resume) + _STEP)
        verts, tris, props, paints, spans, cuts = reserve(
            st, end - resume, want_props, verts, tris, props, paints, spans, cuts
        )
        status, s, e, verts, tris, props, paints, spans, cuts = scan_step(
            buf[:end], _BASE, end == n, max_triangles, want_props, st, verts, tris, props, paints, spans, cuts
        )
        if status == OK:
            break
        if status != NEED_MORE:
            return _fail(status, s, e)
    return finish(st, want_props, verts, tris, props, paints, spans, cuts)
