"""Prusa's binary G-code (``.bgcode``, libbgcode's format, doc/specifications.md).

Layout (all integers little-endian)::

    file header   "GCDE", version u32 (1), checksum type u16 (0 none, 1 CRC-32)
    block*        type u16, compression u16, uncompressed size u32, [compressed size u32 if compressed],
                  parameters (6 bytes for a thumbnail: format, width, height; 2 bytes otherwise:
                  encoding), data, [CRC-32 of header + parameters + data]

Block types: 0 file metadata, 1 G-code, 2 slicer metadata, 3 printer metadata, 4 print metadata,
5 thumbnail. Compression: 0 none, 1 deflate, 2 heatshrink 11/4, 3 heatshrink 12/4. G-code encoding:
0 none, 1 MeatPack, 2 MeatPack keeping comments. Thumbnail format: 0 PNG, 1 JPEG, 2 QOI.

The whole block structure and every checksum are checked before anything is used (a file that fails
is refused, as a 3MF whose package is broken is, even when its pictures are fine), except that a
damaged thumbnail only loses that picture. Sizes are checked against the file and the caps before
any buffer is allocated, and decompression never makes more than a block declares: a block that
claims 4 GiB, or inflates past its declared size, is refused with bounded memory.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from sidecar_thumbs.errors import BadModelError, LimitExceededError
from sidecar_thumbs.mesh import DEFAULT_LIMITS, LoadLimits
from sidecar_thumbs.mesh.slicer_picture import MAX_PICTURE_BYTES, Picture, usable_picture

__all__ = ["MAGIC", "BinaryGcode", "Block", "read_bgcode"]

MAGIC = b"GCDE"
FILE_METADATA, GCODE, SLICER_METADATA, PRINTER_METADATA, PRINT_METADATA, THUMBNAIL = range(6)
BLOCK_NAMES = ("file metadata", "G-code", "slicer metadata", "printer metadata", "print metadata", "thumbnail")
COMPRESSIONS = ("none", "deflate", "heatshrink 11/4", "heatshrink 12/4")
# libbgcode writes G-code blocks of 64 KiB; anything far above is not from a slicer.
MAX_BLOCK_BYTES = 64 * 1024 * 1024
# 64 KiB G-code blocks make ~16,000 for a 1 GiB file; millions of empty blocks are a memory attack.
MAX_BLOCKS = 200_000
MAX_PICTURES = 32
# The most a compressed byte can expand to: deflate tops out near 1032:1; heatshrink's best
# token (17 bits for 16 bytes) gives 7.5:1.
MAX_RATIO = {1: 1100, 2: 8, 3: 8}


@dataclass(frozen=True)
class Block:
    """One block's header fields and where its parts lie in the file."""

    index: int  # 1-based, as a user counts
    type: int
    compression: int
    size: int  # uncompressed
    params: bytes
    start: int  # data
    end: int
    crc_ok: bool

    @property
    def name(self) -> str:
        return BLOCK_NAMES[self.type]


