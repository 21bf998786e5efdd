"""Jobs into batches for the Dask executor: a full batch leaves at once, a partial one ``linger`` seconds after
its first job came (the pipeline submits a batch's worth in a burst; a daemon's events come one by one)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sidecar_thumbs.work.executors.dask_batches import FileTask

__all__ = ["Batcher"]


class Batcher:
    """The jobs submitted and not yet sent, and the thread that sends a partial batch when it has waited enough.

    Every method but :meth:`stop` is called with ``lock`` held (the executor's lock, shared so that a send
    and the bookkeeping of what was sent are one step); ``send`` is called with it held too.
    """

    def __init__(self, size: int, linger: float, lock: threading.RLock, send: Callable[[list[FileTask]], None]) -> None:
        self.size = size
        self._linger = linger
        self._wake = threading.Condition(lock)
        self._send = send
        self._files: list[FileTask] = []
        self._since = 0.0  # when the first file of the buffer came
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="dask-batcher", daemon=True)
        self._thread.start()

    @property
    def files(self) -> list[FileTask]:
        return list(self._files)

    def add(self, task: FileTask) -> None:
        if not self._files:
            self._since = time.monotonic()
        self._files.append(task)
        if len(self._files) >= self.size:
            self.flush()
        else:
            self._wake.notify()

    def flush(self) -> None:
        """Send what is buffered now, as one batch."""
        files, self._files = self._files, []
        if files:
            self._send(files)

    def put_back(self, files: list[FileTask]) -> None:
        """Files a send could not take, first in line again."""
        self._files = files + self._files

    def discard(self, task: FileTask) -> None:
        if task in self._files:
            self._files.remove(task)

    def take_all(self) -> list[FileTask]:
        files, self._files = self._files, []
        return files

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        self._thread.join()

    def _run(self) -> None:
        with self._wake:
            while not self._stopped:
                if not self._files:
                    self._wake.wait()
                    continue
                remaining = self._since + self._linger - time.monotonic()
                if remaining > 0:
                    self._wake.wait(remaining)
                    continue
                self.flush()
