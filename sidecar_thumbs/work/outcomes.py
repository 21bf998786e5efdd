"""What became of one model (:class:`Outcome`, of an :class:`OutcomeKind`) and the counts of a run
(:class:`RunStats`): plain records the pipeline hands to its callers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from sidecar_thumbs.types import ThumbSource

__all__ = ["Outcome", "OutcomeKind", "RunStats"]


class OutcomeKind(StrEnum):
    """How one claimed model ended."""

    DONE = "done"  # its sidecar is written
    FAILED = "failed"  # with a reason (``Outcome.error``)
    REQUEUED = "requeued"  # it changed during the render: pending again, not a failure
    MISSING = "missing"  # deleted after it was found
    UNREACHABLE = "unreachable"  # its volume went away: still claimed, released once the root's state is known


@dataclass(frozen=True)
class Outcome:
    """What happened to one model, for progress displays and logs."""

    path: str
    kind: OutcomeKind
    source: ThumbSource | None = None
    error: str | None = None
    transient: bool = False
    render_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.DONE


@dataclass
class RunStats:
    """Counts for one pipeline run."""

    rendered: int = 0
    embedded: int = 0
    failed: int = 0
    requeued: int = 0  # changed or interrupted: back to pending, not a failure
    missing: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.rendered + self.embedded + self.failed
