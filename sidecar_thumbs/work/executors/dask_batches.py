"""The Dask executor's bookkeeping: one render job (:class:`FileTask`), the batch of them one Dask task runs
(:class:`Batch`), and what a worker's death or a timeout means for each file of a batch (pure functions).

A batch's files run one after the other on one worker; each announces its start, so the batch knows
which file is running (``current``) and since when (``started``). That keeps the per-file timeout of one
task a file: a file that runs past it fails alone, the others of its batch go again. A worker that dies
takes a batch's results with it; its files go again one a task, where a file that crashes is caught.
"""

from __future__ import annotations

import concurrent.futures as cf
from dataclasses import dataclass
from typing import Any

from sidecar_thumbs.work.jobs import RenderJob, RenderResult

__all__ = ["UNSTARTED_FACTOR", "Batch", "DeathVerdict", "FileTask", "judge_death", "unstarted_limit"]

# A batch with no start notice at all (its worker's event loop starved?) is stuck after this many timeouts
# beyond the files it may wait behind (see unstarted_limit).
UNSTARTED_FACTOR = 3.0


@dataclass(eq=False)
class FileTask:
    """One submitted job and the coordinator's future for it, across resubmissions."""

    job: RenderJob
    future: cf.Future[RenderResult]
    crashes: int = 0  # workers that died while running this job
    deaths: int = 0  # workers that died while this job was only queued on (or finished on) them
    settled: bool = False  # its future was given an outcome (under the executor's lock)
    batch: Batch | None = None  # the batch it is in now; None while buffered


@dataclass(eq=False)
class Batch:
    """Files sent as one Dask task; ``dask`` is None once settled (no result stays pinned on a worker)."""

    files: list[FileTask]
    dask: Any  # distributed.Future | None
    key: str
    submitted: float  # coordinator's monotonic clock
    started: float | None = None  # when the current file's start notice arrived
    current: int = 0  # index of the file announced last
    worker: str | None = None

    def running(self) -> FileTask | None:
        """The file the worker announced last, if any has started."""
        return self.files[self.current] if self.started is not None else None

    def overdue(self, now: float, timeout: float, unstarted: float) -> bool:
        """Its current file has run past ``timeout``, or nothing of it was announced for ``unstarted`` s."""
        if self.started is not None:
            return now - self.started > timeout
        return now - self.submitted > unstarted

    def live(self) -> list[FileTask]:
        """Files still waiting for an outcome."""
        return [f for f in self.files if not f.settled and not f.future.done()]


@dataclass
class DeathVerdict:
    """What a worker's death means for the live files of a batch it held."""

    failed: list[tuple[FileTask, str]]  # (file, reason): out of retries
    again: list[FileTask]  # to be sent again
    alone: bool  # each in a task of its own (the culprit may be among them), or together as before


def judge_death(
    batch: Batch, address: str | None, running_there: Batch | None, *, crash_retries: int, max_deaths: int
) -> DeathVerdict:
    """Charge a worker's death to the files of a batch it held; counters are updated on the files.

    ``running_there`` is the batch the dead worker last announced a start for, if any. One worker runs one
    task at a time, so a batch only queued behind another that had started is innocent: it goes again as
    it was, uncharged. The batch that was running is the culprit's: alone, its file had announced its
    start with a round trip and is charged a crash, failing after more than ``crash_retries`` (a machine
    switched off mid-render is not the file's fault, a second crash is); in a larger batch, whose notices
    may not have left a worker that crashed at once, no file can be blamed, so each is charged a death and
    goes again alone, where a file that crashes again is caught. With no start known on that worker (a
    lost notice), every file is charged a death and goes again alone; ``max_deaths`` deaths fail a file.
    """
    if running_there is not None and running_there is not batch:
        return DeathVerdict([], batch.live(), alone=False)
    suspect = batch.running() if running_there is batch and len(batch.files) == 1 else None
    verdict = DeathVerdict([], [], alone=True)
    where = f"Dask worker {address}" if address else "its Dask worker"
    for f in batch.live():
        if f is suspect:
            f.crashes += 1
        else:
            f.deaths += 1
        if f.crashes > crash_retries or f.deaths >= max_deaths:
            tries = f.crashes + f.deaths
            reason = f"worker process crashed while rendering this file ({where} died; {tries} attempts)"
            verdict.failed.append((f, reason))
        else:
            verdict.again.append(f)
    return verdict


def unstarted_limit(timeout: float, batch_size: int, factor: float) -> float:
    """Seconds a batch may go without any start notice before it counts as stuck.

    It waits behind at most one batch on its worker (the pipeline keeps two a render slot), each file of
    which may take up to ``timeout``; ``factor`` (3 for a batch of one) leaves room beyond that.
    """
    return timeout * (factor + batch_size - 1)
