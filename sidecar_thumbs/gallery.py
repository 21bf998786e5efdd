"""What the gallery shows: one entry per model under the roots, with its thumbnail's state.

Freshness follows :mod:`.verify` (the sidecar's own metadata, the content hash only when the stat gate
moved), so the page works from the files alone. With the state database, failed models get their
reason, and triangles/source fill in where a sidecar does not carry them.

Sidecars are read by their header chunks only, not decoded: a 256 px PNG costs ~1 ms to decode, which
is half a minute for 34,000 models, while the metadata and a truncation check cost microseconds.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sidecar_thumbs.discover import FoundFile, WalkProblem, iter_model_files
from sidecar_thumbs.fingerprint import hash_file
from sidecar_thumbs.models import ModelRow, ModelStatus
from sidecar_thumbs.sidecar import (
    KEY_HASH,
    KEY_MTIME_NS,
    KEY_SETTINGS,
    KEY_SOURCE,
    KEY_TRIANGLES,
    SOFTWARE_NAME,
    int_or_none,
    sidecar_path_for,
)
from sidecar_thumbs.state import StateDB

__all__ = ["EntryStatus", "Gallery", "GalleryEntry", "SidecarMeta", "collect_gallery", "read_sidecar_meta"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# Our tEXt chunks come before IDAT and add up to well under 1 KiB; a file whose header chunks go
# on for longer than this is not one of ours.
_MAX_HEADER_BYTES = 1 << 16


class EntryStatus(StrEnum):
    """What the gallery says about one model; the value is what the page filters on."""

    OK = "ok"  # a fresh sidecar of ours
    FAILED = "failed"  # the database records why this content cannot be thumbnailed
    MISSING = "missing"  # no usable sidecar (none, damaged, or someone else's file in its place)
    STALE = "stale"  # a sidecar of older content or other settings


@dataclass(frozen=True)
class GalleryEntry:
    """One model as the gallery shows it.

    Attributes:
        path: Absolute path of the model.
        folder: Folder label for display and grouping: the root's name plus the path below it.
        name: The model's file name.
        size: Model size in bytes.
        status: Thumbnail state.
        detail: Why the entry is failed, missing or stale (one line); None when OK.
        source: ``"rendered"`` or ``"embedded"`` (a picture the file carries: a 3MF's or G-code's
            slicer picture, or one an archive ships), when known.
        triangles: Triangle count, when known.
        sidecar: Path of the sidecar image to show (OK and stale entries), else None.
    """

    path: str
    folder: str
    name: str
    size: int
    status: EntryStatus
    detail: str | None
    source: str | None
    triangles: int | None
    sidecar: str | None


@dataclass(frozen=True)
class Gallery:
    """Every entry under the roots, in folder then name order, and what the walk could not read."""

    roots: tuple[str, ...]
    entries: tuple[GalleryEntry, ...]
    problems: tuple[WalkProblem, ...]
    from_database: bool

    def counts(self) -> dict[str, int]:
        """Entries per status (every status present), plus ``embedded`` for pictures the files carry."""
        out = {s.value: 0 for s in EntryStatus}
        for e in self.entries:
            out[e.status.value] += 1
        out["embedded"] = sum(1 for e in self.entries if e.sidecar is not None and e.source == "embedded")
        return out


@dataclass(frozen=True)
class SidecarMeta:
    """A sidecar's header as read without decoding the image."""

    ours: bool
    readable: bool  # PNG signature, intact header chunks, IEND at the end
    content_hash: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    source: str | None = None
    settings: str | None = None
    triangles: int | None = None


_NOT_OURS = SidecarMeta(ours=False, readable=False)


def read_sidecar_meta(path: str | os.PathLike[str]) -> SidecarMeta | None:
    """Read a sidecar's tEXt chunks and check its ends; None when there is no file.

    Never raises for a bad file. ``readable`` is the cheap check (signature, CRCs of the chunks before
    the image data, an IEND trailer): it catches truncated and overwritten files, not a bit flip
    inside the compressed pixels, which :func:`~.sidecar.read_sidecar` finds by decoding.
    """
    try:
        if os.path.islink(path):
            return _NOT_OURS  # we only ever write regular files
        with open(path, "rb") as f:
            head = f.read(_MAX_HEADER_BYTES)
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(max(0, end - len(_IEND)))
            tail = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return _NOT_OURS
    if not head.startswith(_PNG_SIGNATURE):
        return _NOT_OURS
    text: dict[str, str] = {}
    pos, intact = len(_PNG_SIGNATURE), False
    while pos + 8 <= len(head):
        (length,) = struct.unpack_from(">I", head, pos)
        kind = head[pos + 4 : pos + 8]
        if kind == b"IDAT":
            intact = True
            break
        body_end = pos + 8 + length
        if body_end + 4 > len(head):
            break
        (crc,) = struct.unpack_from(">I", head, body_end)
        if zlib.crc32(head[pos + 4 : body_end]) != crc:
            break
        if kind == b"tEXt":
            key, _, value = head[pos + 8 : body_end].partition(b"\x00")
            text[key.decode("latin-1")] = value.decode("latin-1")
        pos = body_end + 4
    ours = text.get("Software", "").split(" ")[0] == SOFTWARE_NAME
    if not ours and not intact:
        # A damaged file may still be ours (the marker sits in the first chunks we could not check).
        ours = b"tEXtSoftware\x00" + SOFTWARE_NAME.encode() in head
    readable = intact and tail == _IEND
    if not readable:
        return SidecarMeta(ours=ours, readable=False)
    return SidecarMeta(
        ours=ours,
        readable=True,
        content_hash=text.get(KEY_HASH),
        size=int_or_none(text.get("Thumb::Size")),
        mtime_ns=int_or_none(text.get(KEY_MTIME_NS)),
        source=text.get(KEY_SOURCE),
        settings=text.get(KEY_SETTINGS),
        triangles=int_or_none(text.get(KEY_TRIANGLES)),
    )


