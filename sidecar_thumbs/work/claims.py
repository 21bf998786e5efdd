"""Claiming rows for a one-shot run: batch by batch, lazily, and everything claimable rendered at once."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelRow
from sidecar_thumbs.work.outcomes import RunStats
from sidecar_thumbs.work.pipeline import Pipeline

__all__ = ["ClaimSource", "run_pending"]


class ClaimSource:
    """Claims rows batch by batch, lazily: the next batch is claimed only when the pipeline has
    taken the previous one, so at most one batch sits in 'rendering' without a worker. What was
    claimed but not handed out is returned by :meth:`unconsumed` so it can be released."""

    def __init__(
        self,
        db: StateDB,
        batch_size: int,
        roots: Sequence[str] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.db, self.batch_size, self.roots, self.stop = db, batch_size, roots, stop
        self._buffer: list[ModelRow] = []

    def __iter__(self) -> ClaimSource:
        return self

    def __next__(self) -> ModelRow:
        if not self._buffer:
            if self.stop is not None and self.stop.is_set():
                raise StopIteration
            self._buffer = self.db.claim(self.batch_size, roots=self.roots)
            self._buffer.reverse()  # pop() from the end keeps the claim order
            if not self._buffer:
                raise StopIteration
        return self._buffer.pop()

    def unconsumed(self) -> list[ModelRow]:
        rows, self._buffer = self._buffer, []
        return rows


def run_pending(
    pipeline: Pipeline,
    batch_size: int,
    roots: Sequence[str] | None = None,
    stop: threading.Event | None = None,
) -> RunStats:
    """Render everything claimable now (under ``roots``), then return."""
    return pipeline.run(ClaimSource(pipeline.db, batch_size, roots, stop), stop)
