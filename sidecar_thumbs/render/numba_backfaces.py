"""Which back faces may still show, after the front faces are drawn (``kernel_numba.render``'s second pass).

A closed mesh's back faces lie behind its front faces; they can win a sample only where the front faces'
approximations (centroid splats, sliver lines) or a depth tie leave one. So the raster draws front faces
first and sets the back faces aside with their screen box and the nearest depth they can reach
(``numba_raster._reach``); then :func:`_tile_far` takes each TILE x TILE block's farthest drawn depth, and
:func:`_visible` keeps only the faces that may beat it, which the raster draws last. The buffers come out
as from one in-order pass over every face, for any soup (``tests/test_render_cull.py`` compares them).

The tests are exact because every kind of triangle (area, sub-sample, centroid splat, sliver line) writes
only samples whose index is the floor of a point in its box, give or take :data:`SLACK` for float32
rounding. JIT options and argument types: :mod:`.numba_jit`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types

from sidecar_thumbs.render.numba_jit import _IVEC, _JIT, _MAT

_SIG_VISIBLE = types.int64(_IVEC, _MAT, _MAT, _MAT, types.int64, types.int64, types.int64, types.int64)
# Back faces that may still show are found per tile of TILE x TILE samples.
TILE = 4
TILE_BITS = 2  # log2(TILE)
# How far outside its box (in samples) a face may write: a sliver's line steps along its longest edge,
# and a centroid is a float32 sum; either may round past the box by an ulp (2.4e-4 at 2048 samples).
SLACK = 1.0 / 64.0
# Back faces left by the tile test are tested at each sample they may write when their box spans at most
# FINE x FINE samples (nearly all of them).
FINE = 8


@njit(types.none(_MAT, _MAT), **_JIT)
def _tile_far(zbuf: np.ndarray, tiles: np.ndarray) -> None:
    """Per TILE x TILE block of the depth buffer, its farthest depth (EMPTY_DEPTH if any sample is empty)."""
    hs, ws = zbuf.shape
    # The minimum down each column of a band of TILE rows first (a loop over whole rows, which
    # vectorises), then across each TILE columns of it: 4x faster than walking tile by tile.
    col = np.empty(ws, dtype=np.float32)
    for ty in range(tiles.shape[0]):
        y0 = ty * TILE
        col[:] = zbuf[y0]
        for y in range(y0 + 1, min(y0 + TILE, hs)):
            for x in range(ws):
                col[x] = min(col[x], zbuf[y, x])
        for tx in range(tiles.shape[1]):
            lo = col[tx * TILE]
            for x in range(tx * TILE + 1, min(tx * TILE + TILE, ws)):
                lo = min(lo, col[x])
            tiles[ty, tx] = lo


@njit(inline="always", **_JIT)
def _hidden(tiles: np.ndarray, bx0: int, bx1: int, by0: int, by1: int, reach: float) -> bool:
    """Whether every tile of ``tiles[by0:by1 + 1, bx0:bx1 + 1]`` holds only samples nearer than ``reach``
    (so nothing a face over them writes can win)."""
    for b_y in range(by0, by1 + 1):
        for b_x in range(bx0, bx1 + 1):
            if tiles[b_y, b_x] <= reach:
                return False
    return True


@njit(_SIG_VISIBLE, **_JIT)
def _visible(
    order: np.ndarray, dbox: np.ndarray, tiles: np.ndarray, zbuf: np.ndarray, wx0: int, wy0: int, wx1: int, wy1: int
) -> int:
    """Keep, in place and in order, the back faces of ``order`` (boxes and reach in ``dbox``) that are not
    hidden by the tiles under them, nor, over at most FINE x FINE samples, at each sample they may write (``zbuf``);
    return how many. A loop of its own rather than a test at the top of the raster's: 0.61 -> 0.55 ms for
    the 44k back faces of a 100k-triangle rock, and the raster loop loses a test."""
    kept = 0
    tw, th = wx1 - wx0 - 1, wy1 - wy0 - 1
    slack = np.float32(SLACK)
    # Window coordinates plus one: every corner lies inside the window (two samples of slack), so these
    # are positive and a truncating conversion is their floor, without numba_raster._floor's fix-up for negatives
    # (the four conversions were half of this loop: 0.57 -> 0.42 ms for the rock's 43,940 back faces).
    # The extra float32 rounding of the subtraction is an ulp, far inside SLACK.
    ox, oy = np.float32(wx0 - 1), np.float32(wy0 - 1)
    for j in range(order.shape[0]):
        reach = dbox[j, 4]
        # The tiles under the samples the face may write (see the module's docstring). A margin of a whole sample, as
        # before, kept 8,547 of the 100k-triangle rock's 43,940 back faces for drawing; this keeps 6,535.
        # Shifts, not '//': the operands are never negative, and numba's floor division pays for signs.
        sx0 = max(int(dbox[j, 0] - slack - ox) - 1, 0)
        sx1 = min(int(dbox[j, 1] + slack - ox) - 1, tw)
        sy0 = max(int(dbox[j, 2] - slack - oy) - 1, 0)
        sy1 = min(int(dbox[j, 3] + slack - oy) - 1, th)
        bx0, bx1, by0, by1 = sx0 >> TILE_BITS, sx1 >> TILE_BITS, sy0 >> TILE_BITS, sy1 >> TILE_BITS
        if bx1 - bx0 <= 2 and by1 - by0 <= 2:
            # At most 3 x 3 tiles (nearly every face): three columns and rows (the middle one repeated
            # when there are fewer) cover them all, tested without a branch: a loop's exits, taken at
            # random, cost more than the repeated loads.
            bxm, bym = (bx0 + bx1) >> 1, (by0 + by1) >> 1
            hidden = (
                (tiles[by0, bx0] > reach)
                & (tiles[by0, bxm] > reach)
                & (tiles[by0, bx1] > reach)
                & (tiles[bym, bx0] > reach)
                & (tiles[bym, bxm] > reach)
                & (tiles[bym, bx1] > reach)
                & (tiles[by1, bx0] > reach)
                & (tiles[by1, bxm] > reach)
                & (tiles[by1, bx1] > reach)
            )
        else:
            hidden = _hidden(tiles, bx0, bx1, by0, by1, reach)
        if not hidden and sx1 - sx0 < FINE and sy1 - sy0 < FINE:
            # A tile with an empty sample keeps every face over it: along the silhouette, where faces are
            # seen edge-on and so many, nearly all lose every sample. Tested sample by sample, the rock's
            # kept faces go 6,535 -> 3,277 for 0.08 ms here and 0.3 ms less drawing.
            hidden = True
            for y in range(sy0, sy1 + 1):
                for x in range(sx0, sx1 + 1):
                    hidden &= zbuf[y, x] > reach
        # Written whether kept or not (the next face overwrites a dropped one): no branch on the outcome.
        # Only the reach: the raster reads no other column of a kept face's row.
        order[kept] = order[j]
        dbox[kept, 4] = reach
        kept += 0 if hidden else 1
    return kept
