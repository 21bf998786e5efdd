"""The G-code scanner: one pass over the bytes, keeping the moves that extrude.

It reads the words of each line itself (no line splitting in Python, which costs ~1 µs a line): a
letter and a number, with or without spaces between words (``G1X5Y.5E.02`` as MeatPack writes it),
comments after ``;``, ``#`` or ``*`` (a checksum) and in parentheses skipped, and any other text
(Klipper's ``EXCLUDE_OBJECT_START NAME=...``, ``M117 messages``) ending the line's words. It keeps the
machine state the way Marlin and Klipper do: G90/G91 absolute or relative axes (and E with them),
M82/M83 absolute or relative E, G92 resets, G28 homing, G20/G21 inches or millimetres, modal motion
(a line of bare coordinates repeats the last G0-G3), and G2/G3 arcs in both the I/J and the R form
(split into pieces of at most 7.5 degrees, helical Z and E shared out along the pieces).

Every move whose E grows and whose nozzle moves sideways is an extrusion segment. A run of collinear
segments is merged into one, and the segments are kept evenly sampled in a fixed buffer: when it fills
up, every other layer is dropped and only every 2nd (then 4th, ...) later layer is kept (or, failing
that, every other segment), so memory stays bounded for any file and the picture still covers the
whole print.

Written once in the subset numba compiles (see :mod:`sidecar_thumbs.mesh.jit`); ``buf`` is a uint8
array when compiled and may be ``bytes`` otherwise. One module on purpose, although it is long:
numba's on-disk cache of a function does not notice changes to the functions it calls in *other*
files (a stale ``scan`` kept running old arc code here), so the whole kernel lives in one file.
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
    "flush",
    "new_state",
    "scan",
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


_POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)


@kernel
def _number(buf, s, n):  # type: ignore[no-untyped-def]
    """``(value, stop, ok)`` of ``[spaces] [+-] digits [. digits]`` at ``buf[s:]`` (no exponent: in
    G-code an ``E`` is the next word). Decimals past the 22nd are ignored; a huge integer part
    becomes inf, which the segment filter drops."""
    while s < n and (buf[s] == 32 or buf[s] == 9):
        s += 1
    neg = False
    if s < n and (buf[s] == 45 or buf[s] == 43):
        neg = buf[s] == 45
        s += 1
    mant = 0.0
    dec = 0
    seen = False
    while s < n and 48 <= buf[s] <= 57:
        mant = mant * 10.0 + (buf[s] - 48)
        seen = True
        s += 1
    if s < n and buf[s] == 46:
        s += 1
        while s < n and 48 <= buf[s] <= 57:
            if dec < 22:
                mant = mant * 10.0 + (buf[s] - 48)
                dec += 1
            seen = True
            s += 1
    if not seen:
        return 0.0, s, False
    value = mant / _POW10[dec]
    return (-value if neg else value), s, True


@kernel
def _imatch(buf, i, n, word):  # type: ignore[no-untyped-def]
    """Whether ``buf[i:]`` starts with ``word`` (lower case letters, digits, space, ``-`` or ``:``),
    ignoring case."""
    if i + len(word) > n:
        return False
    for j in range(len(word)):  # noqa: SIM110 (numba compiles loops, not generators)
        if (buf[i + j] | 32) != word[j]:
            return False
    return True


@kernel
def _feature(buf, i, n):  # type: ignore[no-untyped-def]
    """For a comment at ``buf[i] == ';'``: -1 if it does not name a feature type, else 1 if the
    feature is a skirt, brim or wipe/prime tower (PrusaSlicer ``;TYPE:Skirt/Brim``, ``;TYPE:Wipe
    tower``; Cura ``;TYPE:SKIRT``; OrcaSlicer and Bambu ``; FEATURE: Prime tower``; Simplify3D
    ``; feature prime pillar``), 0 otherwise.
    Those are left out of the picture, as the slicers' own previews leave them out."""
    i += 1
    while i < n and (buf[i] == 32 or buf[i] == 9):
        i += 1
    if _imatch(buf, i, n, b"type:"):
        i += 5
    elif _imatch(buf, i, n, b"feature:") or _imatch(buf, i, n, b"feature "):  # Simplify3D: "; feature skirt"
        i += 8
    else:
        return -1
    while i < n and (buf[i] == 32 or buf[i] == 9):
        i += 1
    if (
        _imatch(buf, i, n, b"skirt")
        or _imatch(buf, i, n, b"brim")
        or _imatch(buf, i, n, b"wipe tower")
        or _imatch(buf, i, n, b"prime tower")
        or _imatch(buf, i, n, b"prime-tower")
        or _imatch(buf, i, n, b"prime pillar")
    ):
        return 1
    return 0


@kernel
def _skip_line(buf, i, n):  # type: ignore[no-untyped-def]
    # Up to the line's end: LF, or CR alone (classic Mac files); CR LF ends at the CR, then an empty line.
    while i < n and buf[i] != 10 and buf[i] != 13:
        i += 1
    return i


