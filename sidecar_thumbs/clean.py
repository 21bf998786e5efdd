"""Remove what sidecar-thumbs left behind and no longer needs: orphaned sidecars (their model is
gone) and temp files of interrupted writes. Only files that carry our ``Software`` key are removed
(temp files: only our exact temp-name pattern, and only when old); anything else with a similar name is
reported and left alone."""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sidecar_thumbs.discover import is_ignored_dir
from sidecar_thumbs.roots import canonical_roots, require_online
from sidecar_thumbs.sidecar import SIDECAR_SUFFIX, is_sidecar_name, model_name_for_sidecar, read_sidecar
from sidecar_thumbs.verify import remove_our_sidecar

__all__ = ["CleanReport", "clean", "is_our_temp_name"]

# .<model>.thumbnail.png.<8 hex>.tmp — what atomic_write names its temp files.
_TEMP_RE = re.compile(r"^\..+" + re.escape(SIDECAR_SUFFIX) + r"\.[0-9a-f]{8}\.tmp$", re.DOTALL)
# A sidecar write takes milliseconds; a temp file this old belongs to a write that was killed.
STALE_TEMP_AGE_S = 600.0


def is_our_temp_name(name: str) -> bool:
    return bool(_TEMP_RE.match(name))


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
        temp_only: leave orphaned sidecars alone (the daemon's start-up housekeeping).
        temp_age: seconds after which one of our temp files counts as left by a killed write.

    Raises:
        RootOfflineError: a root does not exist, is not a folder, cannot be read or is an unmounted volume.
    """
    now = time.time() if now is None else now
    report = CleanReport()
    roots = canonical_roots(roots)
    require_online(roots)  # a misspelt or absent root is an error, not "nothing to clean"
    for root in roots:
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs[:] = [d for d in dirs if not is_ignored_dir(d)]
            names = set(files)
            for name in files:
                path = os.path.join(folder, name)
                if is_our_temp_name(name):
                    _clean_temp(path, now - temp_age, dry_run, report)
                elif not temp_only and is_sidecar_name(name) and model_name_for_sidecar(name) not in names:
                    if os.path.lexists(os.path.join(folder, model_name_for_sidecar(name))):
                        continue  # the model is there (e.g. a symlink os.walk listed as a file)
                    _clean_orphan(path, dry_run, report)
    return report


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


def _clean_temp(path: str, cutoff: float, dry_run: bool, report: CleanReport) -> None:
    try:
        st = os.lstat(path)
        if st.st_mtime > cutoff or not stat.S_ISREG(st.st_mode):  # young (a live write), or not a file
            return
        if not dry_run:
            os.unlink(path)
        report.temp_removed.append(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        report.errors.append((path, exc.strerror or str(exc)))
