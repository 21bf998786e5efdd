"""Slicer paint strings: which filament covers most of a painted triangle.

PrusaSlicer (``slic3rpe:mmu_segmentation``) and Bambu Studio / OrcaSlicer (``paint_color``) store a
painted triangle as its subdivision tree, serialised by PrusaSlicer's ``TriangleSelector``: hex
digits read from the last to the first, each a 4-bit code, depth first. The two low bits of a code are
the number of split sides (0: a leaf; 1, 2, 3: two, three or four children follow); a leaf's state is
the two high bits, or, when both are set, 3 plus the next code. State 0 is "not painted" (the
object's own filament), state n is filament n.

A thumbnail cannot show sub-triangle detail at 256 px, so each triangle takes its dominant state,
each child weighing an equal share of its parent's area.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["MAX_PAINT_CODES", "dominant_state", "dominant_states"]

MAX_PAINT_CODES = 65536  # a deeper tree than any slicer writes: stop reading, keep what was read


def _codes(text: str) -> list[int] | None:
    try:
        return [int(ch, 16) for ch in reversed(text.strip())]
    except ValueError:
        return None


@lru_cache(maxsize=4096)  # painted triangles mostly share a handful of strings ("4", "8", "0C")
def dominant_state(text: str) -> int:
    """The state covering most of the triangle (0 = not painted); 0 for an unreadable string."""
    codes = _codes(text[:MAX_PAINT_CODES])
    if not codes:
        return 0
    weights: dict[int, float] = {}
    pos = 0
    # Each stack entry is the weight of a subtree still to be read (depth first, in order).
    stack = [1.0]
    while stack and pos < len(codes):
        weight = stack.pop()
        code = codes[pos]
        pos += 1
        splits = code & 0b11
        if splits:
            children = splits + 1
            stack.extend([weight / children] * children)
            continue
        state = code >> 2
        if state == 3:
            if pos >= len(codes):
                break
            state = 3 + codes[pos]
            pos += 1
        weights[state] = weights.get(state, 0.0) + weight
    if not weights:
        return 0
    return max(weights.items(), key=lambda kv: (kv[1], -kv[0]))[0]


def dominant_states(paint: dict[int, str]) -> tuple[np.ndarray, np.ndarray]:
    """``(triangles, states)`` int64 arrays of a part's paint (triangle index → paint string): each
    distinct string decoded once, however many triangles share it (a painted part holds thousands of
    triangles and a handful of strings)."""
    triangles = np.fromiter(paint.keys(), np.int64, len(paint))
    lookup = {text: dominant_state(text) for text in set(paint.values())}
    if len(lookup) == 1:  # one string for every painted triangle (a part painted in one filament)
        return triangles, np.full(len(paint), next(iter(lookup.values())), np.int64)
    states = np.fromiter(map(lookup.__getitem__, paint.values()), np.int64, len(paint))  # no Python frame a triangle
    return triangles, states
