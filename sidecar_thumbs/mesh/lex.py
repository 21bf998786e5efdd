"""Byte-level lexing shared by the scanners of 3MF XML, OBJ and G-code: whitespace, literals, numbers.

One number grammar for all three (``[+-] (digits [. digits*] | . digits) [(e|E) [+-] digits]``, the
exponent left out for G-code, where an ``E`` is the next word) and one rounding rule: up to 18
significant digits are kept exactly (further ones only count for the exponent); when the mantissa fits
53 bits and the decimal exponent is at most 22 in magnitude the float64 result is correctly rounded (one
IEEE operation on exact operands), which is every coordinate a 3D tool writes; beyond that it is within a
few ulps of float64, far below the float32 the result is stored in.

Compiled through :mod:`sidecar_thumbs.mesh.jit` (plain Python without numba, which the G-code reader
needs): white space and numbers are inlined into their callers (a call per byte costs more than the
work), :func:`find` and :func:`startswith` are not (inlined, they made the 3MF scanner 2 % slower).
The kernels of other files call these: :mod:`sidecar_thumbs.numba_cache` puts the compiled code in a
folder named by a hash of all kernel sources, so a change here recompiles its callers too.
"""

from __future__ import annotations

import numpy as np

from sidecar_thumbs.mesh.jit import inline, kernel

__all__ = [
    "BLANKS",
    "NO_SPACE",
    "XML_SPACE",
    "decimal",
    "find",
    "is_exact",
    "is_space",
    "number",
    "skip",
    "startswith",
    "to_float",
]

# A uint8 array when compiled; plain Python (the G-code reader without numba) may pass bytes.
Buffer = np.ndarray | bytes

# Exact powers of ten in float64 (10**22 is the largest exactly representable).
POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)
EXACT_MANTISSA = 2**53

# What white space :func:`skip` (and :func:`number`, around the number) passes over.
NO_SPACE = 0  # none (OBJ: the caller splits on its own blanks; a newline ends a statement)
BLANKS = 1  # spaces and tabs (inside a G-code line)
XML_SPACE = 2  # spaces, tabs, LF and CR (XML attribute values)


@inline
def is_space(c: int) -> bool:
    """XML white space: space, tab, LF, CR."""
    return c == 32 or c == 9 or c == 10 or c == 13


@inline
def skip(buf: Buffer, s: int, e: int, spaces: int) -> int:
    """Past the white space of kind ``spaces`` (:data:`NO_SPACE`, :data:`BLANKS`, :data:`XML_SPACE`)."""
    if spaces == XML_SPACE:
        while s < e and is_space(buf[s]):
            s += 1
    elif spaces == BLANKS:
        while s < e and (buf[s] == 32 or buf[s] == 9):
            s += 1
    return s


@kernel
def find(buf: Buffer, start: int, pattern: Buffer) -> int:
    """The first index >= ``start`` where ``pattern`` (a small literal) stands, or -1."""
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


@kernel
def startswith(buf: Buffer, start: int, pattern: Buffer) -> bool:
    if start + len(pattern) > len(buf):
        return False
    for j in range(len(pattern)):  # noqa: SIM110 (numba compiles loops, not generators)
        if buf[start + j] != pattern[j]:
            return False
    return True


@inline
def decimal(buf: Buffer, s: int, e: int, exponent: bool, spaces: int) -> tuple[bool, int, int, int, bool]:
    """:func:`number` before the conversion: ``(negative, mantissa, exp10, stop, ok)``, the value being
    ``±mantissa * 10**exp10`` (up to 18 significant digits kept). For a reader that must know whether
    :func:`to_float` rounds it exactly as Python's ``float()`` does (:func:`is_exact`)."""
    s = skip(buf, s, e, spaces)
    neg = False
    if s < e and (buf[s] == 45 or buf[s] == 43):  # - +
        neg = buf[s] == 45
        s += 1
    mant = 0
    ndig = 0  # significant digits kept in mant: 18 always fit an int64 (19 did not: 9.8e18 wrapped negative)
    exp10 = 0
    seen = False
    fraction = 0  # 1 after the decimal point
    while s < e:  # integer and fraction digits in one loop
        c = buf[s]
        if 48 <= c <= 57:
            seen = True
            if ndig < 18:
                mant = mant * 10 + (c - 48)
                if mant != 0:
                    ndig += 1
                exp10 -= fraction
            else:
                exp10 += 1 - fraction  # an integer digit past the 18th still counts; a decimal does not
        elif c == 46 and fraction == 0:  # .
            fraction = 1
        else:
            break
        s += 1
    if not seen:
        return neg, 0, 0, s, False
    if exponent and s < e and (buf[s] == 101 or buf[s] == 69):  # e E
        s += 1
        eneg = False
        if s < e and (buf[s] == 45 or buf[s] == 43):
            eneg = buf[s] == 45
            s += 1
        if s >= e or not (48 <= buf[s] <= 57):
            return neg, 0, 0, s, False
        ev = 0
        while s < e and 48 <= buf[s] <= 57:
            if ev < 100000:
                ev = ev * 10 + (buf[s] - 48)
            s += 1
        exp10 += -ev if eneg else ev
    s = skip(buf, s, e, spaces)
    return neg, mant, exp10, s, True


@inline
def is_exact(mant: int, exp10: int) -> bool:
    """Whether :func:`to_float` gives the correctly rounded float64 (as ``float()`` does) for these."""
    return mant == 0 or (mant < EXACT_MANTISSA and -22 <= exp10 <= 22)


@inline
def to_float(neg: bool, mant: int, exp10: int) -> float:
    """``±mant * 10**exp10`` as float64: correctly rounded when :func:`is_exact`, else within a few ulps."""
    if mant == 0:
        value = 0.0
    elif mant < EXACT_MANTISSA and -22 <= exp10 <= 22:
        value = mant * POW10[exp10] if exp10 >= 0 else mant / POW10[-exp10]
    elif exp10 > 308:  # inf whatever the mantissa (and Python's ``10.0 ** 309`` would raise)
        value = np.inf
    elif exp10 < -400:
        value = 0.0
    else:
        value = float(mant) * 10.0**exp10
    return -value if neg else value


@inline
def number(buf: Buffer, s: int, e: int, exponent: bool, spaces: int) -> tuple[float, int, bool]:
    """Parse ``[space] number [space]`` (with an exponent part when ``exponent``; white space of kind
    ``spaces``, see :func:`skip`) at ``buf[s:]``, stopping at the first byte that cannot continue it
    (at most ``e``). Returns ``(value, stop, ok)``; the caller checks what follows ``stop`` (a closing
    quote, a blank), which lets a scanner parse a value in a single pass.

    The white space is skipped in here, not by the caller: measured, a caller's loop after the inlined
    call made the 3MF number parse 30 % slower."""
    neg, mant, exp10, s, ok = decimal(buf, s, e, exponent, spaces)
    if not ok:
        return 0.0, s, False
    return to_float(neg, mant, exp10), s, True
