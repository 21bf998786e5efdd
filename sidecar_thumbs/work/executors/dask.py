"""Render on a Dask distributed cluster: the same pure ``render_job``, on many machines.

The coordinator (the daemon on the Mac) keeps owning the database and writing sidecars; Dask workers
that mount the same share only turn a path into PNG bytes. Dask leaves gaps that this module fills:

* **Caching.** Every task is submitted with ``pure=False``: identical resubmissions would otherwise
  get the first result back without rendering again.
* **No per-task timeout** (dask/distributed#391). Each task tells the coordinator when it really
  starts on a worker (a Dask event, so time spent queued does not count); a monitor thread fails a
  task that runs past ``timeout`` with ``TimeoutError`` and restarts its worker through the nanny —
  the only way to stop a thread stuck in native code. Other workers carry on; the worker rejoins.
* **Worker deaths.** The scheduler charges a death to *every* task assigned to that worker, also the
  ones only queued there, and re-runs the culprit up to ``allowed-failures`` times, killing a worker
  each time. We set ``allowed-failures`` to 0 on the scheduler and decide here instead: the task
  that had started on the dead worker fails ("worker process crashed"), the innocent queued ones are
  submitted again (at most ``max_worker_deaths`` times, in case a start notice was lost).
* **Concurrency.** Tasks need one ``RENDER`` resource; workers are started with ``--nthreads 1
  --resources RENDER=1`` per core, so a machine never runs more renders than it has cores for.
  ``workers`` is the cluster's total, refreshed as workers come and go (the pipeline's window).
* **A lost scheduler** fails every render in flight with :class:`SchedulerLostError` (a
  ``RunError``) and makes ``submit`` raise it, so the run stops and its claims go back to pending.
* **Warm workers.** A worker plugin loads numba's compiled code on every worker, also those that
  join later, so no file pays the compile cost.

The returned futures are plain ``concurrent.futures.Future`` objects, so the pipeline waits on them
with ``concurrent.futures.wait`` exactly as it does on the local pool's.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sidecar_thumbs.errors import ConfigError, RunError
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.work.jobs import RenderJob, RenderResult, failure, render_job

try:
    import distributed
    from distributed.diagnostics.plugin import WorkerPlugin
    from distributed.scheduler import KilledWorker
except ImportError as exc:  # the extra is optional; say how to get it
    raise ConfigError("the dask executor needs Dask distributed: pip install 'sidecar-thumbs[dask]'") from exc

__all__ = ["DaskExecutor", "DaskUnavailableError", "SchedulerLostError"]

log = logging.getLogger(__name__)

RESOURCE = "RENDER"
PLUGIN_NAME = "sidecar-thumbs-warm-up"
# A task with no start notice (its worker's event loop starved?) is given this many timeouts from
# submission: with the pipeline's window of two tasks per worker, a task waits behind one at most.
UNSTARTED_FACTOR = 3.0
# Seconds to fetch a finished result from its worker (PNG bytes: milliseconds normally).
FETCH_TIMEOUT = 60.0


class SchedulerLostError(RunError):
    """lost the Dask scheduler"""


class DaskUnavailableError(ConfigError):
    """the Dask cluster cannot be used"""


# -- worker side -------------------------------------------------------------------------------------


def _run_job(fn: Callable[[RenderJob], RenderResult], job: RenderJob, topic: str) -> RenderResult:
    """The task a worker runs: announce the start (for the coordinator's timeout), then render."""
    _announce_start(topic)
    return fn(job)


def _announce_start(topic: str) -> None:
    try:
        from distributed.utils import sync

        worker = distributed.get_worker()
        msg = {"key": str(worker.get_current_task()), "worker": worker.address}
    except Exception:  # not on a worker (tests calling it inline): nothing to announce
        return
    try:
        # A round trip, not the fire-and-forget Worker.log_event: a file that segfaults at once
        # would kill the process before the batched message left, and the coordinator must know
        # which task was running when a worker died.
        sync(worker.loop, worker.scheduler.log_event, topic=topic, msg=msg, callback_timeout=10)
    except Exception:  # without the notice the coordinator times the task from its submission
        worker.log_event(topic, msg)


def _warm_up(options: ThumbnailOptions | None) -> None:
    # Not jobs.warm_up_worker: that one ignores SIGINT for pool children, which would stop a
    # `dask worker` in a terminal from reacting to Ctrl-C (and signal() only works in the main thread).
    try:
        from sidecar_thumbs.mesh import load as mesh_load
        from sidecar_thumbs.render import warm_up

        warm_up((options or ThumbnailOptions()).render)
        mesh_load.warm_up()
    except Exception:
        logging.getLogger(__name__).exception("worker warm-up failed; continuing cold")


class WarmUpPlugin(WorkerPlugin):
    """Loads numba's compiled renderer on every worker, including workers that join later."""

    name = PLUGIN_NAME

    def __init__(self, options: ThumbnailOptions | None = None) -> None:
        self.options = options

    def setup(self, worker: Any) -> None:
        _warm_up(self.options)


def _set_allowed_failures(value: int, dask_scheduler: Any = None) -> int:
    """Runs on the scheduler: set ``allowed-failures``; returns the previous value."""
    old = int(dask_scheduler.allowed_failures)
    dask_scheduler.allowed_failures = value
    return old


# -- coordinator side --------------------------------------------------------------------------------


@dataclass(eq=False)
class _Task:
    job: RenderJob
    future: cf.Future[RenderResult]
    dask: distributed.Future | None  # None once settled: the result must not stay pinned on a worker
    key: str
    submitted: float
    started: float | None = None  # coordinator's monotonic clock when the start notice arrived
    worker: str | None = None
    crashes: int = 0  # workers that died while running this job
    deaths: int = 0  # workers that died while this job was only queued on them


class DaskExecutor:
    """Runs render jobs on a Dask cluster; implements the ``Executor`` protocol.

    Args:
        scheduler: the scheduler address (``tcp://mac.local:8786``), a ``LocalCluster`` or a
            ``Client`` (not closed by :meth:`shutdown`; a client made here is).
        timeout: seconds one render may run on a worker before it fails and the worker restarts.
        options: thumbnail options, for warming up the workers.
        job: the function workers run (a seam for fault-injection tests; picklable, importable on
            the workers).
        path_map: maps the coordinator's paths to the workers' (``pathmap.PathMap``); identity if None.
        connect_timeout: seconds to reach the scheduler (also how long the client tries to reconnect).
        wait_for_workers: seconds to wait for the first worker offering ``RENDER``.
        allowed_failures: set on the scheduler (see the module docs); None leaves it alone.
        crash_retries: a job whose worker died while running it is run again this many times
            elsewhere (a machine switched off mid-render is not the file's fault); then it fails.
        max_worker_deaths: a job queued on this many dying workers fails even if it was never seen
            running (a safety net for a lost start notice).
        tick: seconds between the monitor's checks of running tasks.
        refresh_interval: seconds between refreshes of :attr:`workers`.

    Raises:
        DaskUnavailableError: the scheduler cannot be reached or no worker offers ``RENDER``.
    """

    def __init__(
        self,
        scheduler: str | distributed.Client | distributed.LocalCluster,
        *,
        timeout: float,
        options: ThumbnailOptions | None = None,
        job: Callable[[RenderJob], RenderResult] = render_job,
        path_map: Callable[[str], str] | None = None,
        connect_timeout: float = 10.0,
        wait_for_workers: float = 30.0,
        restart_timeout: float = 60.0,
        allowed_failures: int | None = 0,
        crash_retries: int = 1,
        max_worker_deaths: int = 5,
        tick: float = 0.2,
        refresh_interval: float = 2.0,
    ) -> None:
        self.timeout = timeout
        self._job = job
        self._map = path_map
        self._restart_timeout = restart_timeout
        self._crash_retries = crash_retries
        self._max_deaths = max_worker_deaths
        self._tick = tick
        self._refresh_interval = refresh_interval
        self._lock = threading.RLock()
        self._tasks: dict[str, _Task] = {}  # by the current Dask key
        self._lost: SchedulerLostError | None = None
        self._restarting: set[str] = set()
        self._stop = threading.Event()
        self._client, self._own_client = self._connect(scheduler, connect_timeout)
        self.address: str = self._client.scheduler.address
        self._topic = f"sidecar-thumbs-started-{uuid.uuid4().hex}"  # one per coordinator
        try:
            self._client.subscribe_topic(self._topic, self._on_started)
            if allowed_failures is not None:
                self._set_allowed_failures(allowed_failures)
            self.workers: int = self._wait_for_render_slots(wait_for_workers)
            self._client.register_plugin(WarmUpPlugin(options), name=PLUGIN_NAME)
        except BaseException:
            self._close_client()
            raise
        self._restarter = cf.ThreadPoolExecutor(2, thread_name_prefix="dask-restart")
        self._fetchers = cf.ThreadPoolExecutor(4, thread_name_prefix="dask-fetch")
        self._monitor = threading.Thread(target=self._watch, name="dask-monitor", daemon=True)
        self._monitor.start()

    # -- Executor protocol ---------------------------------------------------------------------------

    def submit(self, job: RenderJob) -> cf.Future[RenderResult]:
        """Start rendering ``job`` on the cluster (the path is mapped for the workers).

        Raises:
            SchedulerLostError: the scheduler is gone; nothing more can run.
        """
        if self._lost is not None:
            raise self._lost
        if self._map is not None:
            job = replace(job, path=self._map(job.path))
        fut: cf.Future[RenderResult] = cf.Future()
        with self._lock:  # the start notice may race the registration; the handler takes the lock
            dfut = self._submit_dask(job)
            task = _Task(job, fut, dfut, str(dfut.key), time.monotonic())
            self._tasks[task.key] = task
        fut.add_done_callback(functools.partial(self._on_cf_done, task))
        dfut.add_done_callback(self._on_dask_done)
        return fut

    def shutdown(self, *, cancel: bool = False) -> None:
        """Stop: wait for renders in flight (``cancel``: drop them), then disconnect.

        Workers are not stopped: the cluster may serve other coordinators and is started and
        stopped by its own operator."""
        with self._lock:
            tasks = list(self._tasks.values())
        if cancel:
            for t in tasks:
                t.future.cancel()
        else:
            cf.wait([t.future for t in tasks])
        self._stop.set()
        if self._monitor.is_alive():
            self._monitor.join()
        self._restarter.shutdown(wait=True)
        self._fetchers.shutdown(wait=True)
        self._close_client()

    # -- connecting ----------------------------------------------------------------------------------

    @staticmethod
    def _connect(
        scheduler: str | distributed.Client | distributed.LocalCluster, timeout: float
    ) -> tuple[distributed.Client, bool]:
        if isinstance(scheduler, distributed.Client):
            return scheduler, False
        where = scheduler if isinstance(scheduler, str) else getattr(scheduler, "scheduler_address", "?")
        try:
            return distributed.Client(scheduler, timeout=timeout, set_as_default=False), True
        except (OSError, TimeoutError, ValueError) as exc:
            raise DaskUnavailableError(
                f"cannot reach the Dask scheduler at {where}: {exc}; is `dask scheduler` running there?"
            ) from exc

    def _close_client(self) -> None:
        with contextlib.suppress(Exception):
            self._client.unsubscribe_topic(self._topic)
        if self._own_client:
            try:
                self._client.close(timeout=5)
            except Exception:  # a lost scheduler: nothing left to close politely
                log.debug("closing the Dask client failed", exc_info=True)

    def _set_allowed_failures(self, value: int) -> None:
        try:
            old = self._client.run_on_scheduler(_set_allowed_failures, value)
        except Exception as exc:
            log.warning(
                "could not set allowed-failures=%d on the Dask scheduler (%s); a file that crashes its worker "
                "will be retried on other workers first. Start the scheduler with "
                "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=%d",
                value,
                exc,
                value,
            )
            return
        if old != value:
            log.info("Dask scheduler allowed-failures %d -> %d (crashes are judged by the coordinator)", old, value)

    def _render_slots(self) -> int:
        """Renders the cluster can run at once: per worker, its RENDER resource (at most its threads)."""
        info = self._client.scheduler_info(n_workers=-1)
        total = 0
        for w in info.get("workers", {}).values():
            slots = int((w.get("resources") or {}).get(RESOURCE, 0))
            total += min(slots, int(w.get("nthreads") or slots))
        return total

    def _wait_for_render_slots(self, wait: float) -> int:
        deadline = time.monotonic() + wait
        while True:
            slots = self._render_slots()
            if slots > 0:
                return slots
            if time.monotonic() >= deadline:
                raise DaskUnavailableError(
                    f"no Dask worker offering the {RESOURCE} resource joined {self.address} within {wait:g} s; "
                    f"start workers with: dask worker {self.address} --nthreads 1 --resources {RESOURCE}=1"
                )
            time.sleep(0.2)

    # -- tasks ---------------------------------------------------------------------------------------

    def _submit_dask(self, job: RenderJob) -> distributed.Future:
        return self._client.submit(_run_job, self._job, job, self._topic, pure=False, resources={RESOURCE: 1})

    def _settle(self, task: _Task, result: RenderResult | None = None, exc: BaseException | None = None) -> None:
        """Complete the coordinator's future once (a timeout and a late result may race)."""
        with self._lock:
            if self._tasks.get(task.key) is task:
                del self._tasks[task.key]
            task.dask = None  # drop our reference: Dask frees the result on its worker
            fut = task.future
            if fut.done() or not fut.set_running_or_notify_cancel():
                return
        if exc is not None:
            fut.set_exception(exc)
        else:
            assert result is not None
            fut.set_result(result)

    def _on_started(self, event: tuple[float, dict[str, str]]) -> None:
        # Runs on the client's event loop: only bookkeeping here.
        msg = event[1]
        with self._lock:
            task = self._tasks.get(msg.get("key", ""))
            if task is not None:
                task.started, task.worker = time.monotonic(), msg.get("worker")
        log.debug("started %s on %s (%s)", msg.get("key"), msg.get("worker"), task.job.path if task else "unknown")

    def _on_cf_done(self, task: _Task, fut: cf.Future[RenderResult]) -> None:
        if fut.cancelled():  # the pipeline gave up on it (abandon, shutdown): free the cluster too
            with self._lock:
                if self._tasks.get(task.key) is task:
                    del self._tasks[task.key]
                dfut, task.dask = task.dask, None
            if dfut is not None:
                self._cancel_quietly(dfut)

    def _on_dask_done(self, dfut: distributed.Future) -> None:
        # Dask runs every done-callback on one thread; fetching a result can block (a result lost
        # with its worker is computed again first), and must not hold up everyone else's outcome.
        with contextlib.suppress(RuntimeError):  # shutting down: nobody waits for it any more
            self._fetchers.submit(self._complete, dfut)

    def _complete(self, dfut: distributed.Future) -> None:
        """Turn the Dask outcome into the coordinator's (in a fetch thread)."""
        with self._lock:
            task = self._tasks.get(str(dfut.key))
            if task is None or task.dask is None or task.dask is not dfut:
                return  # timed out, cancelled or resubmitted already
            if dfut.status == "finished":
                # Until it is settled, time it as queued: if its result was lost with its worker,
                # Dask computes it again, and that run's start notice restarts the clock.
                task.started, task.submitted = None, time.monotonic()
        if dfut.status == "cancelled":
            # Not by us (we unregister first): the client lost the scheduler and cancelled all.
            self._lose(str(getattr(dfut._state, "exception", None) or "connection closed"))
            return
        try:
            if dfut.status == "finished":
                self._settle(task, result=dfut.result(timeout=FETCH_TIMEOUT))
                return
            exc = dfut.exception(timeout=FETCH_TIMEOUT)
        except Exception as fetch_error:  # e.g. the result was lost with its worker, and re-running it failed
            exc = fetch_error
        if isinstance(exc, KilledWorker):
            self._on_killed(task, exc)
        elif self._client.status != "running":
            self._lose(f"{type(exc).__name__}: {exc}")
        else:  # the job function raised (render_job never does): that file fails
            self._settle(task, exc=exc)

    def _on_killed(self, task: _Task, exc: KilledWorker) -> None:
        address = getattr(getattr(exc, "last_worker", None), "address", None)
        log.debug("killed worker %s under %s (%s; started on %s)", address, task.key, task.job.path, task.worker)
        if task.started is not None and task.worker == address:
            task.crashes += 1  # it was running there: maybe the culprit, maybe a machine switched off
        else:
            task.deaths += 1  # only queued there: innocent
        if task.crashes > self._crash_retries or task.deaths >= self._max_deaths:
            where = f"Dask worker {address}" if address else "its Dask worker"
            tries = task.crashes + task.deaths
            reason = f"worker process crashed while rendering this file ({where} died; {tries} attempts)"
            self._settle(task, result=failure(task.job.path, reason))
            return
        log.info("resubmitting %s: its Dask worker %s died", task.job.path, address)
        with self._lock:
            if self._tasks.get(task.key) is not task or task.future.done():
                return
            del self._tasks[task.key]
            task.dask = dfut = self._submit_dask(task.job)
            task.key, task.started, task.worker = str(dfut.key), None, None
            task.submitted = time.monotonic()
            self._tasks[task.key] = task
        dfut.add_done_callback(self._on_dask_done)

    def _lose(self, reason: str) -> None:
        with self._lock:
            if self._lost is None:
                self._lost = SchedulerLostError(f"lost the Dask scheduler at {self.address}: {reason}")
                log.error("%s", self._lost.message)
            tasks = list(self._tasks.values())
        for t in tasks:
            self._settle(t, exc=self._lost)

    @staticmethod
    def _cancel_quietly(dfut: distributed.Future) -> None:
        with contextlib.suppress(Exception):  # the client is closing or lost: the task goes with it
            dfut.cancel()

    # -- the monitor ---------------------------------------------------------------------------------

    def _watch(self) -> None:
        next_refresh = time.monotonic() + self._refresh_interval
        while not self._stop.wait(self._tick):
            try:
                if self._client.status not in ("running", "newly-created"):
                    self._lose(f"client {self._client.status}")
                    continue
                now = time.monotonic()
                self._expire_overdue(now)
                if now >= next_refresh:
                    self.workers = max(1, self._render_slots())
                    next_refresh = now + self._refresh_interval
            except Exception:  # the monitor must outlive a hiccup; a lost scheduler shows above
                log.debug("dask monitor check failed", exc_info=True)

    def _expire_overdue(self, now: float) -> None:
        with self._lock:
            overdue = [
                t
                for t in self._tasks.values()
                if (t.started is not None and now - t.started > self.timeout)
                or (t.started is None and now - t.submitted > self.timeout * UNSTARTED_FACTOR)
            ]
        if not overdue:
            return
        processing: dict[str, Any] | None = None
        for task in overdue:
            worker = task.worker
            if worker is None:  # never announced: find the worker holding it, if any
                if processing is None:
                    processing = self._client.processing()
                worker = next((w for w, keys in processing.items() if task.key in keys), None)
                if worker is None:
                    continue  # waiting for a worker with RENDER to join: not stuck, just queued
            ran = f"{now - task.started:.1f}" if task.started is not None else "?"
            log.warning("render of %s timed out on %s after %s s; restarting that worker", task.job.path, worker, ran)
            dfut = task.dask
            self._settle(task, exc=TimeoutError(f"render exceeded {self.timeout:g} s on Dask worker {worker}"))
            if dfut is not None:
                self._cancel_quietly(dfut)  # before the restart, so Dask does not run it elsewhere
            self._restart(worker)

    def _restart(self, worker: str) -> None:
        with self._lock:
            if worker in self._restarting:
                return
            self._restarting.add(worker)

        def run() -> None:
            try:
                out = self._client.restart_workers([worker], timeout=self._restart_timeout, raise_for_error=False)
                log.info("restarted Dask worker %s: %s", worker, out.get(worker, out))
            except Exception as exc:
                log.warning("could not restart Dask worker %s: %s", worker, exc)
            finally:
                with self._lock:
                    self._restarting.discard(worker)

        try:
            self._restarter.submit(run)
        except RuntimeError:  # shutting down
            with self._lock:
                self._restarting.discard(worker)
