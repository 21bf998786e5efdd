"""Read ``.zip`` and ``.7z`` archives in memory, with caps against hostile ones.

Nothing is ever extracted to disk: entries are inflated into bytes, so an entry named ``../../x.stl``
is just a name whose extension says STL. Every archive of one thumbnail (the outer one and those
nested in it) draws from one :class:`Budget` of inflated bytes, and each archive is checked before
anything is inflated: the entry count from the end-of-central-directory record (before ``zipfile``
builds its list), overlapping entries (the "quoted overlap" zip bomb), and each entry's declared
compression ratio. Declared sizes can lie, so inflating also stops at the declared size and at the
budget. Memory is therefore bounded by the budget whatever the archive claims.

``.7z`` needs the optional ``[7z]`` extra (py7zr).
"""

from __future__ import annotations

import io
import itertools
import posixpath
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import ModuleType
from typing import Any, Protocol

from sidecar_thumbs.errors import BadModelError, LimitExceededError
from sidecar_thumbs.files.formats import ARCHIVE_FORMATS, IMAGE_SUFFIXES, format_for_name, require_extra
from sidecar_thumbs.mesh import LoadLimits
from sidecar_thumbs.mesh.opc import Package

__all__ = [
    "Archive",
    "ArchiveBudgetError",
    "Budget",
    "Entry",
    "EntryKind",
    "entry_kind",
    "open_archive",
    "sibling_reader",
]

_EOCD = struct.Struct("<4s4xHHIIH")  # signature, this disk's entries, total entries, cd size, cd offset, comment
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_EOCD_ENTRIES = struct.Struct("<4s28xQ")
_LOCAL_HEADER = struct.Struct("<4s22xHH")
_UTF8_FLAG = 0x800
_ENCRYPTED_FLAG = 0x1


class ArchiveBudgetError(LimitExceededError):
    """the archive inflates to more than the limit"""


class Budget:
    """Inflated bytes left for one thumbnail's archives (outer and nested together)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.left = total

    def take(self, n: int, what: str) -> None:
        if n > self.left:
            raise ArchiveBudgetError(f"archive inflates to more than the limit of {self.total} bytes (at {what})")
        self.left -= n


class EntryKind(StrEnum):
    """What an archive entry is to us."""

    MODEL = "model"  # a file of a model format (a 3MF is a model, not an archive)
    ARCHIVE = "archive"  # a .zip or .7z inside
    IMAGE = "image"  # a picture the download ships
    OTHER = "other"  # text, licences, macOS litter, folders


@dataclass(frozen=True)
class Entry:
    """One file inside an archive."""

    name: str  # as decoded (UTF-8 or code page 437); only ever used as a name, never as a path
    size: int  # declared inflated size
    kind: EntryKind
    handle: object  # what the archive needs to read it (a ZipInfo, a 7z name)
    encrypted: bool = False


def entry_kind(name: str) -> EntryKind:
    """What an entry is, by its base name (the same rule as loose files); macOS litter
    (``__MACOSX/``, ``._x.stl``) and folders are :attr:`EntryKind.OTHER`."""
    base = posixpath.basename(name)
    if not base or base.startswith("._") or name.startswith("__MACOSX/") or "/__MACOSX/" in name:
        return EntryKind.OTHER
    fmt = format_for_name(base)
    if fmt is not None:
        return EntryKind.ARCHIVE if fmt.name in ARCHIVE_FORMATS else EntryKind.MODEL
    return EntryKind.IMAGE if base.lower().endswith(IMAGE_SUFFIXES) else EntryKind.OTHER


class Archive(Protocol):
    entries: list[Entry]

    def read(self, entry: Entry) -> bytes: ...


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The entry's name: UTF-8 when flag bit 11 says so (zipfile did that), else UTF-8 if the raw bytes
    are valid UTF-8 (macOS and Linux zip tools do not set the flag), else code page 437 (Windows)."""
    if info.flag_bits & _UTF8_FLAG:
        return info.filename
    try:
        raw = info.filename.encode("cp437")
    except UnicodeEncodeError:
        return info.filename
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return info.filename


def _zip_entry_count(data: bytes) -> int:
    """Entries the end-of-central-directory record declares (read before zipfile lists them all)."""
    start = max(0, len(data) - (_EOCD.size + 0xFFFF))
    pos = data.rfind(b"PK\x05\x06", start)
    if pos < 0 or pos + _EOCD.size > len(data):
        raise BadModelError("not a ZIP archive, or cut short (no end-of-central-directory record)")
    _, _, total, _, _, _ = _EOCD.unpack_from(data, pos)
    if total == 0xFFFF and pos >= _ZIP64_LOCATOR.size:
        sig, _, offset, _ = _ZIP64_LOCATOR.unpack_from(data, pos - _ZIP64_LOCATOR.size)
        if sig == b"PK\x06\x07" and 0 <= offset <= len(data) - _ZIP64_EOCD_ENTRIES.size:
            sig64, total64 = _ZIP64_EOCD_ENTRIES.unpack_from(data, offset)
            if sig64 == b"PK\x06\x06":
                return int(total64)
    return int(total)


