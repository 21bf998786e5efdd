"""The plain bulk of an AMF document, read by NumPy before expat sees the rest.

An AMF spends about twelve XML elements on each vertex and five on each triangle; expat calling
Python for each costs ~6 µs a vertex (a 100k-triangle file: 0.65 s). Most files write every
``<vertices>`` block and every run of ``<triangle>`` elements in one fixed layout, which is checked
here without a regular expression: each record, its numbers deleted, must be the same skeleton, the
expected tags in the expected order; then the tags become blanks and NumPy reads the numbers, one
per slot (the count must come out exactly). Such blocks are cut out of the document; anything else
(colours on vertices or triangles, other layouts, comments, CDATA, namespace prefixes, other
encodings) is left to the expat reader, which gives the same arrays, only slower.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np

from sidecar_thumbs.mesh.cutout import cut_out
from sidecar_thumbs.mesh.textnumbers import blank_separated as _numbers

__all__ = ["MAX_BLOCK_BYTES", "BulkCuts", "cut_bulk"]

# Reading a block in bulk holds about four copies of it for a moment; a larger block (over ~1M
# triangles in one volume) is left to the element reader, which holds about half its size.
MAX_BLOCK_BYTES = 64 * 1024 * 1024

_NUMBER_BYTES = b"0123456789+-.eE"
_DIGITS = b"0123456789"
_BLANKS = b" \t\r\n"
_VERTEX_TAGS = (b"<vertex>", b"<coordinates>", b"<x>", b"</x>", b"<y>", b"</y>", b"<z>", b"</z>", b"</coordinates>")
_TRIANGLE_TAGS = (b"<triangle>", b"<v1>", b"</v1>", b"<v2>", b"</v2>", b"<v3>", b"</v3>")
# Translation tables turning every byte but the number characters into a blank.
_PLAIN_NUMBER_BYTES = b"0123456789+-."
_BLANK_ALL_BUT = {
    keep: bytes(c if c in keep else 32 for c in range(256)) for keep in (_NUMBER_BYTES, _PLAIN_NUMBER_BYTES, _DIGITS)
}
_TAG_ES = sum(tag.count(b"e") for tag in (*_VERTEX_TAGS, b"</vertex>"))  # 'e's a vertex's tags spell
_VERTEX_SLOTS = (b"<x></x>", b"<y></y>", b"<z></z>")  # as they look empty, blanks deleted
_TRIANGLE_SLOTS = (b"<v1></v1>", b"<v2></v2>", b"<v3></v3>")


@dataclass
class BulkCuts:
    """``skeleton``: the document without the cut blocks. ``vertices``: float64 ``(n, 3)`` by the
    ordinal of its ``<vertices>`` element in the document; ``triangles``: int64 ``(n, 3)`` by the
    ordinal of its ``<volume>`` element."""

    skeleton: bytes
    vertices: dict[int, np.ndarray] = field(default_factory=dict)
    triangles: dict[int, np.ndarray] = field(default_factory=dict)


def cut_bulk(data: bytes) -> BulkCuts | None:
    """Cut the plain blocks out of ``data``; None when nothing can be cut safely."""
    if b"<!--" in data or b"<![CDATA[" in data or data.count(b"<?") > 1 or b":vertices" in data or b":volume" in data:
        return None  # markup that could hide or fake the tags found below by plain search
    cuts = BulkCuts(skeleton=data)
    ranges: list[tuple[int, int]] = []
    for ordinal, after_name in enumerate(_starts(data, b"<vertices")):
        span = _content(data, after_name, b"</vertices>")
        if span is not None and span[1] - span[0] <= MAX_BLOCK_BYTES:
            verts = _vertex_values(data[span[0] : span[1]])
            if verts is not None and np.isfinite(verts).all():
                cuts.vertices[ordinal] = verts
                ranges.append(span)
    for ordinal, after_name in enumerate(_starts(data, b"<volume")):
        span = _content(data, after_name, b"</volume>")
        if span is None:
            continue
        first = data.find(b"<triangle>", span[0], span[1])
        last = data.rfind(b"</triangle>", span[0], span[1])
        if first < 0 or last < 0:
            continue
        run = (first, last + len(b"</triangle>"))
        if run[1] - run[0] > MAX_BLOCK_BYTES:
            continue
        tris = _triangle_values(data[run[0] : run[1]])
        if tris is not None and (tris < 2**31).all():
            cuts.triangles[ordinal] = tris
            ranges.append(run)
    if not ranges:
        return None
    ranges.sort()
    cuts.skeleton = cut_out(data, ranges)
    return cuts


def _starts(data: bytes, name: bytes) -> Iterator[int]:
    """Where each start tag ``name`` (then a blank, ``/`` or ``>``) ends its name, in document order."""
    at = data.find(name)
    while at >= 0:
        end = at + len(name)
        if data[end : end + 1] in (b" ", b"\t", b"\r", b"\n", b"/", b">"):
            yield end
        at = data.find(name, end)


def _content(data: bytes, after_name: int, closing: bytes) -> tuple[int, int] | None:
    """Where the content of the element whose start tag name ends at ``after_name`` lies."""
    tag_end = data.find(b">", after_name)
    if tag_end < 0 or data[tag_end - 1 : tag_end] == b"/":
        return None  # cut short, or an empty element
    close = data.find(closing, tag_end)
    return None if close < 0 else (tag_end + 1, close)


def _records(
    block: bytes, end_tag: bytes, tags: tuple[bytes, ...], empty_slots: tuple[bytes, ...], numbers: bytes
) -> int:
    """How many records ``block`` holds, or 0 unless every record has the one layout: its tags in
    order (numbers and blanks deleted), no slot empty."""
    records = block.split(end_tag)
    if records.pop().strip(_BLANKS):
        return 0  # something after the last record
    n = len(records)
    ignored = numbers + _BLANKS
    expected = b"".join(tags).translate(None, ignored)
    if n == 0 or set(map(bytes.translate, records, repeat(None, n), repeat(ignored, n))) != {expected}:
        return 0
    compact = block.translate(None, _BLANKS)
    if any(slot in compact for slot in empty_slots):
        return 0
    return n


def _vertex_values(block: bytes) -> np.ndarray | None:
    n = _records(block, b"</vertex>", _VERTEX_TAGS, _VERTEX_SLOTS, _NUMBER_BYTES)
    if n == 0:
        return None
    if b"E" not in block and block.count(b"e") == n * _TAG_ES:
        # No exponent anywhere (the tags hold every 'e'): all but digits, signs and points to blanks.
        text = block.translate(_BLANK_ALL_BUT[_PLAIN_NUMBER_BYTES])
    else:
        text = block
        for tag in (b"<vertex>", b"</vertex>", b"<coordinates>", b"</coordinates>"):  # the tags with an 'e'
            text = text.replace(tag, b" ")
        text = text.translate(_BLANK_ALL_BUT[_NUMBER_BYTES])
    values = _numbers(text, np.float64)
    # With no slot empty, exactly three numbers a record means one in each slot.
    return None if values is None or len(values) != 3 * n else values.reshape(n, 3)


def _triangle_values(block: bytes) -> np.ndarray | None:
    n = _records(block, b"</triangle>", _TRIANGLE_TAGS, _TRIANGLE_SLOTS, _DIGITS)
    if n == 0:
        return None
    # All but digits to blanks: a record reads "1 i 1 2 j 2 3 k 3", the tags' digits around each index.
    values = _numbers(block.translate(_BLANK_ALL_BUT[_DIGITS]), np.int64)
    if values is None or len(values) != 9 * n:
        return None
    values = values.reshape(n, 9)
    if not (values[:, [0, 2, 3, 5, 6, 8]] == [1, 1, 2, 2, 3, 3]).all():
        return None
    return values[:, [1, 4, 7]]
