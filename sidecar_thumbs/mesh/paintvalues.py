"""A slicer project's paint values (``paint_color="…"``), gathered while a 3MF part is scanned in chunks.

A painted project has a value for thousands of triangles, nearly all a few bytes long and few distinct
("8", "4C3"). The values live in text that is dropped after each chunk, so each chunk hands over its
painted triangles and the byte ranges of their values; a slice and a decode for each cost ~0.3 us, and
sorting out each chunk's distinct values in NumPy cost ~0.2 ms a chunk, a fifth of a Bambu Studio
project's thumbnail. Here a value of up to seven bytes becomes a key (its bytes and length in one uint64)
as its chunk goes by, longer ones their text; the keys of the whole part are sorted out once at the end
and each distinct one decoded once.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PaintValues"]

_SHORT = 7  # bytes a key holds; the eighth is the length
_LONG = np.uint64(0xFFFF_FFFF_FFFF_FFFF)  # a longer value: its text is kept aside
_AT = np.arange(_SHORT)
_SHIFTS = (8 * _AT).astype(np.uint64)


class PaintValues:
    """Triangle index → paint value text, gathered chunk by chunk."""

    def __init__(self) -> None:
        self._triangles: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []
        self._long: dict[int, str] = {}

    def add(self, window: bytes, triangles: np.ndarray, ranges: np.ndarray) -> None:
        """The values of ``triangles`` at byte ranges ``(start, end)`` of ``window`` (rows of ``ranges``)."""
        if len(ranges) == 0:
            return
        starts, ends = ranges[:, 0], ranges[:, 1]
        lengths = ends - starts
        buf = np.frombuffer(window, np.uint8)
        raw = buf[np.minimum(starts[:, None] + _AT, len(buf) - 1)].astype(np.uint64)
        raw[lengths[:, None] <= _AT] = 0
        keys = (raw << _SHIFTS).sum(axis=1, dtype=np.uint64) | (lengths.astype(np.uint64) << np.uint64(56))
        long = lengths > _SHORT
        if long.any():
            keys[long] = _LONG
            for k in np.flatnonzero(long).tolist():
                self._long[int(triangles[k])] = window[int(starts[k]) : int(ends[k])].decode("ascii", "replace")
        self._triangles.append(np.array(triangles, dtype=np.int64))
        self._keys.append(keys)

    def result(self) -> dict[int, str]:
        """Every value added, in the order added."""
        if not self._triangles:
            return {}
        triangles = np.concatenate(self._triangles)
        distinct, inverse = np.unique(np.concatenate(self._keys), return_inverse=True)
        texts = np.array([_text(k) for k in distinct.tolist()], dtype=object)
        paint = dict(zip(triangles.tolist(), texts[inverse.reshape(-1)].tolist(), strict=True))
        paint.update(self._long)  # in place: a dict keeps a key's first position
        return paint


def _text(key: int) -> str:
    if key == int(_LONG):
        return ""  # replaced by the kept text
    n = key >> 56
    return (key & ((1 << 56) - 1)).to_bytes(_SHORT, "little")[:n].decode("ascii", "replace")
