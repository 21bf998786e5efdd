"""The daemon's progress lines: each outcome logged (a model failing again counted once), and every
few seconds pending, rendering, done, the rate and the ETA."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from sidecar_thumbs import logs
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.units import format_duration, format_rate
from sidecar_thumbs.work.outcomes import Outcome
from sidecar_thumbs.work.pipeline import Pipeline

__all__ = ["ProgressLog"]

log = logging.getLogger("sidecar_thumbs.daemon")


@dataclass
class _Window:
    """Counts since the last progress line."""

    ok: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)


class ProgressLog:
    """The :class:`~sidecar_thumbs.daemon.loop.Daemon`'s progress log (a part of it, not used alone)."""

    db: StateDB
    pipeline: Pipeline | None
    failed_total: int
    _finished: int
    _failing: set[str]
    _window: _Window
    _rates: list[tuple[float, int]]

    def _on_outcome(self, outcome: Outcome) -> None:
        self._finished += 1
        # A transient failure retried with back-off and failing again is still one failing model:
        # counted and warned about once; its retries show with -v.
        again = not outcome.ok and outcome.path in self._failing
        if outcome.ok:
            self._window.ok += 1
            self._failing.discard(outcome.path)
        elif not again:
            self._window.failed += 1
            self.failed_total += 1
            self._failing.add(outcome.path)
        logs.log_outcome(
            outcome.path, ok=outcome.ok, source=outcome.source, reason=outcome.error,
            transient=outcome.transient, ms=outcome.render_ms, again=again,
        )  # fmt: skip

    def _log_progress(self, now: float, force: bool = False) -> None:
        w = self._window
        if not (w.ok or w.failed or force):
            return
        self._rates.append((now, self._finished))
        self._rates = [r for r in self._rates if now - r[0] <= 60.0] or [(now, self._finished)]
        t_first, n_first = self._rates[0]
        rate = (
            (self._finished - n_first) / (now - t_first)
            if now > t_first
            else (w.ok + w.failed) / max(now - w.started, 1e-9)
        )
        backlog = self.db.backlog()
        eta_s = backlog / rate if rate > 0 and backlog else None
        in_flight = self.pipeline.in_flight if self.pipeline else 0
        shown = [format_rate(rate)] if rate > 0 else []
        shown += [f"ETA {format_duration(eta_s)}"] if eta_s is not None else []
        fields = {"event": "progress", "pending": backlog, "ok": w.ok, "failed": w.failed,
                  "rate_per_s": round(rate, 3), "eta_s": None if eta_s is None else round(eta_s, 1)}  # fmt: skip
        log.info("pending %d · rendering %d · done ✓ %d ✗ %d%s", backlog, in_flight, w.ok, w.failed,
                 "".join(f" · {s}" for s in shown), extra=fields)  # fmt: skip
        self._window = _Window()