@dataclass(frozen=True, eq=False)
class BinaryGcode:
    """A parsed binary G-code file (the blocks point into ``data``)."""

    data: bytes
    blocks: tuple[Block, ...]

    def payload(self, block: Block, max_bytes: int) -> bytes:
        """The block's data, decompressed to exactly its declared size.

        Raises:
            BadModelError: unknown compression, or data that does not decompress to the declared size.
            LimitExceededError: the block declares more than ``max_bytes`` or than its data can hold.
        """
        raw = self.data[block.start : block.end]
        if block.compression == 0:
            return raw
        where = f"binary G-code block {block.index} ({block.name})"
        if block.size > max_bytes or block.size > len(raw) * MAX_RATIO[block.compression] + 64:
            raise LimitExceededError(
                f"{where} declares {block.size} bytes from {len(raw)} compressed: over the cap (a decompression bomb?)"
            )
        if block.compression == 1:
            inflater = zlib.decompressobj()
            try:
                out = inflater.decompress(raw, block.size + 1)
            except zlib.error as exc:
                raise BadModelError(f"{where} does not inflate: {exc}") from None
        else:
            from sidecar_thumbs.mesh.bgcode_codecs import heatshrink_decode

            out = heatshrink_decode(raw, block.size, 11 if block.compression == 2 else 12) or b""
        if len(out) != block.size:
            raise BadModelError(f"{where} decompresses to other than its declared {block.size} bytes")
        return out

    def metadata(self, block_type: int = FILE_METADATA) -> dict[str, str]:
        """The ``key=value`` lines of the first metadata block of ``block_type`` (empty if none)."""
        for block in self.blocks:
            if block.type == block_type:
                text = self.payload(block, 1 << 24).decode("utf-8", "replace")
                pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
                return {k.strip(): v.strip() for k, v in pairs}
        return {}

    def pictures(self) -> list[Picture]:
        """The usable pictures of the thumbnail blocks whose checksum holds."""
        found = []
        thumbnails = [b for b in self.blocks if b.type == THUMBNAIL]
        for block in thumbnails[:MAX_PICTURES]:  # slicers write up to five; thousands would be an attack
            if not block.crc_ok or block.size > MAX_PICTURE_BYTES:
                continue
            try:
                picture = usable_picture(self.payload(block, MAX_PICTURE_BYTES))
            except BadModelError:
                continue
            if picture is not None:
                found.append(picture)
        return found

    def gcode_text(self, limits: LoadLimits = DEFAULT_LIMITS) -> Iterator[bytes]:
        """The G-code, one decoded block at a time (a line may continue into the next block).

        Raises:
            BadModelError: a G-code block fails its checksum, is undecodable, or uses an unknown encoding.
            LimitExceededError: the G-code adds up to more than ``limits.max_decompressed_bytes``.
        """
        from sidecar_thumbs.mesh.bgcode_codecs import meatpack_decode

        gcode = [b for b in self.blocks if b.type == GCODE]
        total = sum(b.size for b in gcode)
        if total > limits.max_decompressed_bytes:
            raise LimitExceededError(
                f"binary G-code holds {total} bytes of G-code, over the cap of {limits.max_decompressed_bytes}"
            )
        for block in gcode:
            _require_crc(block)
            encoding = struct.unpack("<H", block.params)[0]
            if encoding > 2:
                raise BadModelError(f"binary G-code block {block.index} has unknown G-code encoding {encoding}")
            text = self.payload(block, MAX_BLOCK_BYTES)
            yield meatpack_decode(text) if encoding else text


def _require_crc(block: Block) -> None:
    if not block.crc_ok:
        raise BadModelError(f"binary G-code block {block.index} ({block.name}) fails its CRC-32 check")


def read_bgcode(data: bytes) -> BinaryGcode:
    """Check the file header, walk every block and check its checksum.

    Raises:
        BadModelError: not binary G-code, an unsupported version, a block running past the end of the
            file, an unknown block type or compression, or a checksum failing in any block other
            than a thumbnail.
    """
    if len(data) < 10 or data[:4] != MAGIC:
        raise BadModelError("not a binary G-code file (no GCDE header)")
    version, checksum = struct.unpack_from("<IH", data, 4)
    if version != 1:
        raise BadModelError(f"binary G-code version {version} is not supported (only 1)")
    if checksum > 1:
        raise BadModelError(f"binary G-code names unknown checksum type {checksum}")
    blocks: list[Block] = []
    pos = 10
    while pos < len(data):
        index = len(blocks) + 1
        if index > MAX_BLOCKS:
            raise LimitExceededError(f"binary G-code has more than {MAX_BLOCKS} blocks")
        if pos + 8 > len(data):
            raise BadModelError(f"binary G-code is cut off in the header of block {index}")
        kind, compression, size = struct.unpack_from("<HHI", data, pos)
        if kind > THUMBNAIL:
            raise BadModelError(f"binary G-code block {index} has unknown type {kind}")
        if compression > 3:
            raise BadModelError(f"binary G-code block {index} has unknown compression {compression}")
        header = 8
        stored = size
        if compression:
            if pos + 12 > len(data):
                raise BadModelError(f"binary G-code is cut off in the header of block {index}")
            stored = struct.unpack_from("<I", data, pos + 8)[0]
            header = 12
        params = 6 if kind == THUMBNAIL else 2
        start = pos + header + params
        end = start + stored
        crc_end = end + 4 * checksum
        if crc_end > len(data):
            raise BadModelError(
                f"binary G-code block {index} ({BLOCK_NAMES[kind]}) runs past the end of the file (cut off?)"
            )
        crc_ok = checksum == 0 or zlib.crc32(memoryview(data)[pos:end]) == struct.unpack_from("<I", data, end)[0]
        block = Block(index, kind, compression, size, data[pos + header : start], start, end, crc_ok)
        if kind != THUMBNAIL:
            _require_crc(block)
        blocks.append(block)
        pos = crc_end
    if not any(b.type == GCODE for b in blocks) and not any(b.type == THUMBNAIL for b in blocks):
        raise BadModelError("binary G-code has neither G-code nor thumbnail blocks")
    return BinaryGcode(data, tuple(blocks))
