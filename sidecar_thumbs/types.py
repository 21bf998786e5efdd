"""Plain data that crosses the boundary between discovery, the state database and the pipeline.

Everything here is a frozen dataclass or an enum: values, no behaviour, safe to pickle and to hand
between stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "FileState",
    "Fingerprint",
    "ModelRow",
    "ModelStatus",
    "PlanRow",
    "RenderDone",
    "RenderFailed",
    "ThumbSource",
]


class ThumbSource(StrEnum):
    """Where a thumbnail's picture came from; the value is what the sidecar and the database store."""

    RENDERED = "rendered"  # drawn by our renderer from the mesh
    EMBEDDED = "embedded"  # the slicer's own picture inside a 3MF

    @classmethod
    def of(cls, value: str | None) -> ThumbSource:
        """The source a sidecar's text names; anything else (an older or foreign value) counts as rendered."""
        return cls.EMBEDDED if value == cls.EMBEDDED.value else cls.RENDERED


class ModelStatus(StrEnum):
    """Where a model is in its life cycle; the value is what the database stores."""

    PENDING = "pending"  # waiting to be claimed (possibly not before next_attempt_at)
    RENDERING = "rendering"  # claimed by the coordinator, a worker has it
    DONE = "done"  # sidecar written from the content hash in thumb_hash
    FAILED = "failed"  # last attempt failed; transient ones come back after a back-off
    MISSING = "missing"  # the model file is gone from disk


@dataclass(frozen=True)
class Fingerprint:
    """What identifies one version of a model file: the stat gate plus its content hash."""

    size: int
    mtime_ns: int
    hash: str  # xxh3_128 hexdigest, 32 lowercase hex characters (or the over-cap key)


@dataclass(frozen=True)
class ModelRow:
    """One row of ``st_models``: everything the database knows about one model file.

    Attributes:
        id: Row id (stable across renames).
        path: Absolute path of the model, as ``os.fsdecode`` gives it.
        size: File size in bytes at the last look.
        mtime_ns: Modification time at the last look.
        hash: xxh3_128 hex digest of the content, None until hashed.
        status: Life-cycle state.
        has_thumbnail: Whether our sidecar is believed to be next to the model; it may be stale
            while the row is pending (compare ``thumb_hash`` with ``hash``).
        thumb_hash: Content hash the current sidecar was made from.
        thumb_source: ``"rendered"`` or ``"embedded"`` (taken from the 3MF).
        triangles: Triangle count of the last successful load.
        error: One-line reason of the last failure.
        error_transient: Whether the last failure may go away by itself.
        attempts: Failures since the content last changed.
        next_attempt_at: Unix time before which the row is not handed out; None = now (pending) or
            never until the file changes (failed).
        render_ms: Time the last render took.
        created_at: When the row was inserted (unix s).
        updated_at: When the row's facts last changed (unix s); claims leave it alone, so it orders
            the queue (oldest first).
        rendered_at: When the last sidecar was recorded (unix s).
    """

    id: int
    path: str
    size: int | None
    mtime_ns: int | None
    hash: str | None
    status: ModelStatus
    has_thumbnail: bool
    thumb_hash: str | None
    thumb_source: str | None
    triangles: int | None
    error: str | None
    error_transient: bool
    attempts: int
    next_attempt_at: float | None
    render_ms: float | None
    created_at: float
    updated_at: float
    rendered_at: float | None


class PlanRow(NamedTuple):
    """The part of a row that planning a scan reads (see ``StateDB.plan_rows_under``)."""

    path: str
    size: int | None
    mtime_ns: int | None
    hash: str | None
    status: ModelStatus
    has_thumbnail: bool
    error_transient: bool
    next_attempt_at: float | None


@dataclass(frozen=True)
class FileState:
    """What discovery and fingerprinting saw on disk for one model.

    Attributes:
        path: Absolute path of the model.
        size: File size in bytes.
        mtime_ns: Modification time in nanoseconds.
        hash: xxh3_128 hex digest, or None when the stat gate said hashing was not needed.
        needs_render: True when the model must be (re)rendered; False when the caller found a
            sidecar that matches this content (or the row's facts are merely refreshed).
        from_snapshot: ``needs_render`` was decided from rows read earlier (a scan's plan): if the
            row has meanwhile been rendered, or is being rendered, for this very size and mtime
            (another coordinator did it), it is left so instead of being queued again.
    """

    path: str
    size: int
    mtime_ns: int
    hash: str | None
    needs_render: bool
    from_snapshot: bool = False


@dataclass(frozen=True)
class RenderDone:
    """A sidecar was written for ``path`` from the content with ``hash``.

    Attributes:
        path: Absolute path of the model.
        hash: Content hash the render was made from.
        size: File size the render was made from.
        mtime_ns: Modification time the render was made from.
        source: Rendered, or embedded (taken from the 3MF).
        triangles: Triangle count, None for an embedded thumbnail.
        render_ms: Wall time of the job in milliseconds.
    """

    path: str
    hash: str
    size: int
    mtime_ns: int
    source: ThumbSource
    triangles: int | None
    render_ms: float


@dataclass(frozen=True)
class RenderFailed:
    """Rendering ``path`` failed.

    Attributes:
        path: Absolute path of the model.
        error: Reason a user can act on (kept to one line, 500 characters).
        transient: True when retrying later may help (file busy or vanished mid-read).
        hash: Content hash the attempt saw, if known; a failure about older content is ignored.
        max_attempts: For a transient failure, how many in a row make it permanent (None: the
            database's default).
    """

    path: str
    error: str
    transient: bool
    hash: str | None = None
    max_attempts: int | None = None
