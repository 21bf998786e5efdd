"""The numba kernel of :func:`sidecar_thumbs.mesh.colors3mf.hex_colors`: a colour group's values in one pass.

A colour group holds up to one ``<color color="#RRGGBB"/>`` per vertex (300k in a vertex-coloured
part); a regular expression over the group and a ``bytes.fromhex`` of its matches cost ~80 ms there,
this pass well under one. It finds exactly what ``\\b(?:displaycolor|color)\\s*=\\s*["']([^"']*)["']`` finds
(:data:`~sidecar_thumbs.mesh.colors3mf.COLOR_VALUE`, scanned left to right without overlaps: the twin
when numba is missing) and decodes each value that is ``#RRGGBB`` or ``#RRGGBBAA``; the caller decodes
any other value itself.

Importing this module imports numba; :mod:`colors3mf` falls back to the expression when that fails.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from sidecar_thumbs.mesh.lex import startswith

__all__ = ["COMMENT", "DONE", "ODD", "one_group_colors", "scan_colors"]

DONE, COMMENT, ODD = 0, 1, 2  # how scan_colors ended

_COLOR = np.frombuffer(b"color", np.uint8).copy()
_DISPLAY = np.frombuffer(b"display", np.uint8).copy()
_U = np.uint64
# Hex digit → value, 255 for any other byte (a table: no compare chains in the per-colour loop).
_HEX = np.full(256, 255, np.uint8)
for _i, _ch in enumerate(b"0123456789ABCDEF"):
    _HEX[_ch] = _HEX[_ch + 32 if _ch > 57 else _ch] = _i
del _i, _ch

# Helpers that take the buffer and branch are plain calls, not inline="always": inlined, numba wrapped
# each use in a reference count increment and decrement of the array (atomic, ~10 ns), which made the
# fast path below 12 times slower than the same code written out.


@nb.njit(cache=True, nogil=True, inline="always")
def _is_word(c: int) -> bool:
    # Python's \b for a bytes pattern: ASCII letters, digits, underscore.
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c == 95


@nb.njit(cache=True, nogil=True, inline="always")
def _is_space(c: int) -> bool:
    # \s of a bytes pattern: space, \t \n \v \f \r.
    return c == 32 or 9 <= c <= 13


@nb.njit(cache=True, nogil=True, inline="always")
def _is_quote(c: int) -> bool:
    return c == 34 or c == 39


@nb.njit(cache=True, nogil=True, inline="always")
def _load8(buf: np.ndarray, s: int) -> np.uint64:
    # Eight bytes as one word. Unsigned indices: with signed ones numba guards each for a negative
    # (wrap-around) index, and LLVM then keeps eight byte loads instead of one word load.
    i = _U(s)
    return (
        _U(buf[i])
        | (_U(buf[i + _U(1)]) << _U(8))
        | (_U(buf[i + _U(2)]) << _U(16))
        | (_U(buf[i + _U(3)]) << _U(24))
        | (_U(buf[i + _U(4)]) << _U(32))
        | (_U(buf[i + _U(5)]) << _U(40))
        | (_U(buf[i + _U(6)]) << _U(48))
        | (_U(buf[i + _U(7)]) << _U(56))
    )


@nb.njit(cache=True, nogil=True)
def _value(buf: np.ndarray, p: int, n: int) -> tuple[int, int]:
    """After the attribute name: ``\\s*=\\s*["']([^"']*)["']`` at ``buf[p:n]`` → value (start, end), or (-1, -1)."""
    while p < n and _is_space(buf[p]):
        p += 1
    if p >= n or buf[p] != 61:  # =
        return -1, -1
    p += 1
    while p < n and _is_space(buf[p]):
        p += 1
    if p >= n or not _is_quote(buf[p]):
        return -1, -1
    vs = p + 1
    q = vs
    while q < n and not _is_quote(buf[q]):  # the value ends at either quote, as in the expression
        q += 1
    if q >= n:
        return -1, -1
    return vs, q


@nb.njit(cache=True, nogil=True)
def _comment_in(buf: np.ndarray, s: int, e: int, end: int) -> bool:
    """Whether a ``<!--`` starts in ``buf[s:e]`` (and fits before ``end``)."""
    for p in range(s, e):
        if buf[p] == 60 and p + 3 < end and buf[p + 1] == 33 and buf[p + 2] == 45 and buf[p + 3] == 45:
            return True
    return False


@nb.njit(cache=True, nogil=True)
def _is_short_hex(buf: np.ndarray, vs: int, ve: int) -> bool:
    """``buf[vs:ve]`` is ``#RRGGBB`` or ``#RRGGBBAA``."""
    if (ve - vs != 7 and ve - vs != 9) or buf[vs] != 35:
        return False
    digits = 0
    for j in range(vs + 1, ve):
        digits |= _HEX[buf[j]]
    return digits <= 15


