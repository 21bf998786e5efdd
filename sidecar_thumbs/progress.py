"""Progress for long runs: a live bar with rate and ETA on a terminal, quiet periodic lines in logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """Counts finished files out of ``total``; draws on ``stream``.

    On a terminal the bar is redrawn at most 10 times a second; elsewhere (launchd/systemd logs, CI)
    one plain line is written every ``log_every`` seconds.
    """

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        label: str = "rendering",
        log_every: float = 10.0,
        enabled: bool = True,
    ) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.label = label
        self.tty = self.stream.isatty()
        self.enabled = enabled
        self.log_every = log_every
        self.ok = 0
        self.failed = 0
        self._t0 = time.monotonic()
        self._last_draw = 0.0

    @property
    def done(self) -> int:
        return self.ok + self.failed

    def update(self, ok: bool) -> None:
        if ok:
            self.ok += 1
        else:
            self.failed += 1
        now = time.monotonic()
        interval = 0.1 if self.tty else self.log_every
        if self.enabled and (now - self._last_draw >= interval or self.done == self.total):
            self._last_draw = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self._t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = max(0, self.total - self.done)
        eta = format_duration(left / rate) if rate > 0 and left else "-"
        shown = f"{rate:.1f}" if rate >= 1 else f"{rate:.2f}"
        return f"{self.label} {self.done}/{self.total}  ✓ {self.ok} ✗ {self.failed}  {shown}/s  ETA {eta}"

    def _draw(self, now: float) -> None:
        text = self.line(now)
        if self.tty:
            width = 24
            filled = int(width * self.done / self.total) if self.total else width
            bar = "█" * filled + "·" * (width - filled)
            self.stream.write(f"\r{bar} {text}\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.tty and self._last_draw:
            self.stream.write("\n")
            self.stream.flush()
