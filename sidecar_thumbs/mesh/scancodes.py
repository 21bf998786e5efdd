"""Status codes of the 3MF mesh scanners (numba kernel and NumPy twin), and what they mean."""

from __future__ import annotations

from sidecar_thumbs.errors import BadModelError, LimitExceededError, ModelError

OK = 0
ERR_MARKUP = 1
ERR_DTD = 2
ERR_NUMBER = 3
ERR_VERTEX_ATTR = 4
ERR_INDEX = 5
ERR_TRIANGLE_ATTR = 6
ERR_RANGE = 7
ERR_LIMIT = 8
ERR_NESTING = 9

MESSAGES = {
    ERR_MARKUP: "XML is not well-formed",
    ERR_DTD: "XML DTD/entities not allowed",
    ERR_NUMBER: "vertex coordinate is not a number",
    ERR_VERTEX_ATTR: "<vertex> lacks an x, y or z attribute",
    ERR_INDEX: "triangle vertex index is not a non-negative integer",
    ERR_TRIANGLE_ATTR: "<triangle> lacks a v1, v2 or v3 attribute",
    ERR_RANGE: "triangle vertex index out of range",
    ERR_LIMIT: "too many triangles",
    ERR_NESTING: "<mesh> elements are not properly nested",
}


def scan_error(status: int, text: bytes, s: int, e: int, where: str, max_triangles: int) -> ModelError:
    """The error a scanner's failed ``status`` stands for, for the whole scan and the streamed one alike.

    Args:
        status: the scanner's status (not ``OK``).
        text: what was scanned; ``text[s:e]`` is the token that failed (shown for a bad number).
        where: the part and line, for the message.
        max_triangles: the limit, for the message of ``ERR_LIMIT``.
    """
    if status == ERR_LIMIT:
        return LimitExceededError(f"3MF has more than the limit of {max_triangles} triangles ({where})")
    detail = ""
    if status == ERR_NUMBER and e > s:
        detail = ": " + repr(text[s : min(e, s + 40)].decode("utf-8", "replace"))
    return BadModelError(f"3MF {MESSAGES.get(status, 'scan failed')} ({where}){detail}")
