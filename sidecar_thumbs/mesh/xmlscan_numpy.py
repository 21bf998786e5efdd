"""Pure NumPy/regex twin of :mod:`sidecar_thumbs.mesh.xmlscan_numba`, for platforms without numba.

Same inputs, same outputs (tests assert identical arrays on corpus files), same status codes for
the errors a valid-looking file can have. Markup is located with regular expressions; numbers are
checked against the same grammar as the numba parser and converted by NumPy (float64, then
float32, exactly as the kernel rounds). The common serialisation (``<vertex x="" y="" z=""/>``
in that order, as lib3mf, PrusaSlicer, Bambu Studio and trimesh write it) takes a bulk path; any
other layout is parsed element by element.
"""

from __future__ import annotations

import re

import numpy as np

from sidecar_thumbs.mesh.scancodes import (
    ERR_DTD,
    ERR_INDEX,
    ERR_LIMIT,
    ERR_NESTING,
    ERR_NUMBER,
    ERR_RANGE,
    ERR_TRIANGLE_ATTR,
    ERR_VERTEX_ATTR,
    OK,
)

__all__ = ["scan"]

_QUOTED = rb"""(?:"[^"<]*"|'[^'<]*')"""
_ATTRS = rb"((?:\s+[^\s=/<>]+\s*=\s*" + _QUOTED + rb")*)\s*(/?)>"
_PREFIX = rb"(?:[^\s/<>:!?]+:)?"

