"""The ZIP/OPC package under a 3MF: capped member reads, part-name lookup, relationships.

A 3MF is an Open Packaging Conventions ZIP. Everything read from it is bounded: a member whose
declared size is above the cap is refused before inflating, and the inflated bytes are counted
while reading (declared sizes can lie), so a zip bomb costs at most the cap in memory.
"""

from __future__ import annotations

import io
import posixpath
import struct
import types
import zipfile
import zlib
from collections.abc import Iterator
from urllib.parse import unquote
from xml.etree import ElementTree as ET

from sidecar_thumbs.errors import BadModelError, LimitExceededError

__all__ = ["Package", "check_xml_safe", "parse_xml"]

# The fastest inflater installed: ISA-L (``isal``) inflates a model part ~18 % faster than zlib-ng
# here, zlib-ng ~2.5x faster than the stdlib zlib; all three compute CRC-32 too (the first two ~5x
# faster than zlib). Each is optional, with the same decompressobj API.
_inflater: types.ModuleType
try:
    from isal import isal_zlib as _inflater
except ImportError:
    try:
        from zlib_ng import zlib_ng as _inflater
    except ImportError:
        _inflater = zlib

_RELS_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_CHUNK = 1 << 20
# Inflated bytes per streamed chunk. Measured with the scan behind it (isal and zlib-ng alike), 512 KiB
# to 1 MiB are equally fast and 128-256 KiB chunks up to 5 % slower (more calls, more carried constructs).
_STREAM_OUT = 1 << 20
_STREAM_IN = 1 << 16  # compressed bytes fed per call, which bounds the copies of zlib's unconsumed tail
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length


def check_xml_safe(data: bytes, part: str) -> None:
    """Refuse XML that declares a DTD or entities: never resolved, never loaded, never fetched.

    Raises:
        BadModelError: the part contains ``<!DOCTYPE`` or ``<!ENTITY``.
    """
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise BadModelError(f"3MF part {part}: XML DTD/entities not allowed")


def parse_xml(data: bytes, part: str) -> ET.Element:
    """Parse a small XML part (relationships, model structure) after :func:`check_xml_safe`.

    Raises:
        BadModelError: DTD/entities, or XML that is not well-formed.
    """
    check_xml_safe(data, part)
    try:
        return ET.fromstring(data)
    except (ET.ParseError, ValueError, LookupError) as exc:  # LookupError: unknown encoding
        raise BadModelError(f"3MF part {part}: XML is not well-formed: {exc}") from None


