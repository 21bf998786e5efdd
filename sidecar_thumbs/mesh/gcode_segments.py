"""The extrusion segments a G-code scan emits, and the machine state it carries between calls.

A run of collinear segments is merged into one, and the segments are kept evenly sampled in a fixed
buffer: when it fills up, every other layer is dropped and only every 2nd (then 4th, ...) later layer
is kept (or, failing that, every other segment), so memory stays bounded for any file and the picture
still covers the whole print. Arcs (G2/G3, I/J or R form) become straight pieces of at most 7.5 degrees.

Written once in the subset numba compiles (see :mod:`sidecar_thumbs.mesh.jit`); called by
:mod:`sidecar_thumbs.mesh.gcode_kernel`'s scanner.
"""

from __future__ import annotations

import math

import numpy as np

from sidecar_thumbs.mesh.jit import kernel

__all__ = [
    "MAX_COORD",
    "SEGMENT_COLUMNS",
    "STATE_SIZE",
    "S_DROPPED",
    "S_EXTRUDING",
    "S_E_SET",
    "S_E_WORDS",
    "S_KEPT",
    "S_LAYER_STRIDE",
    "S_STRIDE",
    "S_SUM_E",
    "S_SUM_LEN",
    "arc",
    "arc_r",
    "close",
    "flush",
    "new_state",
    "segment",
]

# Slots of the float64 state array that carries the machine across calls (bgcode is scanned in blocks).
S_X, S_Y, S_Z, S_E = 0, 1, 2, 3
S_ABS_XYZ = 4  # 1: G90, 0: G91
S_ABS_E = 5  # 1: M82 (or G90), 0: M83 (or G91)
S_SCALE = 6  # 1 for mm (G21), 25.4 for inches (G20)
S_MOTION = 7  # last motion G code 0..3, or -1 before any
S_KEPT = 8  # segments stored in the buffer
S_STRIDE = 9  # keep every stride-th segment of the kept layers
S_SEEN = 10  # segments emitted (after merging), kept or not
S_SUM_E = 11  # filament length of all extrusion segments
S_SUM_LEN = 12  # their path length
S_OPEN = 13  # 1 while a run of collinear segments is pending
S_RUN = 14  # 14..19: the pending run's start and end xyz
S_DROPPED = 20  # extruding moves dropped for absurd or non-finite coordinates
S_E_SET = 21  # 1 once the file chose the E mode itself (M82, M83, G90 or G91)
S_E_WORDS = 22  # moves with a positive E word
S_EXTRUDING = 23  # moves that extruded (before merging)
S_HIDDEN = 24  # 1 inside a skirt, brim or wipe tower (per the slicer's feature comments)
S_LAYER = 25  # index of the current layer (print height), -1 before the first extrusion
S_LAYER_Z = 26  # its height
S_LAYER_STRIDE = 27  # keep every stride-th layer
STATE_SIZE = 32

SEGMENT_COLUMNS = 7  # start xyz, end xyz, layer index

# No printer is a kilometre wide: coordinates beyond this are garbage that would shrink the picture.
MAX_COORD = 1.0e6
ARC_PIECE = 2.0 * math.pi / 48.0


def new_state(relative_e: bool = False) -> np.ndarray:
    """The state of a freshly reset printer: at 0,0,0, absolute axes, absolute E (unless
    ``relative_e``), millimetres."""
    state = np.zeros(STATE_SIZE, np.float64)
    state[S_ABS_XYZ] = 1.0
    state[S_ABS_E] = 0.0 if relative_e else 1.0
    state[S_SCALE] = 1.0
    state[S_MOTION] = -1.0
    state[S_STRIDE] = 1.0
    state[S_LAYER_STRIDE] = 1.0
    state[S_LAYER] = -1.0
    return state


@kernel
def emit(state, segs, ax, ay, az, bx, by, bz):  # type: ignore[no-untyped-def]
    """Store a segment (and its layer) if the sampling keeps it; compact the buffer when full."""
    if state[S_LAYER] < 0.0 or abs(az - state[S_LAYER_Z]) > 1e-4:
        state[S_LAYER] += 1.0  # a new print height: the next layer (or the next object's first)
        state[S_LAYER_Z] = az
    layer = int(state[S_LAYER])
    if layer % int(state[S_LAYER_STRIDE]) != 0:
        return
    seen = int(state[S_SEEN])
    state[S_SEEN] = seen + 1
    if seen % int(state[S_STRIDE]) != 0:
        return
    k = int(state[S_KEPT])
    segs[k, 0] = ax
    segs[k, 1] = ay
    segs[k, 2] = az
    segs[k, 3] = bx
    segs[k, 4] = by
    segs[k, 5] = bz
    segs[k, 6] = layer
    state[S_KEPT] = k + 1
    if k + 1 == segs.shape[0]:
        compact(state, segs)


@kernel
def compact(state, segs):  # type: ignore[no-untyped-def]
    """Free at least a quarter of the kept segments. Whole layers go first (every other kept layer;
    the picture draws each remaining layer as tall as the ones it stands for, so the object stays
    solid); only when that would keep too few or too many (one huge layer, or vase mode where every
    segment climbs) does every other segment go."""
    k = int(state[S_KEPT])
    lstride = int(state[S_LAYER_STRIDE])
    count = 0
    for i in range(k):
        if int(segs[i, 6]) % (2 * lstride) == 0:
            count += 1
    j = 0
    if k // 4 <= count <= (3 * k) // 4:
        for i in range(k):
            if int(segs[i, 6]) % (2 * lstride) == 0:
                for c in range(7):
                    segs[j, c] = segs[i, c]
                j += 1
        state[S_LAYER_STRIDE] = 2 * lstride
    else:
        for i in range(0, k, 2):
            for c in range(7):
                segs[j, c] = segs[i, c]
            j += 1
        state[S_STRIDE] = 2 * state[S_STRIDE]
    state[S_KEPT] = j


