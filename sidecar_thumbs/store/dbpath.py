"""How file paths are stored in the state database, and how "rows under a folder" is queried.

A path whose bytes are not valid UTF-8 reaches Python as a ``str`` with lone surrogates
(``os.fsdecode``'s ``surrogateescape``: byte ``0xFF`` becomes ``"\\udcff"``). SQLite TEXT must be UTF-8
and cannot hold those, so such a path is stored as::

    ESCAPED_PREFIX + escape(path)

where ``escape`` replaces ``%`` with ``%25``, each escaped byte ``\\udcXX`` with ``%XX`` (always upper-case
hex, ``80``–``FF``) and any other lone surrogate with ``%uXXXX``, and leaves every other character as is.
Every other path is stored verbatim, so an asset manager reading the table sees ordinary paths. A path
that itself starts with the prefix is escaped too, which keeps the mapping reversible for every ``str``.

``escape`` works character by character, so it keeps prefixes: everything under folder ``R`` is stored
either verbatim under ``R/`` or under ``ESCAPED_PREFIX + escape(R) + "/"``; :func:`under_ranges` asks
for both ranges on the UNIQUE(path) index.
"""

from __future__ import annotations

import re

__all__ = ["ESCAPED_PREFIX", "path_from_db", "path_to_db", "under_ranges"]

ESCAPED_PREFIX = "fsescape:"
"""Marks a stored path that was escaped; absolute paths never start with it."""

_UNESCAPE = re.compile(r"%(u[0-9A-F]{4}|[0-9A-F]{2})")


def _needs_escape(path: str) -> bool:
    if path.isascii():  # O(1) in CPython (a flag on the string); nearly every path, once per walked file
        return path.startswith(ESCAPED_PREFIX)
    if path.startswith(ESCAPED_PREFIX):
        return True
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _escape(path: str) -> str:
    out = []
    for ch in path:
        code = ord(ch)
        if ch == "%":
            out.append("%25")
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"%{code - 0xDC00:02X}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"%u{code:04X}")
        else:
            out.append(ch)
    return "".join(out)


def _unescape_one(match: re.Match[str]) -> str:
    token = match.group(1)
    if token[0] == "u":
        return chr(int(token[1:], 16))
    byte = int(token, 16)
    # %25 is the only escape below 0x80; every other one stands for a surrogate-escaped byte.
    return "%" if byte == 0x25 else chr(0xDC00 + byte)


def path_to_db(path: str) -> str:
    """The TEXT stored for ``path`` (verbatim unless it cannot be stored as UTF-8)."""
    return ESCAPED_PREFIX + _escape(path) if _needs_escape(path) else path


def path_from_db(stored: str) -> str:
    """The path a stored TEXT stands for; inverse of :func:`path_to_db`."""
    if stored.startswith(ESCAPED_PREFIX):
        return _UNESCAPE.sub(_unescape_one, stored[len(ESCAPED_PREFIX) :])
    return stored


def under_ranges(root: str) -> tuple[str, list[object]]:
    """A WHERE clause (``?`` placeholders) matching ``root`` itself and every path below it.

    Ranges, not LIKE, so SQLite walks the path index. ``"0"`` is the character after ``"/"``, so
    ``path >= "/a/b/" AND path < "/a/b0"`` holds exactly the strings starting with ``/a/b/`` — and
    not ``/a/bc``.

    Args:
        root: A folder (or a single file); a trailing ``/`` is ignored.

    Returns:
        The clause and its parameters.
    """
    base = root.rstrip("/")  # "/" itself becomes "", whose range "/" .. "0" is every absolute path
    clauses: list[str] = []
    params: list[object] = []
    if not _needs_escape(base):
        clauses.append("path = ? OR (path >= ? AND path < ?)")
        params += [base, base + "/", base + "0"]
    esc = ESCAPED_PREFIX + _escape(base)
    clauses.append("path = ? OR (path >= ? AND path < ?)")
    params += [esc, esc + "/", esc + "0"]
    return " OR ".join(clauses), params