class Package:
    """Read-only view of a 3MF's ZIP, with every read capped.

    Args:
        data: the whole .3mf file.
        max_member_bytes: cap on one member's inflated size.
        label: the format named in messages (zip-compressed AMF reads through this class too).

    Raises:
        BadModelError: not a ZIP archive.
    """

    def __init__(self, data: bytes, max_member_bytes: int, label: str = "3MF") -> None:
        self.max_member_bytes = max_member_bytes
        self.label = label
        self._data = memoryview(data)
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
            raise BadModelError(f"not a {label} file: not a ZIP archive ({exc})") from None
        except NotImplementedError as exc:  # a damaged header claiming e.g. "zip file version 8.4"
            raise BadModelError(f"not a {label} file: unsupported ZIP archive ({exc})") from None
        self._by_name = {i.filename: i for i in infos}
        # OPC part names are case-insensitive; the first of two names differing only in case wins.
        self._by_lower: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            self._by_lower.setdefault(info.filename.lower(), info)

    def members(self) -> list[zipfile.ZipInfo]:
        """Every member, in the order of the central directory."""
        return list(self._by_name.values())

    def find(self, part: str) -> zipfile.ZipInfo | None:
        """The member for an OPC part name (``/3D/x.model``, ``3D/x.model``, percent-encoded or in
        another case), or None."""
        name = part.lstrip("/")
        for candidate in (name, unquote(name)):
            info = self._by_name.get(candidate) or self._by_lower.get(candidate.lower())
            if info is not None:
                return info
        return None

    def read(self, part: str) -> bytes:
        """Inflate one part.

        Raises:
            BadModelError: the part is missing or its data is corrupt.
            LimitExceededError: its declared or actual size is above the cap.
        """
        info = self.find(part)
        if info is None:
            raise BadModelError(f"{self.label} part /{part.lstrip('/')} is missing from the package")
        return self.read_member(info)

    def read_member(self, info: zipfile.ZipInfo, cap: int | None = None) -> bytes:
        """Inflate a member, refusing more than ``cap`` (default: the package cap) bytes."""
        cap = self.max_member_bytes if cap is None else cap
        if info.file_size > cap:
            raise LimitExceededError(
                f"{self.label} part {info.filename} inflates to {info.file_size} bytes, more than the limit of {cap}"
            )
        if info.compress_type == zipfile.ZIP_DEFLATED and not info.flag_bits & 0x1:
            return self._inflate(info)
        chunks: list[bytes] = []
        total = 0
        try:
            with self._zip.open(info) as f:
                while chunk := f.read(_CHUNK):
                    total += len(chunk)
                    if total > cap:
                        raise LimitExceededError(
                            f"{self.label} part {info.filename} inflates to more than the limit of {cap} bytes"
                        )
                    chunks.append(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise BadModelError(f"{self.label} part {info.filename} is corrupt: {exc}") from None
        except (NotImplementedError, RuntimeError) as exc:  # unsupported compression, encryption
            raise BadModelError(f"{self.label} part {info.filename} cannot be read: {exc}") from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def stream(self, part: str) -> Iterator[bytes]:
        """Inflate one part in chunks of about 1 MiB, with the same checks as :meth:`read`: the
        declared and actual sizes against the cap, the size and CRC-32 against the header (checked
        when the last chunk has been produced, so a consumer must read to the end).

        Raises:
            BadModelError: the part is missing or its data is corrupt.
            LimitExceededError: its declared size is above the cap.
        """
        info = self.find(part)
        if info is None:
            raise BadModelError(f"{self.label} part /{part.lstrip('/')} is missing from the package")
        if not (info.compress_type == zipfile.ZIP_DEFLATED and not info.flag_bits & 0x1):
            yield self.read_member(info)  # stored or unusual members: whole, as before
            return
        if info.file_size > self.max_member_bytes:
            raise LimitExceededError(
                f"{self.label} part {info.filename} inflates to {info.file_size} bytes, "
                f"more than the limit of {self.max_member_bytes}"
            )
        compressed = self._compressed(info)
        inflater = _inflater.decompressobj(-15)
        total = crc = 0
        for at in range(0, max(len(compressed), 1), _STREAM_IN):
            pending: bytes | memoryview = compressed[at : at + _STREAM_IN]
            while pending and not inflater.eof:
                try:
                    out = inflater.decompress(pending, _STREAM_OUT)
                except Exception as exc:  # zlib.error, isal's and zlib-ng's own error types, MemoryError
                    raise BadModelError(f"{self.label} part {info.filename} is corrupt: {exc}") from None
                pending = inflater.unconsumed_tail
                total += len(out)
                if total > info.file_size:  # sizes that lie never inflate past the declared size
                    break
                crc = _inflater.crc32(out, crc)
                yield out
            if inflater.eof or total > info.file_size:
                break
        if total != info.file_size or not inflater.eof:
            raise BadModelError(
                f"{self.label} part {info.filename} is corrupt: inflates to a different size than declared"
            )
        if crc != info.CRC:
            raise BadModelError(f"{self.label} part {info.filename} is corrupt: bad CRC-32")

    def _compressed(self, info: zipfile.ZipInfo) -> memoryview:
        try:
            sig, name_len, extra_len = _LOCAL_HEADER.unpack_from(self._data, info.header_offset)
        except struct.error:
            sig = b""
        if sig != b"PK\x03\x04":
            raise BadModelError(f"{self.label} part {info.filename} is corrupt: bad local header")
        start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        return self._data[start : start + info.compress_size]

    def _inflate(self, info: zipfile.ZipInfo) -> bytes:
        # Deflate members (nearly all) are inflated in one call straight from the file's bytes: no
        # chunk list to join, and isal or zlib-ng when available. Output is capped at the declared size
        # (itself within the cap), so a member whose sizes lie cannot inflate further; a short or
        # long stream or a CRC mismatch is corruption, as zipfile would report it.
        compressed = self._compressed(info)
        try:
            inflater = _inflater.decompressobj(-15)
            out = inflater.decompress(compressed, info.file_size + 1)
        except Exception as exc:  # zlib.error, isal's and zlib-ng's own error types, MemoryError
            raise BadModelError(f"{self.label} part {info.filename} is corrupt: {exc}") from None
        if len(out) != info.file_size or not inflater.eof:
            raise BadModelError(
                f"{self.label} part {info.filename} is corrupt: inflates to a different size than declared"
            )
        if _inflater.crc32(out) != info.CRC:
            raise BadModelError(f"{self.label} part {info.filename} is corrupt: bad CRC-32")
        return out

    def relationships(self, source: str = "") -> list[tuple[str, str]]:
        """``(type, target part name)`` pairs of a part's relationships (the package's for ``""``).

        Targets are resolved to absolute part names without the leading slash. A missing
        relationships part means no relationships.
        """
        source = source.lstrip("/")
        folder, base = posixpath.split(source)
        rels_name = posixpath.join(folder, "_rels", base + ".rels")
        info = self.find(rels_name)
        if info is None:
            return []
        root = parse_xml(self.read_member(info), rels_name)
        out = []
        for rel in root.iter(_RELS_NS + "Relationship"):
            target = rel.get("Target", "")
            if rel.get("TargetMode", "Internal") != "Internal" or not target:
                continue  # external links are never followed
            path = target if target.startswith("/") else posixpath.join("/", folder, target)
            out.append((rel.get("Type", ""), posixpath.normpath(path).lstrip("/")))
        return out