def _check_ratio(what: str, size: int, compressed: int, limits: LoadLimits) -> None:
    if size > limits.archive_ratio_floor_bytes and size > limits.max_archive_ratio * max(compressed, 1):
        raise LimitExceededError(
            f"{what} inflates {size / max(compressed, 1):.0f}:1, "
            f"over the {limits.max_archive_ratio:.0f}:1 cap (a zip bomb?)"
        )


class ZipArchive:
    """A ``.zip`` read in memory through the 3MF reader's capped inflate (zlib-ng when present)."""

    def __init__(self, data: bytes, budget: Budget, limits: LoadLimits) -> None:
        count = _zip_entry_count(data)
        if count > limits.max_archive_entries:
            raise LimitExceededError(
                f"archive has {count} entries, more than the limit of {limits.max_archive_entries}"
            )
        self._pkg = Package(data, limits.max_decompressed_bytes, "zip")
        infos = self._pkg.members()
        if len(infos) > limits.max_archive_entries:
            raise LimitExceededError(
                f"archive has {len(infos)} entries, more than the limit of {limits.max_archive_entries}"
            )
        self._check_overlap(data, infos)
        self._budget = budget
        self.entries = []
        for info in infos:
            # zipfile cuts a name at its first NUL, so a hostile entry can have an empty name (and
            # ZipInfo.is_dir() would then raise IndexError): such an entry is nothing we can name.
            if not info.filename or info.is_dir():
                continue
            name = _zip_name(info)
            kind = entry_kind(name)
            if kind is not EntryKind.OTHER:
                _check_ratio(f"archive entry {name}", info.file_size, info.compress_size, limits)
            encrypted = bool(info.flag_bits & _ENCRYPTED_FLAG)
            self.entries.append(Entry(name, info.file_size, kind, info, encrypted))

    @staticmethod
    def _check_overlap(data: bytes, infos: list[zipfile.ZipInfo]) -> None:
        # Entries whose data share bytes let a small file declare many huge members (Fifield's
        # non-recursive zip bomb). Real archives never overlap.
        spans = []
        for info in infos:
            try:
                sig, name_len, extra_len = _LOCAL_HEADER.unpack_from(data, info.header_offset)
            except struct.error:
                raise BadModelError(f"zip entry {info.filename} is corrupt: header outside the file") from None
            if sig != b"PK\x03\x04":
                raise BadModelError(f"zip entry {info.filename} is corrupt: bad local header")
            spans.append(
                (
                    info.header_offset,
                    info.header_offset + _LOCAL_HEADER.size + name_len + extra_len + info.compress_size,
                )
            )
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            if start < end:
                raise LimitExceededError("zip entries overlap (a zip bomb); refused")

    def read(self, entry: Entry) -> bytes:
        if entry.encrypted:
            raise BadModelError(f"zip entry {entry.name} is encrypted")
        info = entry.handle
        assert isinstance(info, zipfile.ZipInfo)
        cap = min(self._pkg.max_member_bytes, self._budget.left)
        if info.file_size > cap:
            self._budget.take(info.file_size, entry.name)  # raises with the archive-wide message
        data = self._pkg.read_member(info, cap)
        self._budget.take(len(data), entry.name)
        return data


