"""The slicer's pictures in a text G-code file: base64 blocks in comments.

PrusaSlicer, SuperSlicer, Cura's thumbnail plugin, OrcaSlicer and Bambu Studio all write::

    ; thumbnail begin 313x173 23700        (also thumbnail_PNG / thumbnail_JPG / thumbnail_QOI)
    ; iVBORw0KGgoAAAANSUhEUgAAATkAAACtCAYAAADG...
    ; thumbnail end

(OrcaSlicer and Bambu wrap the blocks in ``; THUMBNAIL_BLOCK_START`` / ``; THUMBNAIL_BLOCK_END``, and
some themes put a JPEG in a plain ``thumbnail`` block). The declared length counts base64 characters.
The image format is taken from the decoded bytes, not the tag. Slicers put the blocks at the start
(PrusaSlicer, Cura) or the end (some post-processors), so only the first and last few MiB are searched:
a 500 MB file costs no more than a small one.
"""

from __future__ import annotations

import binascii
import re

from sidecar_thumbs.errors import BadModelError
from sidecar_thumbs.mesh.slicer_picture import Picture, usable_picture

__all__ = ["HEAD_BYTES", "TAIL_BYTES", "text_gcode_pictures"]

HEAD_BYTES = 4 * 1024 * 1024
TAIL_BYTES = 2 * 1024 * 1024
# A block may be longer than the head window; it is followed this far at most (a 4096² PNG fits).
MAX_BLOCK_CHARS = 32 * 1024 * 1024
# Slicers write up to five; a file with thousands of begin lines is hostile (each costs a search).
MAX_BLOCKS = 32

_BEGIN = re.compile(
    rb"^[ \t]*;[ \t]*(thumbnail(?:_[A-Za-z]{2,4})?)[ \t]+begin"
    rb"[ \t]+(\d{1,5})[ \t]*[xX*][ \t]*(\d{1,5})[ \t]+(\d{1,10})",
    re.MULTILINE | re.IGNORECASE,
)


def _windows(size: int) -> list[tuple[int, int]]:
    if size <= HEAD_BYTES + TAIL_BYTES:
        return [(0, size)]
    return [(0, HEAD_BYTES), (size - TAIL_BYTES, size)]


def text_gcode_pictures(data: bytes) -> list[Picture]:
    """Every usable picture in the thumbnail blocks of a text G-code (may be empty).

    Raises:
        BadModelError: the file ends inside a thumbnail block (a cut-off download or copy).
    """
    pictures: list[Picture] = []
    for m in _begin_lines(data):
        declared = int(m.group(4))
        limit = min(len(data), m.end() + min(MAX_BLOCK_CHARS, 2 * declared + 65536))
        stop = _end_line(data, m.group(1) + b" end", m.end(), limit)
        if stop < 0:
            if limit == len(data):
                raise BadModelError(f"G-code ends inside its {m.group(1).decode()} block (the file is cut off)")
            continue  # longer than any real picture: not ours to follow
        picture = _decode_block(data[m.end() : stop], declared)
        if picture is not None:
            pictures.append(picture)
    return pictures


def _end_line(data: bytes, marker: bytes, pos: int, limit: int) -> int:
    """Start of the first line ``; <marker>`` in ``data[pos:limit]``, or -1 (the writer of the begin
    line wrote the end line, in the same case)."""
    while (k := data.find(marker, pos, limit)) >= 0:
        start = data.rfind(b"\n", pos, k) + 1
        if data[start:k].strip(b" \t") == b";":
            return start
        pos = k + len(marker)
    return -1


def _begin_lines(data: bytes) -> list[re.Match[bytes]]:
    """The ``; thumbnail... begin`` lines in the head and tail windows. A case-insensitive regex
    search costs ~15 ms/MiB; ``bytes.find`` of the (always lower-case) word and a match at the
    start of its line costs almost nothing."""
    found: list[re.Match[bytes]] = []
    for lo, hi in _windows(len(data)):
        pos = lo
        while len(found) < MAX_BLOCKS and (k := data.find(b"thumbnail", pos, hi)) >= 0:
            pos = k + 9
            start = data.rfind(b"\n", max(lo, k - 64), k) + 1
            if start == 0 and k - 64 > 0:
                continue  # too far into a long line to be a begin line
            m = _BEGIN.match(data, start, min(len(data), k + 96))
            if m is not None and m.start(1) == k:
                found.append(m)
    return found


def _decode_block(body: bytes, declared: int) -> Picture | None:
    # Lines of "; <base64>": drop everything outside the base64 alphabet (";", spaces, CR, LF).
    payload = re.sub(rb"[^A-Za-z0-9+/=]", b"", body.split(b"\n", 1)[1] if b"\n" in body else b"")
    if len(payload) < declared:
        return None  # shorter than announced: part of the picture is missing
    try:
        raw = binascii.a2b_base64(payload)
    except (binascii.Error, ValueError):
        return None
    return usable_picture(raw)
