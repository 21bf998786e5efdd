"""Render on a Dask distributed cluster: the same pure ``render_job``, on many machines.

The coordinator (the daemon on the Mac) keeps owning the database and writing sidecars; Dask workers
that mount the same share only turn paths into PNG bytes. Dask leaves gaps that this module fills (what each
failure does to the files in flight: docs/DASK.md, section 4):

* **Cost per task** (~6 ms of Dask CPU a task): jobs go ``batch_size`` files a task (:mod:`.dask_batcher`); a
  partial batch leaves after ``linger`` seconds. Tasks go with ``pure=False``, so nothing comes from Dask's cache.
* **No per-task timeout** (dask/distributed#391): each file announces its start on a worker (a Dask event);
  the monitor thread (:meth:`DaskExecutor._watch`) fails a file past ``timeout`` and restarts its worker through
  the nanny, the only way to stop a thread stuck in native code; the rest of its batch goes again.
* **Worker deaths**: ``allowed-failures`` is 0 and :func:`.dask_batches.judge_death` decides who is to blame.
* **Concurrency**: a task needs one ``RENDER`` resource (workers run ``--nthreads 1 --resources RENDER=1``).
* **A lost scheduler** fails every render in flight with :class:`SchedulerLostError` (a ``RunError``) and makes
  ``submit`` raise it. A worker plugin warms numba on every worker, also those that join later. The returned
  futures are plain ``concurrent.futures.Future`` objects, as the local pool's.
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
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sidecar_thumbs.errors import ConfigError
from sidecar_thumbs.work.executors.dask_batcher import Batcher
from sidecar_thumbs.work.executors.dask_batches import UNSTARTED_FACTOR, Batch, FileTask, judge_death, unstarted_limit
from sidecar_thumbs.work.executors.dask_cluster import (
    ClusterLink,
    DaskUnavailableError,
    SchedulerLostError,
    cancel_quietly,
)
from sidecar_thumbs.work.executors.dask_worker import PLUGIN_NAME, RESOURCE, WarmUpPlugin, run_batch
from sidecar_thumbs.work.jobs import RenderJob, RenderResult, failure, render_job

try:
    import distributed
    from distributed.scheduler import KilledWorker
except ImportError as exc:  # the extra is optional; say how to get it
    raise ConfigError("the dask executor needs Dask distributed: pip install 'sidecar-thumbs[dask]'") from exc

if TYPE_CHECKING:
    from sidecar_thumbs.render.thumbnail import ThumbnailOptions

__all__ = ["PLUGIN_NAME", "DaskExecutor", "DaskUnavailableError", "SchedulerLostError"]

log = logging.getLogger(__name__)

# Files a Dask task. Measured with bench/dask.py (docs/DASK.md): at 8, Dask costs 1.12-1.15x the local pool's
# CPU on 2 cores (1.5x one file a task); more only lengthens the tail, where one worker is left with a batch.
BATCH_SIZE = 8
# Seconds a partial batch waits for more jobs: the pipeline submits a batch's worth in a burst, a daemon's
# events one by one.
LINGER = 0.01
# Seconds to fetch a finished result from its worker (PNG bytes: milliseconds normally).
FETCH_TIMEOUT = 60.0


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
        crash_retries, max_worker_deaths: when a worker's death fails a file (see
            :func:`.dask_batches.judge_death`).
        batch_size: files a Dask task (1: one task a file, as before batching).
        linger: seconds a partial batch waits for more jobs before it is sent.
        tick: seconds between the monitor's checks of running tasks.
        refresh_interval: seconds between refreshes of :attr:`workers`.

    Attributes:
        slots: renders the cluster runs at once (its ``RENDER`` slots), refreshed as workers come and go.
        workers: jobs the cluster takes at once, ``slots × batch_size``: the pipeline keeps twice this
            many submitted, i.e. a batch running and one queued on every slot.

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
        batch_size: int = BATCH_SIZE,
        linger: float = LINGER,
        tick: float = 0.2,
        refresh_interval: float = 2.0,
    ) -> None:
        self.timeout = timeout
        self.batch_size = max(1, batch_size)
        self._job = job
        self._map = path_map
        self._crash_retries = crash_retries
        self._max_deaths = max_worker_deaths
        self._tick = tick
        self._refresh_interval = refresh_interval
        self._lock = threading.RLock()
        self._batches: dict[str, Batch] = {}  # sent, by their current Dask key
        # The batch each worker announced a start for last, kept after a worker dies (its batches' deaths are
        # judged one by one, in any order: each needs to know which one was running there).
        self._running_on: dict[str, Batch] = {}
        self._lost: SchedulerLostError | None = None
        self._stop = threading.Event()
        self._link = ClusterLink(scheduler, connect_timeout=connect_timeout, restart_timeout=restart_timeout)
        self._client = self._link.client
        self.address: str = self._link.address
        self._topic = f"sidecar-thumbs-started-{uuid.uuid4().hex}"  # one per coordinator
        try:
            self._client.subscribe_topic(self._topic, self._on_started)
            if allowed_failures is not None:
                self._link.set_allowed_failures(allowed_failures)
            self.slots: int = self._link.wait_for_render_slots(wait_for_workers)
            self.workers: int = self.slots * self.batch_size
            self._client.register_plugin(WarmUpPlugin(options), name=PLUGIN_NAME)
        except BaseException:
            self._link.close(self._topic)
            raise
        self._fetchers = cf.ThreadPoolExecutor(4, thread_name_prefix="dask-fetch")
        self._batcher = Batcher(self.batch_size, linger, self._lock, self._send)  # what is submitted, not yet sent
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
        task = FileTask(job, cf.Future())
        task.future.add_done_callback(functools.partial(self._on_cf_done, task))
        with self._lock:
            self._batcher.add(task)
        if self._lost is not None:
            raise self._lost
        return task.future

    def shutdown(self, *, cancel: bool = False) -> None:
        """Stop: wait for renders in flight (``cancel``: drop them), then disconnect.

        Workers are not stopped: the cluster may serve other coordinators and is started and
        stopped by its own operator."""
        with self._lock:
            if not cancel:
                self._batcher.flush()
            tasks = [*self._batcher.files, *(f for b in self._batches.values() for f in b.files)]
        if cancel:
            for t in tasks:
                t.future.cancel()
        else:
            cf.wait([t.future for t in tasks])
        self._stop.set()
        self._batcher.stop()
        if self._monitor.is_alive():
            self._monitor.join()
        self._fetchers.shutdown(wait=True)
        self._link.close(self._topic)

    def running(self) -> list[str]:
        """Paths being rendered now, as their workers announced them (for logs and tests)."""
        with self._lock:
            return [t.job.path for b in self._batches.values() if (t := b.running()) is not None]

    # -- sending -------------------------------------------------------------------------------------

    def _send(self, files: list[FileTask]) -> None:
        """Submit ``files`` as one Dask task (caller holds the lock: a start notice may race the registration)."""
        if self._lost is not None:
            for f in files:
                self._settle(f, exc=self._lost)
            return
        try:
            dfut = self._client.submit(
                run_batch, self._job, [f.job for f in files], self._topic, pure=False, resources={RESOURCE: 1}
            )
        except Exception as exc:  # the client is closed or lost: nothing more can run
            self._batcher.put_back(files)
            self._lose(f"{type(exc).__name__}: {exc}")
            return
        batch = Batch(files, dfut, str(dfut.key), time.monotonic())
        for f in files:
            f.batch = batch
        self._batches[batch.key] = batch
        dfut.add_done_callback(self._on_dask_done)

    # -- outcomes ------------------------------------------------------------------------------------

    def _settle(self, task: FileTask, result: RenderResult | None = None, exc: BaseException | None = None) -> None:
        """Complete the coordinator's future once (a timeout and a late result may race)."""
        with self._lock:
            if task.settled:
                return
            task.settled = True
        fut = task.future
        if not fut.set_running_or_notify_cancel():
            return  # cancelled by the pipeline meanwhile
        if exc is not None:
            fut.set_exception(exc)
        else:
            assert result is not None
            fut.set_result(result)

    def _drop(self, batch: Batch) -> Any:
        """Forget a batch (caller holds the lock); returns its Dask future, if it still had one."""
        if self._batches.get(batch.key) is batch:
            del self._batches[batch.key]
        dfut, batch.dask = batch.dask, None  # drop our reference: Dask frees the result on its worker
        return dfut

    def _on_started(self, event: tuple[float, dict[str, Any]]) -> None:
        # Runs on the client's event loop: only bookkeeping here.
        msg = event[1]
        with self._lock:
            batch = self._batches.get(msg.get("key", ""))
            if batch is None:
                return  # settled already (a timeout), or another coordinator's
            batch.current = min(int(msg.get("index", 0)), len(batch.files) - 1)
            batch.started, batch.worker = time.monotonic(), msg.get("worker")
            if batch.worker:
                self._running_on[batch.worker] = batch
            path = batch.files[batch.current].job.path
        log.debug("started %s on %s", path, msg.get("worker"))

    def _on_cf_done(self, task: FileTask, fut: cf.Future[RenderResult]) -> None:
        if not fut.cancelled():
            return
        # The pipeline gave up on it (abandon, shutdown): unsent, it leaves the buffer; once every file
        # of its batch is over, the cluster is freed too.
        dfut = None
        with self._lock:
            self._batcher.discard(task)
            batch = task.batch
            if batch is not None and batch.dask is not None and all(f.future.done() for f in batch.files):
                dfut = self._drop(batch)
        if dfut is not None:
            cancel_quietly(dfut)

    def _on_dask_done(self, dfut: distributed.Future) -> None:
        # Dask runs every done-callback on one thread; fetching a result can block (a result lost
        # with its worker is computed again first), and must not hold up everyone else's outcome.
        with contextlib.suppress(RuntimeError):  # shutting down: nobody waits for it any more
            self._fetchers.submit(self._complete, dfut)

    def _complete(self, dfut: distributed.Future) -> None:
        """Turn the Dask outcome into the coordinator's (in a fetch thread)."""
        with self._lock:
            batch = self._batches.get(str(dfut.key))
            if batch is None or batch.dask is not dfut:
                return  # timed out, cancelled or resubmitted already
            if dfut.status == "finished":
                # Until it is settled, time it as queued: if its result was lost with its worker,
                # Dask computes it again, and that run's start notices restart the clock.
                batch.started, batch.submitted = None, time.monotonic()
        if dfut.status == "cancelled":
            # Not by us (we forget a batch first): the client lost the scheduler and cancelled all.
            self._lose(str(getattr(dfut._state, "exception", None) or "connection closed"))
            return
        try:
            if dfut.status == "finished":
                results = dfut.result(timeout=FETCH_TIMEOUT)
                with self._lock:
                    if self._drop(batch) is None:
                        return  # timed out meanwhile
                    if batch.worker and self._running_on.get(batch.worker) is batch:
                        del self._running_on[batch.worker]  # its worker is free: a death now is no one's fault here
                for f, r in zip(batch.files, results, strict=True):
                    self._settle(f, result=r)
                return
            exc = dfut.exception(timeout=FETCH_TIMEOUT)
        except Exception as fetch_error:  # e.g. the result was lost with its worker, and re-running it failed
            exc = fetch_error
        if isinstance(exc, KilledWorker):
            self._on_killed(batch, exc)
        elif self._client.status != "running" or isinstance(exc, OSError):  # CommClosedError is an OSError
            self._lose(f"{type(exc).__name__}: {exc}")
        else:  # run_batch raised (it never does): its files fail
            with self._lock:
                self._drop(batch)
            for f in batch.files:
                self._settle(f, exc=exc)

    def _on_killed(self, batch: Batch, exc: KilledWorker) -> None:
        address = getattr(getattr(exc, "last_worker", None), "address", None)
        with self._lock:
            if self._batches.get(batch.key) is not batch:
                return
            self._drop(batch)
            verdict = judge_death(
                batch,
                address,
                self._running_on.get(address or ""),
                crash_retries=self._crash_retries,
                max_deaths=self._max_deaths,
            )
            if verdict.again:
                log.info("resubmitting %d file(s): their Dask worker %s died", len(verdict.again), address)
            if verdict.alone:
                for f in verdict.again:
                    self._send([f])  # a file that crashes its worker again takes no other file with it
            elif verdict.again:
                self._send(verdict.again)
        log.debug("killed worker %s under %s (started on %s)", address, batch.key, batch.worker)
        for f, reason in verdict.failed:
            self._settle(f, result=failure(f.job.path, reason))

    def _lose(self, reason: str) -> None:
        with self._lock:
            if self._lost is None:
                self._lost = SchedulerLostError(f"lost the Dask scheduler at {self.address}: {reason}")
                log.error("%s", self._lost.message)
            tasks = [*self._batcher.take_all(), *(f for b in self._batches.values() for f in b.files)]
            for b in list(self._batches.values()):
                self._drop(b)
        for t in tasks:
            self._settle(t, exc=self._lost)

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
                    self.slots = max(1, self._link.render_slots())
                    self.workers = self.slots * self.batch_size
                    next_refresh = now + self._refresh_interval
            except Exception:  # the monitor must outlive a hiccup; a lost scheduler shows above
                log.debug("dask monitor check failed", exc_info=True)

    def _expire_overdue(self, now: float) -> None:
        limit = unstarted_limit(self.timeout, self.batch_size, UNSTARTED_FACTOR)
        with self._lock:
            overdue = [b for b in self._batches.values() if b.overdue(now, self.timeout, limit)]
        processing: dict[str, Any] = self._client.processing() if overdue else {}  # by live worker
        for batch in overdue:
            worker = batch.worker
            if worker is None:  # never announced: find the worker holding it, if any
                worker = next((w for w, keys in processing.items() if batch.key in keys), None)
                if worker is None:
                    continue  # waiting for a worker with RENDER to join: not stuck, just queued
            elif worker not in processing:
                # Its worker is gone: a death, reported as such soon (KilledWorker). In a batch the notice of
                # the file that crashed it may never have left, so the last one announced only looks stuck.
                continue
            with self._lock:
                if self._batches.get(batch.key) is not batch:
                    continue  # finished meanwhile
                dfut = self._drop(batch)
                live = batch.live()
                stuck = batch.running() or (live[0] if live else None)
                others = [f for f in live if f is not stuck]
                if others:
                    self._send(others)  # finished before it (results lost with the restart) or queued behind
            if stuck is not None:
                ran = f"{now - batch.started:.1f}" if batch.started is not None else "?"
                log.warning(
                    "render of %s timed out on %s after %s s; restarting that worker", stuck.job.path, worker, ran
                )
                self._settle(stuck, exc=TimeoutError(f"render exceeded {self.timeout:g} s on Dask worker {worker}"))
            if dfut is not None:
                cancel_quietly(dfut)  # before the restart, so Dask does not run it elsewhere
            self._link.restart(worker)
