"""Remove what sidecar-thumbs left behind and no longer needs: orphaned sidecars (their model is
gone, or is not a model we read: a symlink out of the roots, a FIFO) and temp files of interrupted
writes. Only files that carry our ``Software`` key are removed: a temp file must have our temp-name
pattern *and* start as our PNGs do (signature, then our ``Software`` tEXt chunk first), or be empty
(a write killed between creating the file and writing it: frequent, as the writer thread may wait
for the GIL in between) under our current name, or empty and old under the older name pattern that a
user's file may match; anything else with a similar name is reported and left alone."""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from sidecar_thumbs.files.atomic import TEMP_PREFIX
from sidecar_thumbs.files.discover import is_ignored_dir, model_on_disk
from sidecar_thumbs.files.pathcanon import is_probe_name
from sidecar_thumbs.files.roots import canonical_roots, require_online
from sidecar_thumbs.files.safeio import read_regular
from sidecar_thumbs.files.sidecar import (
    SIDECAR_SUFFIX,
    SOFTWARE_NAME,
    is_appledouble_twin,
    is_sidecar_name,
    model_name_for_sidecar,
    read_sidecar,
)
from sidecar_thumbs.reports.verify import remove_our_sidecar

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SOFTWARE_CHUNK = b"tEXtSoftware\x00" + SOFTWARE_NAME.encode()

__all__ = ["CleanReport", "clean", "is_our_temp_name"]

# What atomic_write names its temp files: .sidecar-thumbs-<16 hex>.tmp, and before that
# .<model>.thumbnail.png.<8 hex>.tmp (left by older versions).
_TEMP_RE = re.compile(
    r"^(?:" + re.escape(TEMP_PREFIX) + r"[0-9a-f]{16}|\..+" + re.escape(SIDECAR_SUFFIX) + r"\.[0-9a-f]{8})\.tmp$",
    re.DOTALL,
)
# A sidecar write takes milliseconds; a temp file this old belongs to a write that was killed.
STALE_TEMP_AGE_S = 600.0
# encode_png writes our Software chunk first: signature (8) + IHDR (25) + the chunk's header.
_OUR_TEMP_HEAD = 8 + 25 + 64


def is_our_temp_name(name: str) -> bool:
    """A sidecar's temp file, or the volume probe's file (see :mod:`.pathcanon`): ours, removed when stale."""
    return bool(_TEMP_RE.match(name)) or is_probe_name(name)


def _temp_content_is_ours(path: str) -> bool | None:
    """True when the file starts as our PNGs do; None when it is empty (a write killed before its
    first byte); False otherwise. Only a regular file is opened (never blocking)."""
    try:
        head = read_regular(path, follow=False, max_bytes=_OUR_TEMP_HEAD)
    except OSError:
        return False
    if not head:
        return None
    return head.startswith(_PNG_SIGNATURE) and _SOFTWARE_CHUNK in head


@dataclass
class CleanReport:
    removed: list[str] = field(default_factory=list)  # orphaned sidecars (or would be, in a dry run)
    temp_removed: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)  # sidecar-shaped names we did not write
    errors: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "removed": self.removed,
            "temp_removed": self.temp_removed,
            "left_alone": self.left_alone,
            "errors": [{"path": p, "reason": r} for p, r in self.errors],
        }


def clean(
    roots: Sequence[str],
    *,
    dry_run: bool = False,
    now: float | None = None,
    temp_only: bool = False,
    temp_age: float = STALE_TEMP_AGE_S,
) -> CleanReport:
    """Remove orphaned sidecars of ours and stale temp files of ours under ``roots``.

    Args:
        roots: folders to clean.
        dry_run: report what would be removed, remove nothing.
        temp_only: leave orphaned sidecars alone (the coordinator's start-up housekeeping).
        temp_age: seconds after which one of our temp files counts as left by a killed write; 0 when
            the caller holds the coordinator lock (no one else writes sidecars then). An empty temp
            file under the old name pattern must be older than :data:`STALE_TEMP_AGE_S` whatever this
            says: nothing marks it ours.

    Raises:
        RootOfflineError: a root does not exist, is not a folder, cannot be read or is an unmounted volume.
    """
    now = time.time() if now is None else now
    report = CleanReport()
    roots = canonical_roots(roots)
    require_online(roots)  # a misspelt or absent root is an error, not "nothing to clean"
    for root in roots:
        for folder, files in _walk(root):
            for name in files:
                if not name.startswith("."):
                    continue  # a model or a foreign file: every name of ours (sidecar, temp, probe) starts with "."
                if is_appledouble_twin(name):
                    continue  # an SMB client's `._` file beside one of ours: not ours to judge or remove
                path = os.path.join(folder, name)
                if is_our_temp_name(name):
                    _clean_temp(path, now, temp_age, dry_run, report)
                elif not temp_only and is_sidecar_name(name):
                    model_name = model_name_for_sidecar(name)
                    model = os.path.join(folder, model_name)
                    found = files.get(model_name)
                    if found is None:
                        # lexists too: on a case-insensitive volume the listing may spell it otherwise.
                        orphan = not os.path.lexists(model) or model_on_disk(model, roots) is False
                    else:
                        # A regular file (d_type from the listing: no extra call per model) is a model;
                        # a link out of the roots, a FIFO or a device is not, so its sidecar is an orphan.
                        orphan = not _is_regular(found) and model_on_disk(model, roots) is False
                    if orphan:
                        _clean_orphan(path, dry_run, report)
    return report


def _is_regular(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def _walk(root: str) -> Iterator[tuple[str, dict[str, os.DirEntry[str]]]]:
    """Every folder under ``root`` with its non-folder entries by name. Symlinked folders are not
    followed (so nothing outside the root is reached) and ignored folders (trash, snapshots) are
    skipped; an unreadable folder is passed by, as ``os.walk`` does."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            continue
        files: dict[str, os.DirEntry[str]] = {}
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if not is_dir:
                files[entry.name] = entry
            elif not is_ignored_dir(entry.name):
                stack.append(entry.path)
        yield folder, files


def _clean_orphan(path: str, dry_run: bool, report: CleanReport) -> None:
    info = read_sidecar(path)
    if info is None:
        return
    if not info.ours:
        report.left_alone.append(path)
        return
    if dry_run:
        report.removed.append(path)
        return
    try:
        if remove_our_sidecar(path):
            report.removed.append(path)
    except OSError as exc:
        report.errors.append((path, exc.strerror or str(exc)))


def _clean_temp(path: str, now: float, temp_age: float, dry_run: bool, report: CleanReport) -> None:
    try:
        st = os.lstat(path)
        if st.st_mtime > now - temp_age or not stat.S_ISREG(st.st_mode):  # young (a live write), or not a file
            return
        ours = _temp_content_is_ours(path)
        if ours is False:
            report.left_alone.append(path)  # a user's file under a name like ours: never deleted
            return
        legacy = not os.path.basename(path).startswith(TEMP_PREFIX)
        if ours is None and legacy and st.st_mtime > now - max(temp_age, STALE_TEMP_AGE_S):
            return  # empty, under the old name pattern (a user's file may match it): ours only if old

        if not dry_run:
            os.unlink(path)
        report.temp_removed.append(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        report.errors.append((path, exc.strerror or str(exc)))