@nb.njit(cache=True, nogil=True)
def scan_colors(buf: np.ndarray, start: int, end: int, stop_at_comment: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Every colour value in ``buf[start:end]`` (a group's contents), in order.

    Returns:
        ``(rgb, bad, status)``: uint8 ``(K, 3)`` decoded colours; int64 ``(B, 3)`` rows ``(k, value
        start, value end)`` of the values that are not ``#RRGGBB[AA]`` (their ``rgb`` is 0: the caller
        decodes them); ``status`` :data:`DONE`, or the scan stopped: :data:`COMMENT` when
        ``stop_at_comment`` and the range holds ``<!--`` (the expression's twin strips comments first,
        and so must the caller), :data:`ODD` when more values than ``bad`` holds are spelled otherwise
        (the caller decodes them all one by one anyway).
    """
    cap = (end - start) // 8 + 1  # the shortest match, color="", is 8 bytes, and matches do not overlap
    # Not zeros: only the rows written are returned, and pages never written are never touched. Fixed
    # sizes (an array variable assigned in the loop, to grow it, costs reference counting in the loop).
    rgb = np.empty((cap, 3), np.uint8)
    bad = np.empty((cap // 16 + 16, 3), np.int64)
    n_bad = 0
    k = 0
    p = start
    # The fast path. ``run`` is the bytes from the end of one value to the start of the next as the
    # general scan last found them (``/><m:color color="``, say). Where the bytes after a value repeat
    # them exactly, the general scan would find the next value right after them too: every earlier
    # attempt to match looks only at bytes inside the run (an attempt that passed its opening quote
    # would succeed at the run's last byte, a quote) and it failed on those same bytes before.
    prev_end = -1  # the closing quote of the last value
    run_start = -1
    run_len = 0
    while p < end:
        vs = ve = -1
        short = False
        if run_start >= 0 and p == prev_end + 1 and p + run_len + 10 <= end:
            same = True
            j = 0
            while j + 8 <= run_len:
                if _load8(buf, p + j) != _load8(buf, run_start + j):
                    same = False
                    break
                j += 8
            if same and j < run_len:
                if run_len >= 8:  # the tail as the run's last eight bytes
                    same = _load8(buf, p + run_len - 8) == _load8(buf, run_start + run_len - 8)
                else:
                    while same and j < run_len:
                        same = buf[p + j] == buf[run_start + j]
                        j += 1
            if same:
                vs = p + run_len
                u = _U(vs)
                digits = _HEX[buf[u + _U(1)]] | _HEX[buf[u + _U(2)]] | _HEX[buf[u + _U(3)]]
                digits |= _HEX[buf[u + _U(4)]] | _HEX[buf[u + _U(5)]] | _HEX[buf[u + _U(6)]]
                if buf[u] == 35 and digits <= 15:  # #RRGGBB or #RRGGBBAA, closed by a quote
                    if _is_quote(buf[u + _U(7)]):
                        ve, short = vs + 7, True
                    elif (_HEX[buf[u + _U(7)]] | _HEX[buf[u + _U(8)]]) <= 15 and _is_quote(buf[u + _U(9)]):
                        ve, short = vs + 9, True
                if not short:  # another spelling of the value: up to the first quote, as the general scan
                    ve = vs
                    while ve < end and not _is_quote(buf[ve]):
                        ve += 1
                    if ve == end:  # no closing quote: the general scan decides
                        vs = -1
                        run_start = -1
        if vs < 0:  # the general scan
            c = buf[p]
            if c != 99 and c != 100:  # c d
                if c == 60 and stop_at_comment and _comment_in(buf, p, p + 1, end):
                    return rgb[:0], bad[:0], COMMENT
                p += 1
                continue
            if p > start and _is_word(buf[p - 1]):
                p += 1
                continue
            name_end = -1
            if c == 100 and startswith(buf, p, _DISPLAY) and startswith(buf, p + 7, _COLOR):
                name_end = p + 12
            elif c == 99 and startswith(buf, p, _COLOR):
                name_end = p + 5
            if name_end < 0 or name_end > end:
                p += 1
                continue
            vs, ve = _value(buf, name_end, end)
            if vs < 0:
                p += 1
                continue
            if prev_end >= 0:  # the general scan went over every byte since the last value
                run_start, run_len = prev_end + 1, vs - prev_end - 1
            short = _is_short_hex(buf, vs, ve)
        # Comments inside values too (the twin strips them before it looks for values).
        if not short and stop_at_comment and _comment_in(buf, vs, ve, end):
            return rgb[:0], bad[:0], COMMENT
        if k == cap:  # cannot happen (see cap), but never write past the arrays
            break
        if short:
            u = _U(vs)
            rgb[k, 0] = _HEX[buf[u + _U(1)]] * 16 + _HEX[buf[u + _U(2)]]
            rgb[k, 1] = _HEX[buf[u + _U(3)]] * 16 + _HEX[buf[u + _U(4)]]
            rgb[k, 2] = _HEX[buf[u + _U(5)]] * 16 + _HEX[buf[u + _U(6)]]
        else:
            if n_bad == len(bad):
                return rgb[:0], bad[:0], ODD
            rgb[k, 0] = rgb[k, 1] = rgb[k, 2] = 0
            bad[n_bad, 0] = k
            bad[n_bad, 1] = vs
            bad[n_bad, 2] = ve
            n_bad += 1
        k += 1
        prev_end = ve
        p = ve + 1
    # The arrays were sized for the shortest spelling: keep only what was found when that is far less.
    return (rgb[:k].copy() if 2 * k < cap else rgb[:k]), bad[:n_bad].copy(), DONE


@nb.njit(cache=True, nogil=True)
def one_group_colors(props: np.ndarray, default_gid: int, default_idx: int, gid: int, colors: np.ndarray):  # type: ignore[no-untyped-def]
    """Corner colours of a part whose triangles all take colour group ``gid`` (``colors`` uint8 (K, 3)):
    the whole of :meth:`~sidecar_thumbs.mesh.colors3mf.ColourResolver.corner_colors` for that case in
    one pass, without the index copies and masks of the NumPy path.

    ``props`` int32 (T, 4) are the triangles' pid, p1, p2, p3 (-1: absent); a triangle without pid
    takes ``default_gid``, one without p1 takes ``default_idx`` (0 when that is -1) for every corner,
    and a corner without its own index takes p1. Returns ``(status, colors uint8 (T, k, 3), mask)``:
    k is 3 when some triangle's corners differ, else 1; a triangle with an index outside the group
    is black and False in ``mask``; status False (nothing usable computed) when some triangle names
    another group, and the caller takes the general path.
    """
    t_count = len(props)
    k_count = len(colors)
    fallback = default_idx if default_idx >= 0 else 0
    # A colour a triangle until the first triangle whose corners differ; from there a colour a corner.
    # Two loops, not one with a mode: an array variable assigned inside a loop costs numba reference
    # counting on every pass.
    tri = np.empty((t_count, 1, 3), np.uint8)
    mask = np.empty(t_count, np.bool_)
    switch = t_count
    for t in range(t_count):
        g = props[t, 0] if props[t, 0] >= 0 else default_gid
        if g != gid:
            return False, tri[:0], mask[:0]
        p1 = props[t, 1]
        if p1 >= 0 and ((props[t, 2] >= 0 and props[t, 2] != p1) or (props[t, 3] >= 0 and props[t, 3] != p1)):
            switch = t
            break
        c0 = p1 if p1 >= 0 else fallback
        ok = c0 < k_count
        mask[t] = ok
        for ch in range(3):
            tri[t, 0, ch] = colors[c0, ch] if ok else 0
    if switch == t_count:
        return True, tri, mask
    out = np.empty((t_count, 3, 3), np.uint8)
    for t in range(switch):
        for j in range(3):
            for ch in range(3):
                out[t, j, ch] = tri[t, 0, ch]
    for t in range(switch, t_count):
        g = props[t, 0] if props[t, 0] >= 0 else default_gid
        if g != gid:
            return False, out[:0], mask[:0]
        p1 = props[t, 1]
        if p1 < 0:
            c0 = c1 = c2 = fallback
        else:
            c0 = p1
            c1 = props[t, 2] if props[t, 2] >= 0 else p1
            c2 = props[t, 3] if props[t, 3] >= 0 else p1
        ok = c0 < k_count and c1 < k_count and c2 < k_count
        mask[t] = ok
        for ch in range(3):
            out[t, 0, ch] = colors[c0, ch] if ok else 0
            out[t, 1, ch] = colors[c1, ch] if ok else 0
            out[t, 2, ch] = colors[c2, ch] if ok else 0
    return True, out, mask