@kernel
def close(state, segs):  # type: ignore[no-untyped-def]
    if state[S_OPEN] != 0.0:
        r = S_RUN
        emit(state, segs, state[r], state[r + 1], state[r + 2], state[r + 3], state[r + 4], state[r + 5])
        state[S_OPEN] = 0.0


@kernel
def segment(state, segs, ax, ay, az, bx, by, bz, de):  # type: ignore[no-untyped-def]
    """One straight move from a to b that feeds ``de`` of filament."""
    dx = bx - ax
    dy = by - ay
    dz = bz - az
    if not (de > 1e-12 and dx * dx + dy * dy > 1e-12):
        close(state, segs)  # travel, retract, wipe or Z hop: the run of extrusion ends
        return
    if not (
        abs(ax) < MAX_COORD
        and abs(ay) < MAX_COORD
        and abs(az) < MAX_COORD
        and abs(bx) < MAX_COORD
        and abs(by) < MAX_COORD
        and abs(bz) < MAX_COORD
    ):  # written so that NaN fails too
        state[S_DROPPED] += 1.0
        close(state, segs)
        return
    length = math.sqrt(dx * dx + dy * dy + dz * dz)
    state[S_EXTRUDING] += 1.0
    state[S_SUM_E] += de
    state[S_SUM_LEN] += length
    r = S_RUN
    if state[S_OPEN] != 0.0 and state[r + 3] == ax and state[r + 4] == ay and state[r + 5] == az:
        px = state[r + 3] - state[r]
        py = state[r + 4] - state[r + 1]
        pz = state[r + 5] - state[r + 2]
        cx = py * dz - pz * dy
        cy = pz * dx - px * dz
        cz = px * dy - py * dx
        plen = math.sqrt(px * px + py * py + pz * pz)
        if px * dx + py * dy + pz * dz > 0.0 and math.sqrt(cx * cx + cy * cy + cz * cz) <= 1e-3 * plen * length:
            state[r + 3] = bx  # straight on: lengthen the pending run
            state[r + 4] = by
            state[r + 5] = bz
            return
    close(state, segs)
    state[r] = ax
    state[r + 1] = ay
    state[r + 2] = az
    state[r + 3] = bx
    state[r + 4] = by
    state[r + 5] = bz
    state[S_OPEN] = 1.0


@kernel
def arc(state, segs, x0, y0, z0, x1, y1, z1, de, cw, cx, cy):  # type: ignore[no-untyped-def]
    """An arc around (cx, cy) from the start to the end point, as straight pieces."""
    r = math.hypot(x0 - cx, y0 - cy)
    a0 = math.atan2(y0 - cy, x0 - cx)
    sweep = math.atan2(y1 - cy, x1 - cx) - a0
    if cw:
        if sweep >= 0.0:
            sweep -= 2.0 * math.pi  # also a full circle when the end is the start
    elif sweep <= 0.0:
        sweep += 2.0 * math.pi
    if not (math.isfinite(r) and math.isfinite(sweep) and r < MAX_COORD):
        segment(state, segs, x0, y0, z0, x1, y1, z1, de)
        return
    pieces = min(48, int(math.ceil(abs(sweep) / ARC_PIECE)))  # noqa: RUF046 (numba typing)
    # Fewer pieces where most would be dropped anyway (every k-th segment kept, or a layer not kept):
    # a file of nothing but full circles then costs about what straight lines cost.
    coarse = state[S_STRIDE]
    layer = int(state[S_LAYER])
    if z0 == z1 == state[S_LAYER_Z] and layer >= 0 and layer % int(state[S_LAYER_STRIDE]) != 0:
        coarse = 48.0
    pieces = max(1, int(math.ceil(pieces / coarse)))  # noqa: RUF046 (numba typing)
    px, py, pz = x0, y0, z0
    for k in range(1, pieces + 1):
        if k == pieces:
            qx, qy, qz = x1, y1, z1
        else:
            t = k / pieces
            a = a0 + sweep * t
            qx = cx + r * math.cos(a)
            qy = cy + r * math.sin(a)
            qz = z0 + (z1 - z0) * t
        segment(state, segs, px, py, pz, qx, qy, qz, de / pieces)
        px, py, pz = qx, qy, qz


@kernel
def arc_r(state, segs, x0, y0, z0, x1, y1, z1, de, cw, radius):  # type: ignore[no-untyped-def]
    """The R form: the centre lies on the perpendicular bisector of the chord, on the side that
    makes the short arc for R > 0 and the long one for R < 0 (as Marlin reads it)."""
    dx = x1 - x0
    dy = y1 - y0
    d = math.hypot(dx, dy)
    if not (d > 1e-9 and math.isfinite(d) and math.isfinite(radius)):
        segment(state, segs, x0, y0, z0, x1, y1, z1, de)
        return
    h2 = radius * radius - 0.25 * d * d
    h = math.sqrt(h2) if h2 > 0.0 else 0.0  # a radius shorter than half the chord: a half circle
    side = -1.0 if cw != (radius < 0.0) else 1.0
    cx = 0.5 * (x0 + x1) - side * h * dy / d
    cy = 0.5 * (y0 + y1) + side * h * dx / d
    arc(state, segs, x0, y0, z0, x1, y1, z1, de, cw, cx, cy)


@kernel
def flush(state, segs):  # type: ignore[no-untyped-def]
    """End the pending run at the end of the file."""
    close(state, segs)
