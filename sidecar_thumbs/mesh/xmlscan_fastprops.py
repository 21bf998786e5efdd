"""The numba 3MF scanner's fast path when it reads colours: ``<triangle v1 v2 v3 [pid p1 [p2 p3]]/>``.

A part coloured per triangle or per corner (a colour group) writes every triangle as
``<triangle v1="A" v2="B" v3="C" pid="P" p1="Q"/>`` or ``… p1="Q" p2="R" p3="S"/>``, a Bambu Studio
project its painted ones as ``<triangle v1="A" v2="B" v3="C" paint_color="8"/>``, in that order and
spelled as :mod:`~sidecar_thumbs.mesh.xmlscan_fast` expects. :func:`triangle_props` reads these forms
(and the plain one) with the same fixed checks and 8-byte digit runs in one pass; anything else
returns -1 and the general scanner reads the tag from its start, so the values are those the general
path gives. The scanner calls it instead of ``xmlscan_fast.triangle`` only when asked for the
triangle properties.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from sidecar_thumbs.mesh.xmlscan_fast import _MASK6, _index, _is, _load8, _word, tag_end, triangle_head

__all__ = ["PROPS_ROOM", "triangle_props"]

# The longest accepted tag after its '<' (117 bytes with 7-digit numbers) plus the 8-byte look-ahead.
PROPS_ROOM = 128

_U = np.uint64
_PID = _word(b'" pid="')
_P1 = _word(b'" p1="')
_P2 = _word(b'" p2="')
_P3 = _word(b'" p3="')
_MASK7 = _U(0xFFFFFFFFFFFFFF)
_PAINT = _word(b'" paint_')
_COLOR = _word(b'color="')
_MATERI = _word(b'" materi')
_ALID = _word(b'alid="')
_NO = (-1, 0, 0, 0, -1, -1, -1, -1, 0, 0)


@nb.njit(cache=True, nogil=True, inline="always")
def triangle_props(buf: np.ndarray, i: int, n: int) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    """Read ``triangle v1="A" v2="B" v3="C"`` then nothing, ``pid="P" p1="Q"[ p2="R" p3="S"]``,
    ``materialid="P"`` or ``paint_color="…"``, then ``/>`` or `` />``, at ``buf[i:]`` (just after the
    ``<``; ``n`` the buffer's length).

    Returns ``(end, a, b, c, pid, p1, p2, p3, paint start, paint end)``: properties -1 when absent,
    the paint value's byte range empty when there is none; ``end`` -1 when the tag is not in one of
    these forms. The caller guarantees ``i + PROPS_ROOM <= n``.
    """
    q, a, b, c = triangle_head(buf, i)
    end = tag_end(buf, q)
    if end >= 0:
        return end, a, b, c, -1, -1, -1, -1, 0, 0
    if q >= 0 and _load8(buf, q) == _PAINT and _is(buf, q + 8, _MASK7, _COLOR):
        # A slicer's paint (Bambu Studio, OrcaSlicer): any length, so bounded by the buffer, not the room.
        vs = q + 15
        j = vs
        while j < n and buf[j] != 34:
            if buf[j] == 60:  # '<' in a value: the general path reports the error
                return _NO
            j += 1
        end = tag_end(buf, j) if j + 8 <= n else -1
        if end < 0:
            return _NO
        return end, a, b, c, -1, -1, -1, -1, vs, j
    if q >= 0 and _load8(buf, q) == _MATERI and _is(buf, q + 8, _MASK6, _ALID):
        # The 2013 core spec's ``materialid`` (lib3mf's older samples), which the general path reads as ``pid``.
        pid, q = _index(buf, q + 14)
        end = tag_end(buf, q)
        if end < 0:
            return _NO
        return end, a, b, c, pid, -1, -1, -1, 0, 0
    if not _is(buf, q, _MASK7, _PID):
        return _NO
    pid, q = _index(buf, q + 7)
    if not _is(buf, q, _MASK6, _P1):
        return _NO
    p1, q = _index(buf, q + 6)
    end = tag_end(buf, q)
    if end >= 0:
        return end, a, b, c, pid, p1, -1, -1, 0, 0
    if not _is(buf, q, _MASK6, _P2):
        return _NO
    p2, q = _index(buf, q + 6)
    if not _is(buf, q, _MASK6, _P3):
        return _NO
    p3, q = _index(buf, q + 6)
    end = tag_end(buf, q)
    if end < 0:
        return _NO
    return end, a, b, c, pid, p1, p2, p3, 0, 0