class SevenZipArchive:
    """A ``.7z`` through py7zr (the ``[7z]`` extra), read into memory only."""

    def __init__(self, data: bytes, budget: Budget, limits: LoadLimits) -> None:
        py7zr = require_extra("7z")
        self._py7zr = py7zr
        self._budget = budget
        self._limits = limits
        try:
            self._zf = py7zr.SevenZipFile(io.BytesIO(data), mode="r")
            if self._zf.needs_password():
                raise BadModelError("7z archive is encrypted")
            infos = self._zf.list()
        except BadModelError:
            raise
        except py7zr.exceptions.PasswordRequired:  # encrypted headers: not even the names can be read
            raise BadModelError("7z archive is encrypted") from None
        except Exception as exc:  # py7zr reports damage with many exception types
            raise BadModelError(f"not a readable 7z archive: {type(exc).__name__}: {str(exc)[:200]}") from None
        if len(infos) > limits.max_archive_entries:
            raise LimitExceededError(
                f"archive has {len(infos)} entries, more than the limit of {limits.max_archive_entries}"
            )
        # Symlink entries are skipped: py7zr could only make them on disk, and nothing here touches disk.
        files = [i for i in infos if i.is_file and not i.is_directory and not i.is_symlink]
        # Solid 7z blocks have no per-entry compressed size: check the ratio over the whole archive.
        declared = sum(int(i.uncompressed or 0) for i in files)
        _check_ratio("7z archive", declared, len(data), limits)
        self.entries = [Entry(i.filename, int(i.uncompressed or 0), entry_kind(i.filename), i.filename) for i in files]

    def read(self, entry: Entry) -> bytes:
        cap = min(self._limits.max_decompressed_bytes, self._budget.left)
        if entry.size > cap:
            self._budget.take(entry.size, entry.name)
        factory = _capped_factory(self._py7zr, cap)
        try:
            self._zf.reset()
            self._zf.extract(targets=[entry.handle], factory=factory)
        except LimitExceededError:
            raise
        except Exception as exc:
            raise BadModelError(f"7z entry {entry.name} cannot be read: {type(exc).__name__}: {exc}") from None
        out = factory.products.get(entry.handle)
        data = out.getvalue() if out is not None else b""
        if len(data) != entry.size:
            raise BadModelError(f"7z entry {entry.name} is corrupt: inflates to a different size than declared")
        self._budget.take(len(data), entry.name)
        return data


def _capped_factory(py7zr: ModuleType, cap: int) -> Any:
    """A py7zr writer factory whose in-memory files raise once more than ``cap`` bytes arrive
    (py7zr's own BytesIOFactory drops what is over its limit silently)."""

    # The base classes come from a module imported at run time (the optional extra): typed Any.
    base_io: Any = py7zr.io.Py7zIO
    base_factory: Any = py7zr.io.WriterFactory

    class CappedIO(base_io):
        def __init__(self, name: str) -> None:
            self._buf = io.BytesIO()
            self._name = name

        def write(self, s: bytes | bytearray) -> int:
            if self._buf.tell() + len(s) > cap:
                raise LimitExceededError(f"7z entry {self._name} inflates to more than the limit of {cap} bytes")
            return self._buf.write(s)

        def read(self, size: int | None = None) -> bytes:
            return self._buf.read(size)

        def seek(self, offset: int, whence: int = 0) -> int:
            return self._buf.seek(offset, whence)

        def flush(self) -> None:
            return None

        def size(self) -> int:
            return self._buf.getbuffer().nbytes

        def getvalue(self) -> bytes:
            return self._buf.getvalue()

    class Factory(base_factory):
        def __init__(self) -> None:
            self.products: dict[str, CappedIO] = {}

        def create(self, filename: str) -> CappedIO:
            product = CappedIO(filename)
            self.products[filename] = product
            return product

    return Factory()


# Files a model names beside it (an OBJ's .mtl) are a few kilobytes.
MAX_SIBLING_BYTES = 4 * 1024 * 1024


def sibling_reader(archive: Archive, entry: Entry) -> Callable[[str], bytes | None]:
    """``name -> bytes | None``: a file named by ``entry`` (an OBJ's ``mtllib``) from the same folder of
    the same archive, like :mod:`sidecar_thumbs.mesh.siblings` does on disk. A bare name only (no
    folders, no ``..``); missing, encrypted, oversized or unreadable is simply absent."""
    folder = posixpath.dirname(entry.name)
    by_name = {e.name: e for e in archive.entries}

    def read(name: str) -> bytes | None:
        while name.startswith("./"):
            name = name[2:]
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
            return None
        sibling = by_name.get(posixpath.join(folder, name) if folder else name)
        if sibling is None or sibling.encrypted or sibling.size > MAX_SIBLING_BYTES:
            return None
        try:
            return archive.read(sibling)
        except (BadModelError, LimitExceededError):
            return None

    return read


_OPENERS: dict[str, Callable[[bytes, Budget, LoadLimits], Archive]] = {"zip": ZipArchive, "7z": SevenZipArchive}


def open_archive(data: bytes, fmt: str, budget: Budget, limits: LoadLimits) -> Archive:
    """Open an archive of format ``fmt`` ("zip" or "7z") held in ``data``.

    Raises:
        BadModelError: not a readable archive of that format.
        LimitExceededError: too many entries, overlapping entries, a bomb-like ratio.
        MissingExtraError: ``.7z`` without the ``[7z]`` extra.
    """
    return _OPENERS[fmt](data, budget, limits)
