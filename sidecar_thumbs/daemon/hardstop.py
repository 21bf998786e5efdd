"""The last resort of a stop: end the process when the main thread cannot get to it.

A stop signal only sets a flag; the daemon's loop acts on it. A main thread stuck in the kernel (a
read from a share that stopped answering, an ``open`` that waits) never gets back to the loop —
Python even retries an interrupted system call (PEP 475) — and two SIGTERMs did nothing. A timer
thread armed by the signal handler runs regardless: when it fires, it stops our worker processes and
calls ``os._exit``. That is safe for the data: sidecars are written atomically (a temp file is
removed at the next start), SQLite's WAL keeps every committed transaction and drops the open one,
the lock is a ``flock`` the kernel releases, and rows caught mid-render are released at the next start.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time

from sidecar_thumbs.errors import EXIT_RUN_FAILED

__all__ = ["HARD_STOP_MARGIN", "HardStop"]

log = logging.getLogger("sidecar_thumbs.daemon")

# Seconds past the grace period (or past a second signal) before the process is ended by force:
# time for the loop to commit results and release claims when it is not stuck.
HARD_STOP_MARGIN = 5.0


class HardStop:
    """A timer that ends the process; :meth:`arm` again moves it earlier, never later."""

    def __init__(self, exit_code: int = EXIT_RUN_FAILED) -> None:
        self.exit_code = exit_code
        self._lock = threading.RLock()  # re-entrant: the signal handler may interrupt disarm()
        self._timer: threading.Timer | None = None
        self._due: float | None = None

    def arm(self, delay: float) -> None:
        """End the process ``delay`` seconds from now unless :meth:`disarm` comes first.

        Safe to call from a signal handler: it only starts a thread (no lock is held across a signal).
        """
        due = time.monotonic() + delay
        with self._lock:
            if self._due is not None and self._due <= due:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._due = due
            self._timer = threading.Timer(delay, self._fire, args=(delay,))
            self._timer.daemon = True
            self._timer.name = "hard-stop"
            self._timer.start()

    def disarm(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._due = None, None

    def _fire(self, delay: float) -> None:
        log.error(
            "still not stopped %.0f s after the stop request (the main thread is stuck, e.g. reading a file "
            "that does not answer): exiting now; unfinished models are pending again at the next start",
            delay,
        )
        for handler in logging.getLogger().handlers + logging.getLogger("sidecar_thumbs").handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        # Workers notice a dead parent within a second, but not when they are stopped (SIGSTOP) or
        # stuck themselves: kill them now, SIGKILL works on stopped processes too.
        for child in multiprocessing.active_children():
            with contextlib.suppress(Exception):
                child.kill()
        os._exit(self.exit_code)
