"""Progress for long runs: a live bar on a terminal, quiet periodic lines in logs, JSON events for collectors.

The terminal bar is tqdm's: ``logging_redirect_tqdm`` routes our log records through ``tqdm.write``,
which clears the bar, prints the line and redraws the bar, so a warning is never glued to the bar.
The rate and ETA text is ours (one rule for the bar, the plain lines and the JSON events): no
ETA before the first file is done, and a rate below one per second is shown as seconds per file.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from types import TracebackType
from typing import Any, TextIO

from sidecar_thumbs.logs import json_line
from sidecar_thumbs.units import format_duration, format_rate

__all__ = ["Progress"]

COMPILING = "compiling the renderer (first run only, about a minute)"


class Progress:
    """Counts finished files out of ``total`` and shows it on ``stream``; use it as a context manager.

    Args:
        total: files to do.
        stream: where to draw (stderr).
        label: the first word of the line.
        log_every: seconds between lines when ``stream`` is not a terminal (launchd/systemd logs, CI).
        mode: "auto" (a bar on a terminal, plain lines elsewhere), "json" (JSON progress events) or
            "off".
        compiling: the renderer is being compiled (numba's first run): say so instead of an ETA
            until the first file is done, and measure the rate from then on. Each worker compiles
            before its first file (about a minute on 2 cores), so a rate over the whole run would
            promise an ETA of ten minutes for a job of ten seconds.
    """

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        label: str = "rendering",
        log_every: float = 10.0,
        mode: str = "auto",
        compiling: bool = False,
    ) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.label = label
        self.log_every = log_every
        self.compiling = compiling
        if mode == "off" or total <= 0:
            self.mode = "off"
        else:
            self.mode = "json" if mode == "json" else ("bar" if self.stream.isatty() else "lines")
        self.ok = 0
        self.failed = 0
        self._t0 = time.monotonic()
        self._last_draw = self._t0
        # Where the rate is measured from: (time, files done then). Moves to the first finished file
        # when the run starts by compiling.
        self._origin: tuple[float, int] | None = None if compiling else (self._t0, 0)
        self._bar: Any = None
        self._exit = contextlib.ExitStack()

    @property
    def done(self) -> int:
        return self.ok + self.failed

    def __enter__(self) -> Progress:
        return self.start()

    def start(self) -> Progress:
        """Draw the bar (on a terminal) and route log lines around it until :meth:`finish`."""
        if self.mode == "bar":
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._bar = self._exit.enter_context(
                tqdm(total=self.total, file=self.stream, bar_format="{bar:24} {desc}", mininterval=0.1,
                     desc=self.line(), leave=True, dynamic_ncols=True)
            )  # fmt: skip
            self._exit.enter_context(logging_redirect_tqdm([logging.getLogger("sidecar_thumbs")], tqdm_class=tqdm))
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish(*exc)  # type: ignore[arg-type]

    def update(self, ok: bool) -> None:
        if ok:
            self.ok += 1
        else:
            self.failed += 1
        now = time.monotonic()
        if self._origin is None:
            self._origin = (now, self.done)
        if self.mode == "bar":
            self._bar.set_description_str(self.line(now), refresh=False)
            self._bar.update(1)
        elif self.mode != "off" and (now - self._last_draw >= self.log_every or self.done == self.total):
            self._last_draw = now
            self._write(now)

    def rate(self, now: float | None = None) -> float:
        """Files a second since the rate's origin (the start, or the first finished file after a
        compile); 0 until there is something to measure."""
        if self._origin is None:
            return 0.0
        since, done_then = self._origin
        elapsed = (now or time.monotonic()) - since
        return (self.done - done_then) / elapsed if elapsed > 0 else 0.0

    def eta_s(self, now: float | None = None) -> float | None:
        rate, left = self.rate(now), max(0, self.total - self.done)
        return left / rate if rate > 0 else None

    def line(self, now: float | None = None) -> str:
        head = f"{self.label} {self.done}/{self.total}  ✓ {self.ok} ✗ {self.failed}"
        if self.done == 0:
            return f"{head}  {COMPILING if self.compiling else 'starting'}"
        if self.done >= self.total:
            return f"{head}  {format_rate(self.rate(now), 'files')}  done" if self.rate(now) > 0 else f"{head}  done"
        eta = self.eta_s(now)
        if eta is None:  # the first file after a compile: nothing to measure a rate on yet
            return f"{head}  measuring the rate"
        return f"{head}  {format_rate(self.rate(now), 'files')}  ETA {format_duration(eta)}"

    def _write(self, now: float) -> None:
        text = self.line(now)
        if self.mode == "json":
            eta = self.eta_s(now)
            text = json_line(
                "info", "sidecar_thumbs.progress", text, event="progress", done=self.done, total=self.total,
                ok=self.ok, failed=self.failed, rate_per_s=round(self.rate(now), 3),
                eta_s=None if eta is None else round(eta, 1),
            )  # fmt: skip
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        """Stop drawing: the bar stays on screen as its last state; nothing more is written after."""
        if self._bar is not None:
            self._bar.set_description_str(self.line(), refresh=True)
        self._exit.__exit__(exc_type, exc, tb)
        self._bar = None
        if self.mode in ("lines", "json") and self.done and self.done != self.total:
            self._write(time.monotonic())  # a stopped run: the last count, once
        self.mode = "off"
