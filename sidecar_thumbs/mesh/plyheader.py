"""The header of a PLY file: format, elements and their properties, checked before any data is read.

Every count in a header is checked against the bytes that follow it, so a header declaring a
billion vertices in a 1 KB file is refused before anything is allocated.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar_thumbs.errors import BadModelError

__all__ = ["MAX_HEADER_BYTES", "PlyElement", "PlyHeader", "PlyProperty", "parse_ply_header"]

MAX_HEADER_BYTES = 1 << 20  # real headers are a few hundred bytes; comments can be long

# PLY type names (both spellings) -> NumPy type codes without byte order.
TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}
FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}


@dataclass(frozen=True)
class PlyProperty:
    """A scalar property (``count_type`` None) or a list: a ``count_type`` count, then that many items."""

    name: str
    type: str  # NumPy type code of the value (or of each list item), e.g. "f4"
    count_type: str | None = None

    @property
    def is_list(self) -> bool:
        return self.count_type is not None


@dataclass(frozen=True)
class PlyElement:
    name: str
    count: int
    properties: tuple[PlyProperty, ...]

    def index(self, *names: str) -> int | None:
        """Position of the first property with one of ``names``, or None."""
        for i, prop in enumerate(self.properties):
            if prop.name in names:
                return i
        return None


@dataclass(frozen=True)
class PlyHeader:
    format: str  # "ascii", "binary_little_endian" or "binary_big_endian"
    elements: tuple[PlyElement, ...]
    body_offset: int  # where the data starts

    @property
    def byte_order(self) -> str:
        return FORMATS[self.format]


def parse_ply_header(data: bytes) -> PlyHeader:
    """Parse and check the header.

    Raises:
        BadModelError: not a PLY, no ``end_header``, an unknown format, type or statement, or an
            element count that the rest of the file cannot hold.
    """
    if not (data.startswith(b"ply\n") or data.startswith(b"ply\r\n") or data.startswith(b"ply\r")):
        raise BadModelError("not a PLY file: it does not start with 'ply'")
    head = data[:MAX_HEADER_BYTES]
    end = -1
    for marker in (b"\nend_header\n", b"\nend_header\r\n", b"\rend_header\r", b"\nend_header"):
        at = head.find(marker)
        if at >= 0 and (marker != b"\nend_header" or at + len(marker) == len(data)):
            end = at + len(marker)
            break
    if end < 0:
        raise BadModelError("PLY header has no end_header line (truncated or not a PLY file)")
    lines = head[:end].replace(b"\r\n", b"\n").replace(b"\r", b"\n").decode("latin-1").split("\n")
    fmt = None
    elements: list[tuple[str, int, list[PlyProperty]]] = []
    for number, line in enumerate(lines[1:], start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info", "end_header"):
            continue
        where = f"PLY header line {number}"
        if words[0] == "format":
            if len(words) < 2 or words[1] not in FORMATS:
                raise BadModelError(f"{where}: unknown format {' '.join(words[1:2])!r}")
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise BadModelError(f"{where}: bad element line {line.strip()[:60]!r}")
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property":
            if not elements:
                raise BadModelError(f"{where}: property before any element")
            elements[-1][2].append(_property(words, where))
        else:
            raise BadModelError(f"{where}: unknown statement {words[0][:40]!r}")
    if fmt is None:
        raise BadModelError("PLY header has no format line")
    body = len(data) - end
    out = []
    for name, count, props in elements:
        if count and not props:
            raise BadModelError(f"PLY element {name!r} has {count} records but no properties")
        # Every record takes at least one byte (binary) or two (ASCII: a number and a blank).
        if count > body:
            raise BadModelError(f"PLY header declares {count} {name} records, but only {body} bytes of data follow")
        out.append(PlyElement(name, count, tuple(props)))
    return PlyHeader(format=fmt, elements=tuple(out), body_offset=end)


def _property(words: list[str], where: str) -> PlyProperty:
    if len(words) == 5 and words[1] == "list":
        count_type, item_type = TYPES.get(words[2]), TYPES.get(words[3])
        if count_type is None or item_type is None or count_type[0] == "f":
            raise BadModelError(f"{where}: bad list types {words[2]!r} {words[3]!r}")
        return PlyProperty(words[4], item_type, count_type)
    if len(words) == 3 and words[1] in TYPES:
        return PlyProperty(words[2], TYPES[words[1]])
    raise BadModelError(f"{where}: bad property line {' '.join(words)[:60]!r}")
