"""Plain-Python twin of :mod:`sidecar_thumbs.mesh.objscan_numba`, for platforms without numba.

Same inputs, same outputs and status codes (tests compare the two on every corpus OBJ), about 50x
slower: one ``bytes.split`` per line.
"""

from __future__ import annotations

import re

import numpy as np

from sidecar_thumbs.mesh.objcodes import ERR_INDEX, ERR_LIMIT, ERR_NUMBER, ERR_RANGE, ERR_SHORT_VERTEX, OK

__all__ = ["scan"]

# The kernel's number grammar: [+-] (digits [. digits*] | . digits) [(e|E) [+-] digits].
_NUMBER = re.compile(rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_INDEX = re.compile(rb"([+-]?)([0-9]+)(?:/|\Z)")
_BLANKS = b" \t\r\x0b\x0c"


def _fail(code: int, start: int, end: int):  # type: ignore[no-untyped-def]
    z3 = np.empty((0, 3), np.float32)
    no_faces = np.empty(0, np.int32), np.zeros(1, np.int64)
    return code, start, end, z3, z3, *no_faces, np.empty((0, 3), np.int64), np.empty((0, 2), np.int64), 0


def _tokens(line: bytes, base: int) -> list[tuple[bytes, int]]:
    """Blank-separated words up to a ``#`` word, with their byte offsets."""
    out = []
    for m in re.finditer(rb"[^ \t\r\x0b\x0c]+", line):
        if m.group().startswith(b"#"):
            break
        out.append((m.group(), base + m.start()))
    return out


def scan(data: bytes, max_triangles: int):  # type: ignore[no-untyped-def]
    """Same contract as :func:`sidecar_thumbs.mesh.objscan_numba.scan`, on ``bytes``."""
    verts: list[tuple[float, float, float]] = []
    colors: list[tuple[float, float, float]] = []
    corners: list[int] = []
    starts = [0]
    mtls: list[tuple[int, int, int]] = []
    libs: list[tuple[int, int]] = []
    ncolor = ntri = short = 0
    pos = 0
    nan = float("nan")
    for raw in data.split(b"\n"):
        base = pos
        pos += len(raw) + 1
        words = _tokens(raw, base)
        if not words:
            continue
        key = words[0][0]
        if key == b"v":
            vals = []
            for word, at in words[1:8]:
                if not _NUMBER.match(word):
                    return _fail(ERR_NUMBER, at, at + len(word))
                vals.append(float(word))
            if len(vals) < 3:
                return _fail(ERR_SHORT_VERTEX, words[0][1], base + len(raw.rstrip(_BLANKS)))
            verts.append((vals[0], vals[1], vals[2]))
            if len(vals) >= 6:
                colors.append((vals[3], vals[4], vals[5]))
                ncolor += 1
            else:
                colors.append((nan, nan, nan))
        elif key == b"f":
            face = []
            for word, at in words[1:]:
                m = _INDEX.match(word)
                v = int(m.group(2)) if m else 0
                if not m or v == 0 or v >= 2**31:
                    return _fail(ERR_INDEX, at, at + len(word))
                if m.group(1) == b"-":
                    v = len(verts) - v
                    if v < 0:
                        return _fail(ERR_INDEX, at, at + len(word))
                else:
                    v -= 1
                face.append(v)
            if len(face) < 3:
                short += 1
                continue
            ntri += len(face) - 2
            if ntri > max_triangles:
                return _fail(ERR_LIMIT, words[0][1], base + len(raw))
            corners.extend(face)
            starts.append(len(corners))
        elif key in (b"usemtl", b"mtllib"):
            line = raw.rstrip(_BLANKS)
            s = words[0][1] - base + len(key)
            rest = line[s:]
            a = base + s + (len(rest) - len(rest.lstrip(_BLANKS)))
            b = base + len(line)
            if a >= b:  # no name: an empty range at the line's end, where the kernel puts it
                a = b = base + len(raw)
            if key == b"usemtl":
                mtls.append((len(starts) - 1, a, max(a, b)))
            else:
                libs.append((a, max(a, b)))
    for v in corners:
        if v >= len(verts):
            return _fail(ERR_RANGE, v + 1, len(verts))
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, as in the kernel (dropped later)
        out_verts = np.array(verts, np.float64).astype(np.float32).reshape(-1, 3)
        out_colors = np.array(colors, np.float64).astype(np.float32).reshape(-1, 3)
    return (
        OK,
        0,
        0,
        out_verts,
        out_colors if ncolor else np.empty((0, 3), np.float32),
        np.array(corners, np.int32),
        np.array(starts, np.int64),
        np.array(mtls, np.int64).reshape(-1, 3),
        np.array(libs, np.int64).reshape(-1, 2),
        short,
    )
