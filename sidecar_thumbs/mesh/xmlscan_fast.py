"""The fast path of the numba 3MF scanner: ``<vertex x="…" y="…" z="…"/>`` and
``<triangle v1="…" v2="…" v3="…"/>`` exactly as every 3D tool writes them.

Nearly all of a model part is these two tags in this one spelling (that attribute order, double
quotes, one space, no prefix, plain decimals), ending in ``"/>`` (PrusaSlicer, Bambu Studio) or
``" />`` (lib3mf, most of the corpus's tags: read by the general path before, 4x slower).
:func:`vertex` and :func:`triangle` read such a tag with a fixed sequence of checks, and its numbers
eight bytes at a time (SWAR: the digit run's length and value come from a few integer operations on
one 64-bit word, not a branch per digit), which takes the scan of a 100k-triangle part from about
17 ms to about 7 ms. Anything else (another order, a prefix, an exponent, more attributes, eight or
more integer digits, more than 15 digits) makes them return -1 and the general scanner in
:mod:`xmlscan_numba` reads the tag from its start, so the fast path accepts only what the general one
accepts and gives the same values: the mantissa is below 10**15 and the exponent at most 15, so
``mant / 10**k`` is the correctly rounded float64 that :func:`~sidecar_thumbs.mesh.xmlscan_lex._number` computes too.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["TRIANGLE_ROOM", "VERTEX_ROOM", "tag_end", "triangle", "triangle_head", "vertex"]

# Bytes that must follow the tag's first letter for the fast path to run: the longest tag it
# accepts plus the 8-byte look-ahead of the last number, so it never reads past the buffer.
# (A vertex: its numbers have at most 17 bytes and are read up to 25 bytes from their start, so the reads
# stay within 80 bytes; 88 leaves a margin.)
VERTEX_ROOM = 88
TRIANGLE_ROOM = 64

_U = np.uint64
_HIGH_NIBBLES = _U(0xF0F0F0F0F0F0F0F0)
_ZEROS = _U(0x3030303030303030)
_SIXES = _U(0x0606060606060606)
_LOW7 = _U(0x7F7F7F7F7F7F7F7F)
_HIGH_BITS = _U(0x8080808080808080)
_LOW_NIBBLES = _U(0x0F0F0F0F0F0F0F0F)
_BYTE_INDEX = _U(0x0001020304050607)  # the top byte of (1 << 8k) * this is k
_PAIRS = _U(0x00FF00FF00FF00FF)
_QUADS = _U(0x0000FFFF0000FFFF)
_HALF = _U(0x00000000FFFFFFFF)


def _word(text: bytes) -> np.uint64:
    return _U(int.from_bytes(text, "little"))


_VERTEX_X = _word(b"vertex x")
_EQ_QUOTE = _word(b'="')
_Y = _word(b'" y="')
_Z = _word(b'" z="')
_TRIANGLE = _word(b"triangle")
_V1 = _word(b' v1="')
_V2 = _word(b'" v2="')
_V3 = _word(b'" v3="')
_END = _word(b'"/>')
_SPACE_END = _word(b'" />')  # lib3mf's spelling (most of the corpus's tags)
# The low k bytes of a word (scalars, not an array, so that they are constants in the code).
_MASK2 = _U(0xFFFF)
_MASK3 = _U(0xFFFFFF)
_MASK4 = _U(0xFFFFFFFF)
_MASK5 = _U(0xFFFFFFFFFF)
_MASK6 = _U(0xFFFFFFFFFFFF)
# At most 15 digits: the mantissa is below 10**15 < 2**53, exact in a float64 as 10**frac is.
_MAX_DIGITS = 15
_POW10 = np.array([10.0**k for k in range(_MAX_DIGITS + 1)], dtype=np.float64)
_POW10_INT = np.array([10**k for k in range(9)], dtype=np.int64)


@nb.njit(cache=True, nogil=True, inline="always")
def _load8(buf: np.ndarray, s: int) -> np.uint64:
    # Eight bytes, little-endian, in one unaligned load. The index is unsigned on purpose: with a
    # signed one numba adds a negative-index wraparound to each byte, and LLVM then cannot merge
    # the eight loads (8 loads and 8 conditional moves a word).
    u = _U(s)
    return (
        _U(buf[u])
        | (_U(buf[u + _U(1)]) << _U(8))
        | (_U(buf[u + _U(2)]) << _U(16))
        | (_U(buf[u + _U(3)]) << _U(24))
        | (_U(buf[u + _U(4)]) << _U(32))
        | (_U(buf[u + _U(5)]) << _U(40))
        | (_U(buf[u + _U(6)]) << _U(48))
        | (_U(buf[u + _U(7)]) << _U(56))
    )


@nb.njit(cache=True, nogil=True, inline="always")
def _byte(buf: np.ndarray, s: int) -> int:
    return buf[_U(s)]  # unsigned: no negative-index wraparound (see _load8)


@nb.njit(cache=True, nogil=True, inline="always")
def _eq(w: np.uint64, pattern: np.uint64) -> np.uint64:
    """0x80 in each byte of ``w`` equal to that byte of ``pattern``, 0 elsewhere (exact: no carry
    from one byte into the next)."""
    x = w ^ pattern
    return ((((x & _LOW7) + _LOW7) | x) & _HIGH_BITS) ^ _HIGH_BITS


@nb.njit(cache=True, nogil=True, inline="always")
def _digits(buf, s):  # type: ignore[no-untyped-def]
    """``(k, value)`` of the run of ASCII digits at ``buf[s:]``: k is 0..8 (8: eight or more, the value
    that of the first eight)."""
    w = _load8(buf, s)
    # A byte is a digit when its high nibble is 3 and adding 6 keeps it so; a carry out of a
    # non-digit byte can only disturb the bytes after it, which are past the run.
    odd = ((w & _HIGH_NIBBLES) ^ _ZEROS) | (((w + _SIXES) & _HIGH_NIBBLES) ^ _ZEROS)
    stops = (((odd & _LOW7) + _LOW7) | odd) & _HIGH_BITS  # 0x80 in every non-digit byte
    k = np.int64(8)  # no stop: the eight digits' value, the run may go on
    if stops != _U(0):
        low = stops & (~stops + _U(1))
        k = np.int64(((low >> _U(7)) * _BYTE_INDEX) >> _U(56))
        if k == 0:
            return 0, 0
    # The k digits moved to the top of the word, then summed pairwise: 8 -> 4 -> 2 -> 1 numbers.
    d = (w & _LOW_NIBBLES) << _U(8 * (8 - k))
    d = (d * _U(10) + (d >> _U(8))) & _PAIRS
    d = (d * _U(100) + (d >> _U(16))) & _QUADS
    d = (d * _U(10000) + (d >> _U(32))) & _HALF
    return k, np.int64(d)


@nb.njit(cache=True, nogil=True, inline="always")
def _decimal(buf: np.ndarray, s: int) -> tuple[float, int]:
    """``[-] digits [. digits]`` (or ``[-] . digits``) at ``buf[s:]``: ``(value, end)``, or
    ``(0.0, -1)`` when there is no such number (the caller checks what follows it)."""
    neg = _byte(buf, s) == 45  # -
    if neg:
        s += 1
    k, mant = _digits(buf, s)
    if k == 8:
        return 0.0, -1
    s += k
    frac = 0
    if _byte(buf, s) == 46:  # .
        s += 1
        frac, tail = _digits(buf, s)
        s += frac
        mant = mant * _POW10_INT[frac] + tail
        if frac == 8:  # PrusaSlicer and Bambu Studio write 9 significant digits: the next eight bytes
            more, tail = _digits(buf, s)
            if more == 8:
                return 0.0, -1
            s += more
            mant = mant * _POW10_INT[more] + tail
            frac += more
    if k + frac == 0 or k + frac > _MAX_DIGITS:
        return 0.0, -1
    value = mant / _POW10[frac]
    return (-value if neg else value), s


@nb.njit(cache=True, nogil=True, inline="always")
def _index(buf: np.ndarray, s: int) -> tuple[int, int]:
    """Digits at ``buf[s:]``: ``(value, end)`` or ``(0, -1)``."""
    k, value = _digits(buf, s)
    if k == 0 or k == 8:
        return 0, -1
    return value, s + k


@nb.njit(cache=True, nogil=True, inline="always")
def _is(buf: np.ndarray, s: int, mask: np.uint64, text: np.uint64) -> bool:
    # Whether buf[s:] starts with the (at most 8-byte) literal ``text``: one load, one compare.
    return s >= 0 and (_load8(buf, s) & mask) == text


@nb.njit(cache=True, nogil=True, inline="always")
def tag_end(buf: np.ndarray, q: int) -> int:
    """The index after ``"/>`` or ``" />`` at ``buf[q:]`` (``q`` a closing quote), or -1."""
    if q < 0:
        return -1
    w = _load8(buf, q)
    if (w & _MASK3) == _END:
        return q + 3
    if (w & _MASK4) == _SPACE_END:
        return q + 4
    return -1


@nb.njit(cache=True, nogil=True, inline="always")
def vertex(buf: np.ndarray, i: int) -> tuple[int, float, float, float]:
    """Read ``vertex x="X" y="Y" z="Z"/>`` (or ``… />``) at ``buf[i:]`` (just after the ``<``).

    Returns ``(end, x, y, z)``, ``end`` the index after the tag, or -1 when the tag is not in that
    form. The caller guarantees ``i + VERTEX_ROOM <= len(buf)``.
    """
    if _load8(buf, i) != _VERTEX_X or not _is(buf, i + 8, _MASK2, _EQ_QUOTE):
        return -1, 0.0, 0.0, 0.0
    x, q = _decimal(buf, i + 10)
    if not _is(buf, q, _MASK5, _Y):
        return -1, 0.0, 0.0, 0.0
    y, q = _decimal(buf, q + 5)
    if not _is(buf, q, _MASK5, _Z):
        return -1, 0.0, 0.0, 0.0
    z, q = _decimal(buf, q + 5)
    end = tag_end(buf, q)
    if end < 0:
        return -1, 0.0, 0.0, 0.0
    return end, x, y, z


@nb.njit(cache=True, nogil=True, inline="always")
def triangle(buf: np.ndarray, i: int) -> tuple[int, int, int, int]:
    """Read ``triangle v1="A" v2="B" v3="C"/>`` at ``buf[i:]``: ``(end, a, b, c)`` like
    :func:`vertex` (``i + TRIANGLE_ROOM <= len(buf)``)."""
    q, a, b, c = triangle_head(buf, i)
    return tag_end(buf, q), a, b, c


@nb.njit(cache=True, nogil=True, inline="always")
def triangle_head(buf: np.ndarray, i: int) -> tuple[int, int, int, int]:
    """Read ``triangle v1="A" v2="B" v3="C`` at ``buf[i:]``: ``(q, a, b, c)``, ``q`` the index of the
    closing quote of ``v3``, or -1 when the tag does not start in that form (:func:`triangle` and
    :func:`~sidecar_thumbs.mesh.xmlscan_fastprops.triangle_props` go on from there)."""
    if _load8(buf, i) != _TRIANGLE or not _is(buf, i + 8, _MASK5, _V1):
        return -1, 0, 0, 0
    a, q = _index(buf, i + 13)
    if not _is(buf, q, _MASK6, _V2):
        return -1, 0, 0, 0
    b, q = _index(buf, q + 6)
    if not _is(buf, q, _MASK6, _V3):
        return -1, 0, 0, 0
    c, q = _index(buf, q + 6)
    return q, a, b, c
