"""What the gallery shows: one entry per model under the roots, with its thumbnail's state.

Freshness is :mod:`.freshness`'s rule, as in :mod:`.verify` (the sidecar's own metadata, the content hash
only when the stat gate moved), so the page works from the files alone. With the state database, failed models get their
reason, and triangles/source fill in where a sidecar does not carry them.

Sidecars are read by their header chunks only, not decoded (``read_sidecar(decode=False)``): a 256 px
PNG costs ~1 ms to decode, which is half a minute for 34,000 models, while the metadata and a
truncation check cost microseconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sidecar_thumbs.files.discover import FoundFile, WalkProblem, iter_model_files
from sidecar_thumbs.files.freshness import Verdict, check_freshness
from sidecar_thumbs.files.roots import canonical_roots, present_by_root, require_online
from sidecar_thumbs.files.sidecar import SidecarInfo, read_sidecar, sidecar_path_for
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelRow, ModelStatus, ThumbSource

__all__ = ["EntryStatus", "Gallery", "GalleryEntry", "collect_gallery"]


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
        out["embedded"] = sum(1 for e in self.entries if e.sidecar is not None and e.source == ThumbSource.EMBEDDED)
        return out


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
    f: FoundFile, meta: SidecarInfo | None, row: ModelRow | None, expected_settings: str | None
) -> tuple[EntryStatus, str | None]:
    """OK, or (missing/stale, why): ``verify``'s verdicts (the rule in :mod:`.freshness`), in the page's words."""
    # The database's hash is as good as hashing when the row has seen this very stat.
    seen = row is not None and row.hash is not None and (row.size, row.mtime_ns) == (f.size, f.mtime_ns)
    known = row.hash if seen and row is not None else None
    verdict = check_freshness(f.path, f.size, f.mtime_ns, meta, expected_settings=expected_settings, known_hash=known)
    match verdict.verdict:
        case Verdict.FRESH:
            return EntryStatus.OK, None
        case Verdict.MISSING:
            return EntryStatus.MISSING, "no thumbnail yet"
        case Verdict.FOREIGN:
            return EntryStatus.MISSING, "a file not written by sidecar-thumbs is in the sidecar's place"
        case Verdict.CORRUPT:
            return EntryStatus.MISSING, "the sidecar is damaged (not a complete PNG)"
        case Verdict.OTHER_SETTINGS:
            assert meta is not None
            return EntryStatus.STALE, f"made with other settings ({meta.settings})"
        case Verdict.UNHASHABLE:
            return EntryStatus.STALE, f"cannot hash the model: {verdict.reason}"
        case Verdict.CHANGED:
            return EntryStatus.STALE, "the model changed after its thumbnail was made"


def _entry(f: FoundFile, roots: Sequence[str], row: ModelRow | None, expected_settings: str | None) -> GalleryEntry:
    sidecar = str(sidecar_path_for(f.path))
    meta = read_sidecar(sidecar, decode=False)
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

    Raises:
        RootOfflineError: a root is offline (absent, unreadable, unmounted, or empty while the database
            holds models under it).

    Returns:
        The gallery, entries sorted by folder, then name (case-insensitive).
    """
    roots = canonical_roots(roots)
    rows: dict[str, ModelRow] = db.rows_under(roots) if db is not None else {}
    require_online(roots, known=present_by_root(rows, roots))  # an absent root is an error, not an empty page
    problems: list[WalkProblem] = []
    entries: list[GalleryEntry] = []
    for f in iter_model_files(roots, on_problem=problems.append):
        entry = _entry(f, roots, rows.get(f.path), expected_settings)
        entries.append(entry)
        if on_entry is not None:
            on_entry(entry)
    entries.sort(key=lambda e: (e.folder.casefold(), e.folder, e.name.casefold(), e.name))
    return Gallery(tuple(roots), tuple(entries), tuple(problems), db is not None)
