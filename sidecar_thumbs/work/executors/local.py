"""Where render jobs run: a persistent local process pool, or inline (the test and debug seam).

Both hand back ``concurrent.futures.Future`` objects (pebble's futures subclass them), so the
coordinator waits on them with ``concurrent.futures.wait`` whatever runs the work — and a Dask
executor can join later through the same seam.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import multiprocessing
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from sidecar_thumbs.errors import RunError
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.work.jobs import RenderJob, RenderResult, WarmUpSlots, failure, render_job, warm_up_worker

__all__ = ["TIMEOUT_ATTEMPTS", "Executor", "InlineExecutor", "LocalPool", "make_executor", "result_of"]

# A timeout is not proof of a bad file: the worker may have been stopped (SIGSTOP, a laptop asleep)
# or stuck on a share that did not answer. The same content timing out this many times in a row
# (with the back-off between) is permanent.
TIMEOUT_ATTEMPTS = 3


class Executor(Protocol):
    """Runs render jobs. ``submit`` must not block for long; ``shutdown`` ends the workers."""

    workers: int

    def submit(self, job: RenderJob) -> cf.Future[RenderResult]: ...

    def shutdown(self, *, cancel: bool = False) -> None: ...


def _noop() -> None:
    """Starts the pool's workers (see LocalPool)."""


class InlineExecutor:
    """Runs each job in this process when it is submitted (pool size 0, as in thumbor).

    No crash isolation and no timeout: for tests and ``--workers 0`` debugging only.
    """

    workers = 1

    def submit(self, job: RenderJob) -> cf.Future[RenderResult]:
        fut: cf.Future[RenderResult] = cf.Future()
        fut.set_result(render_job(job))
        return fut

    def shutdown(self, *, cancel: bool = False) -> None:
        pass


# Chunks (issue 17 item 4): a pebble task costs a round trip each way (the task, an acknowledgement, the
# result) and a hop through two pool threads; for the 60 % of a library under 5k triangles that was as much as
# the render. Files under ALONE_BYTES (~20k triangles of binary STL) go to a worker CHUNK_FILES at a time, up to
# CHUNK_BYTES of models in all; a larger
# file goes alone (its render dwarfs the round trip, and a long chunk would stall the end of a run).
CHUNK_FILES = 16
CHUNK_BYTES = 4 << 20
ALONE_BYTES = 1 << 20


def run_chunk(job: Callable[[RenderJob], RenderResult], jobs: list[RenderJob]) -> list[RenderResult]:
    """The worker side of a chunk: every job in order. ``render_job`` never raises for a bad file; if the
    job function raises (or the worker dies, or the chunk times out) the coordinator retries each job of
    the chunk alone, so the failure is told of the one file that caused it."""
    return [job(j) for j in jobs]


class _Chunk:
    """Jobs sent to one worker task, and the per-file futures the coordinator waits on."""

    def __init__(self) -> None:
        self.items: list[tuple[RenderJob, cf.Future[RenderResult]]] = []
        self.bytes = 0
        self.task: cf.Future[list[RenderResult]] | None = None


