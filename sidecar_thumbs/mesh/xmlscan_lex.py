"""Byte-level lexing for the numba 3MF scanners: whitespace, literals, numbers and indices.

Shared by :mod:`sidecar_thumbs.mesh.xmlscan_numba`; every function is compiled and cached.
"""

from __future__ import annotations

import numba as nb
import numpy as np

# Exact powers of ten in float64 (10**22 is the largest exactly representable).
_POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)
_EXACT_MANTISSA = 2**53


def _lit(text: bytes) -> np.ndarray:
    """A literal for the kernels' pattern arguments (see the note in :mod:`xmlscan_numba`)."""
    out = np.frombuffer(text, np.uint8).copy()
    out.setflags(write=False)
    return out


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
