"""Where render jobs run: a persistent local process pool, or inline (the test and debug seam).

Both hand back ``concurrent.futures.Future`` objects (pebble's futures subclass them), so the
coordinator waits on them with ``concurrent.futures.wait`` whatever runs the work — and a Dask
executor can join later through the same seam.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from sidecar_thumbs.errors import RunError
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.work.jobs import RenderJob, RenderResult, failure, render_job, warm_up_worker

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


class LocalPool:
    """A pebble ``ProcessPool``: persistent spawn workers (numba warmed once each), a per-file
    timeout that kills the worker, crash isolation (a segfault fails only its file) and recycling
    after ``max_tasks`` jobs so a slow leak in a native library cannot grow for ever."""

    def __init__(
        self,
        workers: int,
        *,
        timeout: float,
        max_tasks: int = 500,
        options: ThumbnailOptions | None = None,
        job: Callable[[RenderJob], RenderResult] = render_job,
    ) -> None:
        import pebble

        self.workers = workers
        self.timeout = timeout
        self._job = job  # the seam for fault-injection tests; must be a picklable top-level function
        # spawn everywhere: macOS's default (fork crashes in Objective-C, bpo-33725), and Linux
        # 3.14's forkserver default would make CI differ from the Mac.
        self._pool = pebble.ProcessPool(
            max_workers=workers,
            max_tasks=max_tasks,
            initializer=warm_up_worker,
            initargs=(options,),
            context=multiprocessing.get_context("spawn"),
        )

        # pebble spawns its workers on the first submission; start them now, so their start-up and
        # numba warm-up overlap with the coordinator's walk instead of delaying the first render.
        self._pool.submit(_noop, None)

    def submit(self, job: RenderJob) -> cf.Future[RenderResult]:
        return self._pool.submit(self._job, self.timeout, job)

    def shutdown(self, *, cancel: bool = False) -> None:
        if cancel:
            self._pool.stop()  # kills running workers: used on a hard stop only
        else:
            self._pool.close()
        self._pool.join()


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