class LocalPool:
    """A pebble ``ProcessPool``: persistent spawn workers (numba warmed once each), a per-file
    timeout that kills the worker, crash isolation (a segfault fails only its file) and recycling
    after ``max_tasks`` tasks so a slow leak in a native library cannot grow for ever.

    Small files travel in chunks (see ``CHUNK_FILES``); each file still has its own future. A chunk that
    fails as a whole — its worker crashed or was killed by the timeout (which applies to the chunk, so
    no file gets more than the per-file limit), or the job function raised — is not anyone's failure
    yet: each of its files is sent again alone, with the full limit, and only a file that fails alone
    gets the crash or the timeout. A chunk waits to fill only while every worker has work; an idle
    worker gets what is there at once.
    """

    def __init__(
        self,
        workers: int,
        *,
        timeout: float,
        max_tasks: int = 500,
        options: ThumbnailOptions | None = None,
        job: Callable[[RenderJob], RenderResult] = render_job,
        chunk_files: int = CHUNK_FILES,
        chunk_bytes: int = CHUNK_BYTES,
        alone_bytes: int = ALONE_BYTES,
    ) -> None:
        import pebble

        self.workers = workers
        self.timeout = timeout
        self.chunk_files = max(1, chunk_files)
        self.chunk_bytes = chunk_bytes
        self.alone_bytes = alone_bytes
        self._job = job  # the seam for fault-injection tests; must be a picklable top-level function
        self._lock = threading.RLock()  # callbacks may run at once, in the thread that holds it
        self._open = _Chunk()  # filling; sent when full, or at once when a worker would idle
        self._tasks = 0  # tasks sent and not finished
        # spawn everywhere: macOS's default (fork crashes in Objective-C, bpo-33725), and Linux
        # 3.14's forkserver default would make CI differ from the Mac.
        context = multiprocessing.get_context("spawn")
        self._pool = pebble.ProcessPool(
            max_workers=workers,
            # A task is a file or a chunk: a worker's start costs ~0.75 s of CPU (imports, numba's cache),
            # the render of a hundred small files, so it is not replaced sooner than before chunks. Its memory
            # stays flat over thousands of renders (docs/PERFORMANCE.md), so the longer life is safe.
            max_tasks=max_tasks,
            initializer=warm_up_worker,
            # On a cold cache the workers share the compile instead of each doing all of it.
            initargs=(options, WarmUpSlots(workers, context)),
            context=context,
        )

        # pebble spawns its workers on the first submission; start them now, so their start-up and
        # numba warm-up overlap with the coordinator's walk instead of delaying the first render.
        self._pool.submit(_noop, None)

    def submit(self, job: RenderJob) -> cf.Future[RenderResult]:
        fut: cf.Future[RenderResult] = cf.Future()
        size = job.size if job.size is not None else self.alone_bytes
        if size >= self.alone_bytes or self.chunk_files == 1:
            self._send_alone(job, fut)
            return fut
        with self._lock:
            if self._open.bytes + size > self.chunk_bytes:
                self._send_open()
            self._open.items.append((job, fut))
            self._open.bytes += size
            if len(self._open.items) >= self.chunk_files or self._tasks < self.workers:
                self._send_open()
        return fut

    def _send_open(self) -> None:
        """Send the filling chunk (the lock held)."""
        chunk, self._open = self._open, _Chunk()
        items = [(j, f) for j, f in chunk.items if not f.cancelled()]
        if not items:
            return
        if len(items) == 1:
            self._send_alone(*items[0])
            return
        chunk.items = items
        try:
            chunk.task = self._pool.submit(run_chunk, self.timeout, self._job, [j for j, _ in items])
        except RuntimeError:  # the pool is closing: as pebble cancels what it has not started
            for _, f in items:
                _settle(f, exc=cf.CancelledError())
            return
        self._tasks += 1
        for _, f in items:
            f.add_done_callback(functools.partial(self._cancelled, chunk=chunk))
        chunk.task.add_done_callback(functools.partial(self._chunk_done, chunk=chunk))

    def _send_alone(self, job: RenderJob, fut: cf.Future[RenderResult]) -> None:
        """One file, one task: exactly what a failure is told of (the lock may be held)."""
        try:
            task = self._pool.submit(self._job, self.timeout, job)
        except RuntimeError:
            _settle(fut, exc=cf.CancelledError())
            return
        with self._lock:
            self._tasks += 1
        fut.add_done_callback(lambda f: f.cancelled() and task.cancel())
        task.add_done_callback(lambda t: self._alone_done(t, fut))

    def _alone_done(self, task: cf.Future[RenderResult], fut: cf.Future[RenderResult]) -> None:
        if task.cancelled():
            _settle(fut, exc=cf.CancelledError())
        elif (exc := task.exception()) is not None:
            _settle(fut, exc=exc)
        else:
            _settle(fut, result=task.result())
        self._finished()

    def _chunk_done(self, task: cf.Future[list[RenderResult]], chunk: _Chunk) -> None:
        results = None if task.cancelled() or task.exception() is not None else task.result()
        if results is not None:
            for (_, f), r in zip(chunk.items, results, strict=True):
                _settle(f, result=r)
        else:
            # Whose fault it was is not known: each file goes again alone (cancelled ones stay so).
            with self._lock:
                for j, f in chunk.items:
                    if not f.done():
                        self._send_alone(j, f)
        self._finished()

    def _finished(self) -> None:
        """A task ended: if a worker would now run out of work, what is waiting in the filling chunk goes
        (else it fills on; a task still to end sends it, so no file waits for ever)."""
        with self._lock:
            self._tasks -= 1
            if self._open.items and self._tasks < self.workers:
                self._send_open()

    @staticmethod
    def _cancelled(fut: cf.Future[RenderResult], chunk: _Chunk) -> None:
        # The coordinator cancels what it gave up on (a stop): when that is the whole chunk, stop the
        # worker too (pebble kills a running task's worker), as it did for a file sent alone.
        if fut.cancelled() and chunk.task is not None and all(f.cancelled() for _, f in chunk.items):
            chunk.task.cancel()

    def shutdown(self, *, cancel: bool = False) -> None:
        if cancel:
            with self._lock:
                for _, f in self._open.items:
                    f.cancel()
                self._open = _Chunk()
            self._pool.stop()  # kills running workers: used on a hard stop only
        else:
            with self._lock:
                self._send_open()
            self._pool.close()
        self._pool.join()


def _settle(
    fut: cf.Future[RenderResult],
    *,
    result: RenderResult | None = None,
    exc: BaseException | None = None,
) -> None:
    """Set a per-file future unless the coordinator cancelled it meanwhile (its result is not wanted)."""
    with contextlib.suppress(cf.InvalidStateError):
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)  # type: ignore[arg-type]


def result_of(job: RenderJob, fut: cf.Future[RenderResult], timeout: float | None = None) -> RenderResult:
    """A finished future's result, turning pool-level failures into a failed result for that file."""
    try:
        return fut.result(timeout=0)
    except cf.CancelledError:
        return failure(job.path, "cancelled", transient=True)
    except TimeoutError:
        limit = f" of {timeout:g} s" if timeout else ""
        result = failure(job.path, f"render timed out after the limit{limit}; the worker was stopped", transient=True)
        return replace(result, max_attempts=TIMEOUT_ATTEMPTS)
    except RunError:
        raise  # the executor itself is gone (a lost Dask scheduler): the run stops, claims go back
    except Exception as exc:
        from pebble import ProcessExpired

        if isinstance(exc, ProcessExpired):
            code = exc.exitcode
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            return failure(job.path, f"worker process crashed ({how}) while rendering this file")
        return failure(job.path, f"worker error: {type(exc).__name__}: {exc}")


def make_executor(workers: int, *, timeout: float, max_tasks: int, options: ThumbnailOptions) -> Executor:
    """The local executor for ``workers`` processes (0: inline in this process)."""
    if workers <= 0:
        return InlineExecutor()
    return LocalPool(workers, timeout=timeout, max_tasks=max_tasks, options=options)
