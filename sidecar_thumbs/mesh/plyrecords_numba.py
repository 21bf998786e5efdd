"""numba kernels for binary PLY elements whose lists vary in length (polygons of mixed sizes).

Such records cannot be viewed as one NumPy array: where a record starts depends on every count
before it. :func:`walk` finds, in one pass, where each property's value (or list items) lies;
:func:`gather` copies those bytes into one contiguous buffer per property, which NumPy then views
with the property's type. Without numba, :mod:`sidecar_thumbs.mesh.plydata` walks with ``struct``.

Importing this module imports numba.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["NEGATIVE", "TRUNCATED", "gather", "walk"]

TRUNCATED = -1
NEGATIVE = -2


@nb.njit(cache=True, nogil=True)
def walk(
    buf: np.ndarray,
    off: int,
    count: int,
    is_list: np.ndarray,
    sizes: np.ndarray,
    item_sizes: np.ndarray,
    signed: np.ndarray,
    big: bool,
    offsets: np.ndarray,
    counts: np.ndarray,
) -> int:
    """Walk ``count`` records from ``off``.

    Args:
        is_list, sizes, item_sizes, signed: per property: a list?; the scalar's (or the count's)
            size in bytes; a list item's size; whether the count type is signed.
        offsets, counts: int64 ``(count, P)`` outputs: where each value (or first list item) lies,
            and each list's length (1 for a scalar).

    Returns:
        the offset after the last record, or :data:`TRUNCATED` / :data:`NEGATIVE` (a negative count).
    """
    n = buf.shape[0]
    for r in range(count):
        for p in range(is_list.shape[0]):
            size = sizes[p]
            if off + size > n:
                return TRUNCATED
            if not is_list[p]:
                offsets[r, p] = off
                counts[r, p] = 1
                off += size
                continue
            v = 0
            if big:
                for j in range(size):
                    v = v * 256 + buf[off + j]
            else:
                for j in range(size - 1, -1, -1):
                    v = v * 256 + buf[off + j]
            if signed[p] and v >= 1 << (8 * size - 1):
                return NEGATIVE
            off += size
            end = off + v * item_sizes[p]
            if end > n:
                return TRUNCATED
            offsets[r, p] = off
            counts[r, p] = v
            off = end
    return off


@nb.njit(cache=True, nogil=True)
def gather(buf: np.ndarray, offsets: np.ndarray, counts: np.ndarray, item_size: int, out: np.ndarray) -> None:
    """Copy ``counts[r] * item_size`` bytes from ``offsets[r]`` for every record into ``out``, in order."""
    k = 0
    for r in range(offsets.shape[0]):
        size = counts[r] * item_size
        start = offsets[r]
        for j in range(size):
            out[k + j] = buf[start + j]
        k += size
