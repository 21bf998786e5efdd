"""The numba kernel of :func:`sidecar_thumbs.mesh.colors3mf.hex_colors`: a colour group's values in one pass.

A colour group holds up to one ``<color color="#RRGGBB"/>`` per vertex (300k in a vertex-coloured
part); a regular expression over the group and a ``bytes.fromhex`` of its matches cost ~80 ms there,
this pass a few. It finds exactly what ``\\b(?:displaycolor|color)\\s*=\\s*["']([^"']*)["']`` finds
(:data:`~sidecar_thumbs.mesh.colors3mf.COLOR_VALUE`, scanned left to right without overlaps: the twin
when numba is missing) and decodes each value that is ``#RRGGBB`` or ``#RRGGBBAA``; the caller decodes
any other value itself.

Importing this module imports numba; :mod:`colors3mf` falls back to the expression when that fails.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from sidecar_thumbs.mesh.lex import startswith

__all__ = ["scan_colors"]

_COLOR = np.frombuffer(b"color", np.uint8).copy()
_DISPLAY = np.frombuffer(b"display", np.uint8).copy()


@nb.njit(cache=True, nogil=True, inline="always")
def _is_word(c: int) -> bool:
    # Python's \b for a bytes pattern: ASCII letters, digits, underscore.
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c == 95


@nb.njit(cache=True, nogil=True, inline="always")
def _is_space(c: int) -> bool:
    # \s of a bytes pattern: space, \t \n \v \f \r.
    return c == 32 or 9 <= c <= 13


@nb.njit(cache=True, nogil=True, inline="always")
def _hex(c: int) -> int:
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


@nb.njit(cache=True, nogil=True, inline="always")
def _value(buf: np.ndarray, p: int) -> tuple[int, int]:
    """After the attribute name: ``\\s*=\\s*["']([^"']*)["']`` at ``buf[p:]`` → value (start, end), or (-1, -1)."""
    n = len(buf)
    while p < n and _is_space(buf[p]):
        p += 1
    if p >= n or buf[p] != 61:  # =
        return -1, -1
    p += 1
    while p < n and _is_space(buf[p]):
        p += 1
    if p >= n or (buf[p] != 34 and buf[p] != 39):
        return -1, -1
    vs = p + 1
    q = vs
    while q < n and buf[q] != 34 and buf[q] != 39:  # the value ends at either quote, as in the expression
        q += 1
    if q >= n:
        return -1, -1
    return vs, q


@nb.njit(cache=True, nogil=True)
def scan_colors(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every colour value in ``buf`` (a group's contents), in order.

    Returns:
        ``(rgb, ok, spans)``: uint8 ``(K, 3)`` decoded colours; bool ``(K,)`` True where the value was
        ``#RRGGBB[AA]`` (elsewhere ``rgb`` is 0 and the caller decodes ``buf[spans[k, 0]:spans[k, 1]]``);
        int64 ``(K, 2)`` the value's byte range.
    """
    n = len(buf)
    cap = n // 8 + 1  # the shortest match, color="", is 8 bytes, and matches do not overlap
    rgb = np.zeros((cap, 3), np.uint8)
    ok = np.zeros(cap, np.bool_)
    spans = np.zeros((cap, 2), np.int64)
    k = 0
    p = 0
    while p < n:
        c = buf[p]
        if c != 99 and c != 100:  # c d
            p += 1
            continue
        if p > 0 and _is_word(buf[p - 1]):
            p += 1
            continue
        name_end = -1
        if c == 100 and startswith(buf, p, _DISPLAY) and startswith(buf, p + 7, _COLOR):
            name_end = p + 12
        elif c == 99 and startswith(buf, p, _COLOR):
            name_end = p + 5
        if name_end < 0:
            p += 1
            continue
        vs, ve = _value(buf, name_end)
        if vs < 0:
            p += 1
            continue
        if k == cap:  # cannot happen (see cap), but never write past the arrays
            break
        spans[k, 0] = vs
        spans[k, 1] = ve
        if (ve - vs == 7 or ve - vs == 9) and buf[vs] == 35:  # #
            good = True
            for j in range(vs + 1, ve):
                if _hex(buf[j]) < 0:
                    good = False
                    break
            if good:
                for ch in range(3):
                    rgb[k, ch] = _hex(buf[vs + 1 + 2 * ch]) * 16 + _hex(buf[vs + 2 + 2 * ch])
                ok[k] = True
        k += 1
        p = ve + 1
    return rgb[:k], ok[:k], spans[:k]


@nb.njit(cache=True, nogil=True)
def one_group_colors(props: np.ndarray, default_gid: int, default_idx: int, gid: int, colors: np.ndarray):  # type: ignore[no-untyped-def]
    """Corner colours of a part whose triangles all take colour group ``gid`` (``colors`` uint8 (K, 3)):
    the whole of :meth:`~sidecar_thumbs.mesh.colors3mf.ColourResolver.corner_colors` for that case in
    two passes, without the index copies and masks of the NumPy path.

    ``props`` int32 (T, 4) are the triangles' pid, p1, p2, p3 (-1: absent); a triangle without pid
    takes ``default_gid``, one without p1 takes ``default_idx`` (0 when that is -1) for every corner,
    and a corner without its own index takes p1. Returns ``(status, colors uint8 (T, k, 3), mask)``:
    k is 3 when some triangle's corners differ, else 1; status False (nothing computed) when some
    triangle names another group, and the caller takes the general path.
    """
    t_count = len(props)
    k_count = len(colors)
    fallback = default_idx if default_idx >= 0 else 0
    per_corner = False
    for t in range(t_count):
        g = props[t, 0] if props[t, 0] >= 0 else default_gid
        if g != gid:
            return False, np.zeros((0, 1, 3), np.uint8), np.zeros(0, np.bool_)
        p1 = props[t, 1]
        if p1 >= 0 and ((props[t, 2] >= 0 and props[t, 2] != p1) or (props[t, 3] >= 0 and props[t, 3] != p1)):
            per_corner = True
    k = 3 if per_corner else 1
    out = np.zeros((t_count, k, 3), np.uint8)
    mask = np.zeros(t_count, np.bool_)
    for t in range(t_count):
        p1 = props[t, 1]
        if p1 < 0:
            c0 = c1 = c2 = fallback
        else:
            c0 = p1
            c1 = props[t, 2] if props[t, 2] >= 0 else p1
            c2 = props[t, 3] if props[t, 3] >= 0 else p1
        if c0 >= k_count or (k == 3 and (c1 >= k_count or c2 >= k_count)):
            continue
        for ch in range(3):
            out[t, 0, ch] = colors[c0, ch]
        if k == 3:
            for ch in range(3):
                out[t, 1, ch] = colors[c1, ch]
                out[t, 2, ch] = colors[c2, ch]
        mask[t] = True
    return True, out, mask
