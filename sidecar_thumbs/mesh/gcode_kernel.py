"""The G-code scanner: one pass over the bytes, keeping the moves that extrude.

It reads the words of each line itself (no line splitting in Python, which costs ~1 µs a line): a
letter and a number, with or without spaces between words (``G1X5Y.5E.02`` as MeatPack writes it),
comments after ``;``, ``#`` or ``*`` (a checksum) and in parentheses skipped, and any other text
(Klipper's ``EXCLUDE_OBJECT_START NAME=...``, ``M117 messages``) ending the line's words. It keeps the
machine state the way Marlin and Klipper do: G90/G91 absolute or relative axes (and E with them),
M82/M83 absolute or relative E, G92 resets, G28 homing, G20/G21 inches or millimetres, modal motion
(a line of bare coordinates repeats the last G0-G3), and G2/G3 arcs in both the I/J and the R form
(split into pieces of at most 7.5 degrees, helical Z and E shared out along the pieces).

Every move whose E grows and whose nozzle moves sideways is an extrusion segment, handed to
:mod:`sidecar_thumbs.mesh.gcode_moves` (which merges and samples them).

Written once in the subset numba compiles (see :mod:`sidecar_thumbs.mesh.jit`); ``buf`` is a uint8
array when compiled and may be ``bytes`` otherwise.
"""

from __future__ import annotations

import numpy as np

from sidecar_thumbs.mesh.gcode_moves import (
    S_ABS_E,
    S_ABS_XYZ,
    S_DROPPED,
    S_E,
    S_E_SET,
    S_E_WORDS,
    S_EXTRUDING,
    S_HIDDEN,
    S_KEPT,
    S_LAYER_STRIDE,
    S_MOTION,
    S_SCALE,
    S_STRIDE,
    S_SUM_E,
    S_SUM_LEN,
    S_X,
    S_Y,
    S_Z,
    STATE_SIZE,
    arc,
    arc_r,
    close,
    new_state,
    segment,
)
from sidecar_thumbs.mesh.jit import kernel

__all__ = [
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
    tower``; Cura ``;TYPE:SKIRT``; OrcaSlicer and Bambu ``; FEATURE: Prime tower``), 0 otherwise.
    Those are left out of the picture, as the slicers' own previews leave them out."""
    i += 1
    while i < n and (buf[i] == 32 or buf[i] == 9):
        i += 1
    if _imatch(buf, i, n, b"type:"):
        i += 5
    elif _imatch(buf, i, n, b"feature:"):
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
