"""Builders for decompression and expansion bombs (small files, huge when inflated or expanded).

The deflate streams are written by hand: one literal run, then back-references of the longest
length (258) in a fixed-Huffman block. The bit pattern of 8 matches spans a whole number of bytes,
so gigabytes of output cost a few MB of file and no time to build.
"""

from __future__ import annotations

import struct
import zlib


class _Bits:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value: int, width: int, *, huffman: bool = False) -> None:
        if huffman:  # Huffman codes are written most significant bit first
            value = int(f"{value:0{width}b}"[::-1], 2)
        self.acc |= value << self.n
        self.n += width
        while self.n >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.n -= 8

    def flush(self) -> bytes:
        if self.n:
            self.out.append(self.acc & 0xFF)
        return bytes(self.out)


def _fixed_literal(bits: _Bits, byte: int) -> None:
    if byte < 144:
        bits.put(0x30 + byte, 8, huffman=True)
    else:
        bits.put(0x190 + byte - 144, 9, huffman=True)


def _distance_code(d: int) -> tuple[int, int, int]:
    """(code, extra bits, extra value) for a deflate distance."""
    if d <= 4:
        return d - 1, 0, 0
    extra = (d - 1).bit_length() - 2
    code = 2 * extra + 2 + (((d - 1) >> extra) & 1)
    return code, extra, (d - 1) & ((1 << extra) - 1)


def _stream(prefix: bytes, groups: int) -> bytes:
    """Raw deflate: ``prefix`` in a stored block, then a fixed-Huffman block of ``groups * 8`` copies
    of 258 bytes at distance len(prefix) (so the prefix repeats), then end of block."""
    code, extra, value = _distance_code(len(prefix))
    stored = struct.pack("<BHH", 0, len(prefix), 0xFFFF ^ len(prefix)) + prefix  # non-final, byte aligned

    def block(n_groups: int) -> bytes:
        bits = _Bits()
        bits.put(1, 1)  # BFINAL
        bits.put(1, 2)  # fixed Huffman
        for _ in range(8 * n_groups):
            bits.put(0xC5, 8, huffman=True)  # length code 285 = 258 bytes
            bits.put(code, 5, huffman=True)
            bits.put(value, extra)
        bits.put(0, 7)  # end of block (code 256)
        return bits.flush()

    # 8 matches are a whole number of bytes, so every byte after the first repeats with that period:
    # build a small block and splice in as many more periods as wanted.
    period = (8 * (13 + extra)) // 8
    base = 3
    small = block(base)
    return stored + small[:1] + small[1 : 1 + period] * (groups - base) + small[1:]


def inflated_size(prefix: bytes, groups: int) -> int:
    return len(prefix) + groups * 8 * 258


def zip_member(name: str, raw_deflate: bytes, declared_size: int, crc: int = 0) -> tuple[bytes, bytes]:
    """(local header + data, central directory entry) for a deflated member at offset 0 of its own."""
    n = name.encode()
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(raw_deflate), declared_size, len(n), 0)
    central = struct.pack(
        "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(raw_deflate), declared_size,
        len(n), 0, 0, 0, 0, 0, 0,
    )  # fmt: skip
    return local + n + raw_deflate, central + n


def zip_archive(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A ZIP from (name, raw deflate, declared size, crc) members."""
    body = bytearray()
    directory = bytearray()
    for name, raw, declared, crc in members:
        local, central = zip_member(name, raw, declared, crc)
        offset = len(body)
        body += local
        directory += central[:42] + struct.pack("<I", offset) + central[46:]
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), len(body), 0)
    return bytes(body + directory + end)


def deflated(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


RELS = (
    b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
    b'relationships"><Relationship Target="/3D/3dmodel.model" Id="r0" '
    b'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>'
)


def bomb_3mf(prefix: bytes, groups: int, *, honest: bool) -> bytes:
    """A 3MF whose model part is ``prefix`` repeated to ``inflated_size`` bytes; the header states the
    real size (``honest``) or a small lie (4 KiB)."""
    raw = _stream(prefix, groups)
    size = inflated_size(prefix, groups)
    declared = min(size, 0xFFFFFFFE) if honest else 4096
    rels = (
        "_rels/.rels",
        deflated(RELS),
        len(RELS),
        zlib.crc32(RELS),
    )
    return zip_archive([rels, ("3D/3dmodel.model", raw, declared, 0)])


def xml_3mf(model_xml: bytes) -> bytes:
    rels = ("_rels/.rels", deflated(RELS), len(RELS), zlib.crc32(RELS))
    model = ("3D/3dmodel.model", deflated(model_xml), len(model_xml), zlib.crc32(model_xml))
    return zip_archive([rels, model])
