"""Plain-Python twin of :mod:`sidecar_thumbs.mesh.objscan_numba`, for platforms without numba.

Same inputs, same outputs and status codes (tests compare the two on every corpus OBJ and on
fuzzed files). Files in the layout exporters write (fixed-width ``v`` lines, ``f`` lines with a
fixed corner count) take a bulk path through NumPy, about 5x slower than the kernel; anything else
is read line by line, about 20x slower.
"""

from __future__ import annotations

import re
from itertools import repeat

import numpy as np

from sidecar_thumbs.mesh.objcodes import ERR_INDEX, ERR_LIMIT, ERR_NUMBER, ERR_RANGE, ERR_SHORT_VERTEX, OK
from sidecar_thumbs.mesh.textnumbers import blank_separated as _numbers

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


def _name_range(raw: bytes, base: int, after_key: int) -> tuple[int, int]:
    """Byte range of the name after a ``usemtl``/``mtllib`` keyword ending at ``after_key`` in the line."""
    line = raw.rstrip(_BLANKS)
    rest = line[after_key:]
    a = base + after_key + (len(rest) - len(rest.lstrip(_BLANKS)))
    b = base + len(line)
    if a >= b:  # no name: an empty range at the line's end, where the kernel puts it
        a = b = base + len(raw)
    return a, b


def scan(data: bytes, max_triangles: int):  # type: ignore[no-untyped-def]
    """Same contract as :func:`sidecar_thumbs.mesh.objscan_numba.scan`, on ``bytes``."""
    bulk = _scan_bulk(data, max_triangles)
    if bulk is not None:
        return bulk
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
            a, b = _name_range(raw, base, words[0][1] - base + len(key))
            if key == b"usemtl":
                mtls.append((len(starts) - 1, a, b))
            else:
                libs.append((a, b))
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


# ---- the bulk path: files as exporters write them, parsed by NumPy in C ----

_NUMBER_BYTES = b"0123456789+-.eE \t\r\n"
_INDEX_BYTES = b"0123456789/ \t\r\n"


def _scan_bulk(data: bytes, max_triangles: int):  # type: ignore[no-untyped-def]
    """The common layout (``v x y z [r g b]`` lines with a fixed count, ``f`` lines with positive
    indices in one fixed form and corner count, statements at the start of their line) about 4x
    faster than line by line. None for anything else, which the line-by-line scan then reads.

    The checks stand in for the kernel's grammar: only number characters, the same count of blank-
    separated words as of numbers NumPy reads (``1.2.3`` or ``1-2`` read as two), so every word is
    one number."""
    vs: list[bytes] = []
    fs: list[bytes] = []
    mtls: list[tuple[int, int, int]] = []
    libs: list[tuple[int, int]] = []
    pos = 0
    for raw in data.split(b"\n"):
        base = pos
        pos += len(raw) + 1
        head = raw[:2]
        if head == b"v ":
            vs.append(raw[2:])
        elif head == b"f ":
            fs.append(raw[2:])
        elif not raw:
            continue
        elif raw[0] in _BLANKS or head in (b"v", b"f", b"v\t", b"f\t", b"v\r", b"f\r"):
            if raw.strip(_BLANKS):
                return None  # indented or tab-separated statements: the line-by-line scan
        elif raw[:6] in (b"usemtl", b"mtllib") and (len(raw) == 6 or raw[6] in _BLANKS):
            a, b = _name_range(raw, base, 6)
            if raw[:6] == b"usemtl":
                mtls.append((len(fs), a, b))
            else:
                libs.append((a, b))
    if not fs or not vs:
        return None
    width = len(vs[0].split())
    k = len(fs[0].split())
    if width not in (3, 6) or k < 3 or len(fs) * (k - 2) > max_triangles:
        return None
    if set(map(len, map(bytes.split, vs))) != {width} or set(map(len, map(bytes.split, fs))) != {k}:
        return None
    vtext = b"\n".join(vs)
    ftext = b"\n".join(fs)
    if vtext.translate(None, _NUMBER_BYTES) or ftext.translate(None, _INDEX_BYTES):
        return None
    values = _numbers(vtext, np.float64)
    if values is None or len(values) != len(vs) * width:
        return None
    # One corner form for the whole file: v, v/vt, v//vn or v/vt/vn, the same in every word (a
    # missing field reads one number short, which the count below catches).
    corners_n = len(fs) * k
    slashes, doubles = ftext.count(b"/"), ftext.count(b"//")
    if slashes:
        words = ftext.split()
        if set(map(bytes.count, words, repeat(b"/", len(words)))) != {slashes // corners_n}:
            return None
    if slashes == 0:
        fields = 1
    elif doubles == corners_n and slashes == 2 * corners_n:
        fields, ftext = 2, ftext.replace(b"//", b" ")
    elif doubles == 0 and slashes in (corners_n, 2 * corners_n):
        fields, ftext = slashes // corners_n + 1, ftext.replace(b"/", b" ")
    else:
        return None
    numbers = _numbers(ftext, np.int64)
    if numbers is None or len(numbers) != corners_n * fields:
        return None
    corners = numbers[::fields] - 1
    if corners.min() < 0 or corners.max() >= 2**31 - 1:
        return None  # index 0, or too large: the line-by-line scan says where
    if corners.max() >= len(vs):
        first = int(np.argmax(corners >= len(vs)))
        return _fail(ERR_RANGE, int(corners[first]) + 1, len(vs))
    values = values.reshape(-1, width)
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, as in the kernel (dropped later)
        verts = values[:, :3].astype(np.float32)
        colors = values[:, 3:].astype(np.float32) if width == 6 else np.empty((0, 3), np.float32)
    return (
        OK,
        0,
        0,
        verts,
        colors,
        corners.astype(np.int32),
        np.arange(len(fs) + 1, dtype=np.int64) * k,
        np.array(mtls, np.int64).reshape(-1, 3),
        np.array(libs, np.int64).reshape(-1, 2),
        0,
    )