@kernel
def scan(buf, state, segs):  # type: ignore[no-untyped-def]
    """Scan whole lines of G-code in ``buf``, updating ``state`` and adding segments to ``segs``
    (float32 ``(capacity, 6)``: start and end xyz). A run still pending at the end stays pending
    in ``state`` (the next block may continue it); :func:`flush` ends it."""
    n = len(buf)
    i = 0
    while i < n:
        have = 0  # X 1, Y 2, Z 4, E 8, I 16, J 32, R 64
        vx = vy = vz = ve = vi = vj = vr = 0.0
        motion = -1
        g92 = False
        g28 = False
        other = False  # a G code that takes axis words but does not move (G4, G10, G29, ...)
        while i < n:
            c = buf[i]
            if c == 10 or c == 13:
                break
            if c == 59 or c == 35 or c == 42:  # ; # * (checksum)
                if c == 59:
                    feature = _feature(buf, i, n)
                    if feature >= 0:
                        close(state, segs)
                        state[S_HIDDEN] = feature
                i = _skip_line(buf, i, n)
                break
            if c == 40:  # ( comment )
                while i < n and buf[i] != 10 and buf[i] != 13 and buf[i] != 41:
                    i += 1
                if i < n and buf[i] == 41:
                    i += 1
                continue
            lc = c | 32
            if lc < 97 or lc > 122:
                i += 1  # spaces, tabs, stray bytes
                continue
            v, j, ok = _number(buf, i + 1, n)
            if not ok:
                # A word without a number: an extended command or text; nothing after it is a move.
                i = _skip_line(buf, i, n)
                break
            i = j
            if lc == 103:  # g
                code = int(v) if 0.0 <= v < 1000.0 and v == int(v) else -1
                if 0 <= code <= 3:
                    motion = code
                elif code == 90:
                    state[S_ABS_XYZ] = 1.0
                    state[S_ABS_E] = 1.0
                    state[S_E_SET] = 1.0
                elif code == 91:
                    state[S_ABS_XYZ] = 0.0
                    state[S_ABS_E] = 0.0
                    state[S_E_SET] = 1.0
                elif code == 20:
                    state[S_SCALE] = 25.4
                elif code == 21:
                    state[S_SCALE] = 1.0
                elif code == 92:
                    g92 = True
                elif code == 28:
                    g28 = True
                elif code != 17:
                    other = True
            elif lc == 109:  # m: only M82/M83 matter; their words (M201 X1000 ...) are not moves
                if v == 82.0:
                    state[S_ABS_E] = 1.0
                    state[S_E_SET] = 1.0
                elif v == 83.0:
                    state[S_ABS_E] = 0.0
                    state[S_E_SET] = 1.0
                i = _skip_line(buf, i, n)
                break
            elif lc == 120:
                have |= 1
                vx = v
            elif lc == 121:
                have |= 2
                vy = v
            elif lc == 122:
                have |= 4
                vz = v
            elif lc == 101:
                have |= 8
                ve = v
            elif lc == 105:
                have |= 16
                vi = v
            elif lc == 106:
                have |= 32
                vj = v
            elif lc == 114:
                have |= 64
                vr = v
        i += 1  # past the newline

        scale = state[S_SCALE]
        if g92 or g28:
            close(state, segs)
            everything = (have & 15) == 0
            # G92 sets the given axes (all to 0 without words); G28 homes them to 0 (all without words).
            if everything or have & 1:
                state[S_X] = vx * scale if g92 else 0.0
            if everything or have & 2:
                state[S_Y] = vy * scale if g92 else 0.0
            if everything or have & 4:
                state[S_Z] = vz * scale if g92 else 0.0
            if (g92 and (everything or have & 8)) or (g28 and everything):
                state[S_E] = ve * scale if g92 else state[S_E]
            continue
        if other:
            continue
        if motion >= 0:
            state[S_MOTION] = motion
        else:
            motion = int(state[S_MOTION])
        if motion < 0 or (have & (15 | 16 | 32)) == 0:
            continue
        x0 = state[S_X]
        y0 = state[S_Y]
        z0 = state[S_Z]
        rel = state[S_ABS_XYZ] == 0.0
        x1 = (x0 + vx * scale if rel else vx * scale) if have & 1 else x0
        y1 = (y0 + vy * scale if rel else vy * scale) if have & 2 else y0
        z1 = (z0 + vz * scale if rel else vz * scale) if have & 4 else z0
        de = 0.0
        if have & 8:
            if ve > 0.0:
                state[S_E_WORDS] += 1.0
            if state[S_ABS_E] == 0.0:
                de = ve * scale
                state[S_E] += de
            else:
                de = ve * scale - state[S_E]
                state[S_E] = ve * scale
        if state[S_HIDDEN] != 0.0:
            de = 0.0  # moves as usual, drawn as travel
        if motion >= 2 and have & (16 | 32):
            arc(state, segs, x0, y0, z0, x1, y1, z1, de, motion == 2, x0 + vi * scale, y0 + vj * scale)
        elif motion >= 2 and have & 64:
            arc_r(state, segs, x0, y0, z0, x1, y1, z1, de, motion == 2, vr * scale)
        else:
            segment(state, segs, x0, y0, z0, x1, y1, z1, de)
        state[S_X] = x1
        state[S_Y] = y1
        state[S_Z] = z1


@kernel
def flush(state, segs):  # type: ignore[no-untyped-def]
    """End the pending run at the end of the file."""
    close(state, segs)
