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
def _at(buf: np.ndarray, s: int, word: np.ndarray) -> bool:
    if s + len(word) > len(buf):
        return False
    for k in range(len(word)):  # noqa: SIM110 (numba compiles loops, not generators)
        if buf[s + k] != word[k]:
            return False
    return True


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
        if c == 100 and _at(buf, p, _DISPLAY) and _at(buf, p + 7, _COLOR):
            name_end = p + 12
        elif c == 99 and _at(buf, p, _COLOR):
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
