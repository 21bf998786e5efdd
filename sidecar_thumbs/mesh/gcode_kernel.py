"""The G-code scanner: one pass over the bytes, keeping the moves that extrude.

It reads the words of each line itself (no line splitting in Python, which costs ~1 µs a line): a
letter and a number, with or without spaces between words (``G1X5Y.5E.02`` as MeatPack writes it),
comments after ``;``, ``#`` or ``*`` (a checksum) and in parentheses skipped, and any other text
(Klipper's ``EXCLUDE_OBJECT_START NAME=...``, ``M117 messages``) ending the line's words. It keeps the
machine state the way Marlin and Klipper do: G90/G91 absolute or relative axes (and E with them),
M82/M83 absolute or relative E, G92 resets, G28 homing, G20/G21 inches or millimetres, modal motion
(a line of bare coordinates repeats the last G0-G3), and G2/G3 arcs in both the I/J and the R form.

Every move whose E grows and whose nozzle moves sideways is an extrusion segment, handed to
:mod:`sidecar_thumbs.mesh.gcode_segments` (merging, sampling, arcs). Numbers are
:func:`sidecar_thumbs.mesh.lex.number` without the exponent part.

Written once in the subset numba compiles (see :mod:`sidecar_thumbs.mesh.jit`); ``buf`` is a uint8
array when compiled and may be ``bytes`` otherwise.
"""

from __future__ import annotations

import numpy as np

from sidecar_thumbs.mesh.gcode_segments import (
    S_ABS_E,
    S_ABS_XYZ,
    S_E,
    S_E_SET,
    S_E_WORDS,
    S_HIDDEN,
    S_MOTION,
    S_SCALE,
    S_X,
    S_Y,
    S_Z,
    arc,
    arc_r,
    close,
    segment,
)
from sidecar_thumbs.mesh.jit import kernel
from sidecar_thumbs.mesh.lex import BLANKS, number, skip

__all__ = ["scan"]


# The words a move reads, by letter: their bit in ``have`` and their slot in ``words``.
_WORD_SLOT = np.array([b"xyzeijr".find(bytes([c])) for c in range(97, 123)], np.int64)  # a..z, -1: other


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
    i = skip(buf, i + 1, n, BLANKS)
    if _imatch(buf, i, n, b"type:"):
        i += 5
    elif _imatch(buf, i, n, b"feature:") or _imatch(buf, i, n, b"feature "):  # Simplify3D: "; feature skirt"
        i += 8
    else:
        return -1
    i = skip(buf, i, n, BLANKS)
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
    words = np.zeros(7, np.float64)  # the line's X Y Z E I J R (0 where not given)
    while i < n:
        have = 0  # X 1, Y 2, Z 4, E 8, I 16, J 32, R 64
        words[:] = 0.0
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
            v, j, ok = number(buf, i + 1, n, False, BLANKS)  # no exponent: an E is the next word
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
            elif _WORD_SLOT[lc - 97] >= 0:
                have |= 1 << _WORD_SLOT[lc - 97]
                words[_WORD_SLOT[lc - 97]] = v
        i += 1  # past the newline
        vx, vy, vz, ve, vi, vj, vr = words[0], words[1], words[2], words[3], words[4], words[5], words[6]

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