def _folder_label(path: str, roots: Sequence[str]) -> str:
    """``root name/sub/folder`` for the deepest root holding ``path`` (``/`` separated)."""
    folder = os.path.dirname(path)
    best = ""
    for root in roots:
        base = os.path.dirname(root) if os.path.isfile(root) else root
        if len(base) > len(best) and (folder == base or folder.startswith(base.rstrip(os.sep) + os.sep)):
            best = base
    if not best:
        return folder.replace(os.sep, "/")
    rel = os.path.relpath(folder, best)
    name = os.path.basename(best.rstrip(os.sep)) or best
    label = name if rel == "." else os.path.join(name, rel)
    return label.replace(os.sep, "/")


def _freshness(
    f: FoundFile, meta: SidecarMeta | None, row: ModelRow | None, expected_settings: str | None
) -> tuple[EntryStatus, str | None]:
    """OK, or (missing/stale, why): the same verdicts as ``verify`` gives."""
    if meta is None:
        return EntryStatus.MISSING, "no thumbnail yet"
    if not meta.ours:
        return EntryStatus.MISSING, "a file not written by sidecar-thumbs is in the sidecar's place"
    if not meta.readable:
        return EntryStatus.MISSING, "the sidecar is damaged (not a complete PNG)"
    if expected_settings is not None and meta.settings != expected_settings:
        return EntryStatus.STALE, f"made with other settings ({meta.settings})"
    if meta.size == f.size and meta.mtime_ns == f.mtime_ns:
        return EntryStatus.OK, None
    # The stat gate moved: only the content hash tells a touch from a change. The database's hash
    # is as good as hashing when the row has seen this very stat.
    if row is not None and row.hash is not None and (row.size, row.mtime_ns) == (f.size, f.mtime_ns):
        digest = row.hash
    else:
        try:
            digest = hash_file(f.path)
        except OSError as exc:
            return EntryStatus.STALE, f"cannot hash the model: {exc.strerror}"
    if digest == meta.content_hash:
        return EntryStatus.OK, None
    return EntryStatus.STALE, "the model changed after its thumbnail was made"


def _entry(f: FoundFile, roots: Sequence[str], row: ModelRow | None, expected_settings: str | None) -> GalleryEntry:
    sidecar = str(sidecar_path_for(f.path))
    meta = read_sidecar_meta(sidecar)
    status, detail = _freshness(f, meta, row, expected_settings)
    if status is not EntryStatus.OK and row is not None and row.status is ModelStatus.FAILED:
        # As in verify: a failure explains a missing sidecar, and a stale one when the failure is
        # about the content on disk now (a model replaced by a broken file keeps its old sidecar).
        if status is EntryStatus.MISSING or (row.size, row.mtime_ns) == (f.size, f.mtime_ns):
            status, detail = EntryStatus.FAILED, row.error or "the render failed (no reason recorded)"
    elif (
        status is not EntryStatus.OK and row is not None and row.status in (ModelStatus.PENDING, ModelStatus.RENDERING)
    ):
        detail = f"{detail}; queued for rendering"
    shown = status in (EntryStatus.OK, EntryStatus.STALE)
    triangles = meta.triangles if meta is not None and shown else None
    source = meta.source if meta is not None and shown else None
    if row is not None and status is EntryStatus.OK:
        # Sidecars written before the triangles key existed still have the count in the database.
        triangles = triangles if triangles is not None else row.triangles
        source = source or row.thumb_source
    name = os.path.basename(f.path)
    return GalleryEntry(
        path=f.path,
        folder=_folder_label(f.path, roots),
        name=name,
        size=f.size,
        status=status,
        detail=detail,
        source=source,
        triangles=triangles,
        sidecar=sidecar if shown else None,
    )


def collect_gallery(
    roots: Sequence[str],
    *,
    db: StateDB | None = None,
    expected_settings: str | None = None,
    on_entry: Callable[[GalleryEntry], None] | None = None,
) -> Gallery:
    """Walk ``roots`` and describe every model's thumbnail.

    Args:
        roots: Folders (or single model files) to show.
        db: The state database, or None to work from the files alone (then nothing is "failed":
            a model without a sidecar is "missing").
        expected_settings: The current thumbnail settings string; sidecars made with others are stale.
        on_entry: Called with each entry as it is made (progress).

    Returns:
        The gallery, entries sorted by folder, then name (case-insensitive).
    """
    roots = [os.path.abspath(r) for r in roots]
    rows: dict[str, ModelRow] = db.rows_under(roots) if db is not None else {}
    problems: list[WalkProblem] = []
    entries: list[GalleryEntry] = []
    for f in iter_model_files(roots, on_problem=problems.append):
        entry = _entry(f, roots, rows.get(f.path), expected_settings)
        entries.append(entry)
        if on_entry is not None:
            on_entry(entry)
    entries.sort(key=lambda e: (e.folder.casefold(), e.folder, e.name.casefold(), e.name))
    return Gallery(tuple(roots), tuple(entries), tuple(problems), db is not None)