# Markup the kernel skips or stops at, plus mesh start/end tags.
_MESH_MARKUP = re.compile(
    rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>|(<!)|<(/?)" + _PREFIX + rb"mesh(?=[\s/>])" + _ATTRS, re.S
)
_MESH_END = re.compile(rb"</" + _PREFIX + rb"mesh\s*>")
_SKIPPED = re.compile(rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>", re.S)

_VERTEX_TAG = re.compile(rb"<" + _PREFIX + rb"vertex(?=[\s/>])" + _ATTRS)
_TRIANGLE_TAG = re.compile(rb"<" + _PREFIX + rb"triangle(?=[\s/>])" + _ATTRS)
_ATTR = re.compile(rb"""([^\s=]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_VERTEX_FAST = re.compile(rb'<vertex x="([^"<]*)" y="([^"<]*)" z="([^"<]*)"\s*/>')
_TRIANGLE_FAST = re.compile(
    rb'<triangle v1="([^"<]*)" v2="([^"<]*)" v3="([^"<]*)"(?:\s+[^\s=/<>]+\s*=\s*"[^"<]*")*\s*/>'
)

_NUMBER = re.compile(rb"[ \t\r\n]*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\r\n]*")
_INDEX = re.compile(rb"[ \t\r\n]*\+?[0-9]+[ \t\r\n]*")

_Result = tuple[int, int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class _ScanError(Exception):
    def __init__(self, code: int, start: int, end: int) -> None:
        super().__init__(code)
        self.code, self.start, self.end = code, start, end


_NO_CUTS = np.zeros((0, 2), np.int64)


def _empty(code: int, start: int, end: int) -> _Result:
    v, t, s = np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32), np.zeros((0, 6), np.int64)
    return code, start, end, v, t, s, _NO_CUTS


def scan(buf: bytes, max_triangles: int) -> _Result:
    """Same contract as :func:`sidecar_thumbs.mesh.xmlscan_whole.scan`, on ``bytes``."""
    try:
        spans = _mesh_spans(buf)
        verts: list[np.ndarray] = []
        tris: list[np.ndarray] = []
        rows = []
        nv = nt = 0
        for start, end in spans:
            v, t = _parse_mesh(buf, start, end)
            if len(t) and int(t.max()) >= len(v):
                raise _ScanError(ERR_RANGE, end, end)
            if nt + len(t) > max_triangles:
                raise _ScanError(ERR_LIMIT, start, end)
            rows.append((start, end, nv, nv + len(v), nt, nt + len(t)))
            verts.append(v)
            tris.append(t)
            nv += len(v)
            nt += len(t)
    except _ScanError as exc:
        return _empty(exc.code, exc.start, exc.end)
    return (
        OK,
        0,
        0,
        np.concatenate(verts) if verts else np.zeros((0, 3), np.float32),
        np.concatenate(tris) if tris else np.zeros((0, 3), np.int32),
        np.array(rows, np.int64).reshape(-1, 6),
        _resource_cuts(buf, spans),
    )


def _mesh_spans(buf: bytes) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    open_at = -1
    for m in _MESH_MARKUP.finditer(buf):
        if m.group(1):
            raise _ScanError(ERR_DTD, m.start(), m.start() + 9)
        if m.group(2) is None:
            continue  # comment, CDATA or processing instruction
        closing, self_closing = m.group(2) == b"/", m.group(4) == b"/"
        if closing:
            if open_at < 0 or not _MESH_END.fullmatch(m.group(0)):
                raise _ScanError(ERR_NESTING, m.start(), m.end())
            spans.append((open_at, m.start()))
            open_at = -1
        elif open_at >= 0:
            raise _ScanError(ERR_NESTING, m.start(), m.end())
        elif self_closing:
            spans.append((m.end(), m.end()))
        else:
            open_at = m.end()
    if open_at >= 0:
        raise _ScanError(ERR_NESTING, len(buf), len(buf))
    return spans


_ANY_TAG = re.compile(
    rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>|<(/?)(?:[^\s/<>:!?]+:)?([^\s/<>:!?]+)"
    rb"""(?:[^<>"']|"[^"<]*"|'[^'<]*')*?(/?)>""",
    re.S,
)


def _resource_cuts(buf: bytes, spans: list[tuple[int, int]]) -> np.ndarray:
    """Contents of the non-object children of <resources>, as the kernel reports them."""
    if b"resources" not in buf:
        return _NO_CUTS
    cuts: list[tuple[int, int]] = []
    depth, resources_depth, cut_depth, cut_start = 0, -1, -1, 0
    bounds = [0] + [x for span in spans for x in span] + [len(buf)]
    for pos, endpos in zip(bounds[0::2], bounds[1::2], strict=True):  # outside mesh contents
        for m in _ANY_TAG.finditer(buf, pos, endpos):
            if m.group(2) is None:
                continue
            closing, local, self_closing = m.group(1) == b"/", m.group(2), m.group(3) == b"/"
            if closing:
                depth -= 1
                if depth == cut_depth:
                    cuts.append((cut_start, m.start()))
                    cut_depth = -1
                if depth == resources_depth - 1:
                    resources_depth = -1
                continue
            if local == b"mesh":
                cut_depth = -1
            if not self_closing:
                if local == b"resources":
                    resources_depth = depth + 1
                elif depth == resources_depth and cut_depth < 0 and local != b"object":
                    cut_depth, cut_start = depth, m.end()
                depth += 1
    return np.array(cuts, np.int64).reshape(-1, 2)


def _parse_mesh(buf: bytes, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    body = buf[start:end]
    if b"<!" in body or b"<?" in body:
        body = _SKIPPED.sub(b"", body)  # commented-out elements are not geometry
    v_tokens = _tokens(body, _VERTEX_TAG, _VERTEX_FAST, (b"x", b"y", b"z"), ERR_VERTEX_ATTR, start)
    _check_numbers(buf, v_tokens, start)
    t_tokens = _tokens(body, _TRIANGLE_TAG, _TRIANGLE_FAST, (b"v1", b"v2", b"v3"), ERR_TRIANGLE_ATTR, start)
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range → inf, as the numba kernel does
        vertices = np.array(v_tokens, np.float64).astype(np.float32) if v_tokens else np.zeros(0, np.float32)
    return vertices.reshape(-1, 3), _indices(t_tokens, start).reshape(-1, 3)


def _tokens(
    body: bytes, tag: re.Pattern[bytes], fast: re.Pattern[bytes], names: tuple[bytes, ...], code: int, pos: int
) -> list[bytes]:
    """The values of attributes ``names`` of every element ``tag`` finds, in order: by the ``fast`` pattern
    when it matches every one (the attributes in their usual order), else element by element."""
    tags = tag.findall(body)
    quick = fast.findall(body)
    if len(quick) == len(tags):
        return [tok for triple in quick for tok in triple]
    return _generic(tags, names, code, pos)


def _generic(tags: list[tuple[bytes, bytes]], names: tuple[bytes, ...], code: int, pos: int) -> list[bytes]:
    tokens: list[bytes] = []
    for attrs, _slash in tags:
        found = {name: a or b for name, a, b in _ATTR.findall(attrs)}
        try:
            tokens.extend(found[name] for name in names)
        except KeyError:
            raise _ScanError(code, pos, pos) from None
    return tokens


def _check_numbers(buf: bytes, tokens: list[bytes], pos: int) -> None:
    # Same grammar as the kernel's parse_number; float() alone would also take "nan", "1_0", "inf".
    # Python's float() rounds correctly; the kernel does too for every realistic literal.
    for tok in tokens:
        if not _NUMBER.fullmatch(tok):
            at = buf.find(b'"' + tok + b'"', pos) + 1 or buf.find(tok, pos)
            raise _ScanError(ERR_NUMBER, at, at + len(tok))


def _indices(tokens: list[bytes], pos: int) -> np.ndarray:
    for tok in tokens:
        if not _INDEX.fullmatch(tok) or int(tok) >= 2**31:
            raise _ScanError(ERR_INDEX, pos, pos)
    return np.array([int(t) for t in tokens], dtype=np.int32) if tokens else np.zeros(0, np.int32)
