"""Byte-level lexing for the numba 3MF scanners: whitespace, literals, numbers and indices.

Used by :mod:`sidecar_thumbs.mesh.xmlscan_numba`; every function is compiled and cached. White space,
literals and the number grammar are :mod:`sidecar_thumbs.mesh.lex`'s, shared with the OBJ and G-code
scanners; this module keeps the names the 3MF kernel imports.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from sidecar_thumbs.mesh.lex import XML_SPACE, number, skip
from sidecar_thumbs.mesh.lex import find as _find
from sidecar_thumbs.mesh.lex import is_space as _is_space
from sidecar_thumbs.mesh.lex import startswith as _startswith

__all__ = ["_find", "_index", "_is_space", "_lit", "_named", "_number", "_startswith"]


def _lit(text: bytes) -> np.ndarray:
    """A literal for the kernels' pattern arguments (see the note in :mod:`xmlscan_numba`)."""
    out = np.frombuffer(text, np.uint8).copy()
    out.setflags(write=False)
    return out


@nb.njit(cache=True, nogil=True)
def _named(buf: np.ndarray, start: int, length: int, name: bytes) -> bool:
    return length == len(name) and _startswith(buf, start, name)


@nb.njit(cache=True, nogil=True)
def _number(buf: np.ndarray, s: int, e: int) -> tuple[float, int, bool]:
    """Parse ``[ws] number [ws]`` (:func:`sidecar_thumbs.mesh.lex.number`) from buf[s:e].

    Stops at the first byte that cannot continue the number (at most ``e``) and returns
    ``(value, stop, ok)``; the caller checks that ``stop`` is where the value must end (the
    closing quote), which is what lets the kernel parse an attribute value in a single pass.
    """
    return number(buf, s, e, True, XML_SPACE)


@nb.njit(cache=True, nogil=True)
def _index(buf: np.ndarray, s: int, e: int) -> tuple[int, int, bool]:
    """Parse ``[ws] [+] digits [ws]`` (an XSD nonNegativeInteger below 2**31) from buf[s:e];
    returns ``(value, stop, ok)`` like :func:`_number`."""
    s = skip(buf, s, e, XML_SPACE)
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
    return v, skip(buf, s, e, XML_SPACE), True
