"""Whether a sidecar still shows its model: the one rule that verify, the gallery and scan's adoption of
existing sidecars share.

A sidecar of ours carries the size, mtime and content hash of the model it was made from, so the rule
needs no database: the sidecar must be ours, a whole PNG, made with the expected settings (when the
caller cares), and of the same content — the same size and mtime, or, when that cheap gate moved (a
touch, an identical copy), the same content hash. Each caller words the verdict for its own report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sidecar_thumbs.files.fingerprint import hash_file
from sidecar_thumbs.files.formats import settings_for
from sidecar_thumbs.files.sidecar import SidecarInfo

__all__ = ["Freshness", "Verdict", "check_freshness"]


class Verdict(StrEnum):
    FRESH = "fresh"
    MISSING = "missing"  # no sidecar
    FOREIGN = "foreign"  # a file we did not write holds the sidecar's name
    CORRUPT = "corrupt"  # ours, but not a whole PNG
    OTHER_SETTINGS = "other-settings"  # made with other thumbnail settings
    CHANGED = "changed"  # the model's content is not what the sidecar shows
    UNHASHABLE = "unhashable"  # the gate moved and the model could not be read to tell


@dataclass(frozen=True)
class Freshness:
    verdict: Verdict
    content_hash: str | None = None  # the model's content hash when the check learnt it
    reason: str | None = None  # why the model could not be hashed (UNHASHABLE)

    @property
    def fresh(self) -> bool:
        return self.verdict is Verdict.FRESH


def check_freshness(
    model: str,
    size: int,
    mtime_ns: int,
    info: SidecarInfo | None,
    *,
    expected_settings: str | None = None,
    known_hash: str | None = None,
    hasher: Callable[[str], str] | None = hash_file,
) -> Freshness:
    """Judge the sidecar ``info`` (from ``read_sidecar``) against the model as it is now.

    Args:
        model: The model's path, hashed only when its size or mtime differ from the sidecar's record.
        size: The model's size now.
        mtime_ns: The model's mtime now.
        info: The sidecar as read, or None when there is none.
        expected_settings: The current thumbnail settings string (the model's format adds its own
            look revision, :func:`~sidecar_thumbs.files.formats.settings_for`); None accepts any settings.
        known_hash: The model's content hash, when the caller knows it for this very size and mtime
            (a database row that saw this stat): spares reading the file.
        hasher: How to hash the model; None decides by size and mtime alone (a moved gate is CHANGED).
    """
    if info is None:
        return Freshness(Verdict.MISSING)
    if not info.ours:
        return Freshness(Verdict.FOREIGN)
    if not info.readable:
        return Freshness(Verdict.CORRUPT)
    if expected_settings is not None and info.settings != settings_for(model, expected_settings):
        return Freshness(Verdict.OTHER_SETTINGS)
    if info.size == size and info.mtime_ns == mtime_ns:
        return Freshness(Verdict.FRESH, info.content_hash)
    if known_hash is None and hasher is None:
        return Freshness(Verdict.CHANGED)
    # The cheap gate moved: only the content hash can tell a touch from a change.
    if known_hash is not None:
        digest = known_hash
    else:
        assert hasher is not None
        try:
            digest = hasher(model)
        except OSError as exc:
            return Freshness(Verdict.UNHASHABLE, reason=exc.strerror)
    return Freshness(Verdict.FRESH if digest == info.content_hash else Verdict.CHANGED, digest)
