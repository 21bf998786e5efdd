"""Cutting byte ranges out of a document: what is left is what the XML parser reads (3MF and AMF cut
their bulk of vertices and triangles out once NumPy or numba has read it)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["cut_out"]


def cut_out(data: bytes, ranges: Iterable[tuple[int, int]]) -> bytes:
    """``data`` without ``data[start:end]`` for each range (sorted, not overlapping), in one join."""
    pieces = []
    pos = 0
    for start, end in ranges:
        pieces.append(data[pos:start])
        pos = end
    pieces.append(data[pos:])
    return b"".join(pieces)
