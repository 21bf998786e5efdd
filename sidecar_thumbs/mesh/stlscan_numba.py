"""The numba kernel of the ASCII STL reader's plain path (:func:`sidecar_thumbs.mesh.stl.parse_ascii_stl`).

A plain file is a run of facets of exactly 21 words each (``facet normal a b c outer loop``, three
``vertex x y z``, ``endloop endfacet``), keywords in any case, words separated by any ASCII white
space (what ``bytes.split`` splits on). This walks the bytes once, checking the keywords in place and
parsing the nine coordinates straight into float32: a 30k-facet file in 13 ms, where splitting the text into
words and converting them with numpy took 83 ms, most of the time of an ASCII STL's thumbnail.

Each coordinate is the float32 of Python's ``float()`` of its text, as the facet expression converts it, so
the triangles are the same to the bit. A number of up to 15 digits with a small exponent (what most
exporters write) is converted exactly (:func:`~sidecar_thumbs.mesh.lex.is_exact`). A longer one (OpenSCAD
writes each float32 with up to 17 digits) is converted within a few ulps of float64, which gives the same
float32 unless it lies within those ulps of a float32 rounding boundary; such a number is left for the
caller to convert with numpy: its place and text are returned.

Importing this module imports numba; without it :mod:`stl` reads every ASCII file with the expression.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from sidecar_thumbs.mesh.lex import NO_SPACE, decimal, is_exact, to_float

__all__ = ["DONE", "FULL", "NOT_PLAIN", "scan_facets"]

DONE = 0  # the facets ended: what follows (from ``stop``) is not a facet
FULL = 1  # the output is full: call again from ``stop``
NOT_PLAIN = 2  # a facet that is not plain (or a coordinate that is not a number): use the expression

_FACET = b"facet"
_NORMAL = b"normal"
_OUTER = b"outer"
_LOOP = b"loop"
_VERTEX = b"vertex"
_ENDLOOP = b"endloop"
_ENDFACET = b"endfacet"


@nb.njit(cache=True, nogil=True, inline="always")
def _space(c: int) -> bool:
    """ASCII white space, as ``bytes.split()`` has it: space, tab, LF, VT, FF, CR."""
    return c == 32 or 9 <= c <= 13


@nb.njit(cache=True, nogil=True, inline="always")
def _skip(buf: np.ndarray, i: int, n: int) -> int:
    while i < n and _space(buf[i]):
        i += 1
    return i


@nb.njit(cache=True, nogil=True)  # not inlined: its 7 call sites then took 4.7 s to compile, not 2.6 s
def _word(buf: np.ndarray, i: int, n: int, word: bytes) -> int:
    """Past white space, then ``word`` (lower-case letters) in any case followed by white space or the
    end: the index after it, or -1. (A call is no slower than the inlined code: 30k facets 15 -> 13 ms.)"""
    i = _skip(buf, i, n)
    m = len(word)
    if i + m > n:
        return -1
    for j in range(m):
        # A letter's two cases differ in bit 0x20 only, and no other byte maps to a letter with it set.
        if buf[i + j] | 0x20 != word[j]:
            return -1
    i += m
    if i < n and not _space(buf[i]):
        return -1
    return i


@nb.njit(cache=True, nogil=True, inline="always")
def _any_word(buf: np.ndarray, i: int, n: int) -> int:
    """Past white space and one word of anything: the index after it, or -1 at the end."""
    i = _skip(buf, i, n)
    if i >= n:
        return -1
    while i < n and not _space(buf[i]):
        i += 1
    return i


# How far lex.to_float's float64 may be from the correctly rounded one when it is not exact: the mantissa's
# and the power's roundings and their product, a few ulps (2**-52 each); 2**-49 is 8 of them.
_NEAR = 2.0**-49
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@nb.njit(cache=True, nogil=True)
def _float32_of_near(value: float) -> tuple[np.float32, bool]:
    """``value`` (within a few ulps of the correctly rounded float64 of a number) as float32, and whether the
    correctly rounded float64 gives that float32 too: true when no float32 rounding boundary (the midpoint
    between two neighbouring float32s, exact in float64) lies within the error of ``value``. Only a number
    within ~2**-49 of such a midpoint (a float32 written with 17 digits is never one) is left to numpy."""
    single = np.float32(value)
    if not abs(value) < _FLOAT32_MAX:
        return single, False  # at the overflow boundary or beyond (or NaN): numpy decides
    here = np.float64(single)
    below = np.float64(np.nextafter(single, np.float32(-np.inf)))
    above = np.float64(np.nextafter(single, np.float32(np.inf)))
    margin = abs(value) * _NEAR
    return single, bool(value - (here + below) * 0.5 > margin and (here + above) * 0.5 - value > margin)


@nb.njit(cache=True, nogil=True)
def scan_facets(buf, start, out, slow):  # type: ignore[no-untyped-def]
    """Read plain facets from ``buf[start:]`` into ``out`` (float32 ``(K, 9)``) until one does not start.

    Returns ``(status, stop, count, nslow)``: :data:`DONE` when the next word is not ``facet``
    (``stop`` is where that word's white space begins), :data:`FULL` when ``out`` holds ``K`` facets
    (call again from ``stop``), :data:`NOT_PLAIN` when a facet breaks the plain form; ``count`` facets
    were read. Coordinates that are not exact here are ``slow[:nslow]`` (int64 ``(9K, 3)``: the flat
    index in ``out``, and the token's start and end in ``buf``), their ``out`` values to be replaced.
    """
    n = len(buf)
    i = start
    count = 0
    nslow = 0
    while count < out.shape[0]:
        j = _word(buf, i, n, _FACET)
        if j < 0:
            return DONE, i, count, nslow
        j = _word(buf, j, n, _NORMAL)
        for _ in range(3):  # the normal's three words: any (the renderer computes its own normals)
            if j >= 0:
                j = _any_word(buf, j, n)
        if j >= 0:
            j = _word(buf, j, n, _OUTER)
        if j >= 0:
            j = _word(buf, j, n, _LOOP)
        for k in range(9):
            if j < 0:
                break
            if k % 3 == 0:
                j = _word(buf, j, n, _VERTEX)
                if j < 0:
                    break
            t = _skip(buf, j, n)
            neg, mant, exp10, stop, ok = decimal(buf, t, n, True, NO_SPACE)
            if not ok or (stop < n and not _space(buf[stop])):
                j = -1
                break
            value = to_float(neg, mant, exp10)
            if is_exact(mant, exp10):
                out[count, k] = np.float32(value)
            else:
                single, alike = _float32_of_near(value)
                out[count, k] = single
                if not alike:
                    slow[nslow, 0] = count * 9 + k
                    slow[nslow, 1] = t
                    slow[nslow, 2] = stop
                    nslow += 1
            j = stop
        if j >= 0:
            j = _word(buf, j, n, _ENDLOOP)
        if j >= 0:
            j = _word(buf, j, n, _ENDFACET)
        if j < 0:
            return NOT_PLAIN, i, count, nslow
        count += 1
        i = j
    return FULL, i, count, nslow
