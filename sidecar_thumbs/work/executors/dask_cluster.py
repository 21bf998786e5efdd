"""The Dask executor's link to its cluster: connecting, the scheduler's ``allowed-failures``, counting render
slots, restarting a stuck worker through its nanny, and closing.

What we ask of the cluster, apart from running tasks (:mod:`.dask`) and what runs on it (:mod:`.dask_worker`).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import threading
import time

from sidecar_thumbs.errors import ConfigError, RunError
from sidecar_thumbs.work.executors.dask_worker import RESOURCE, set_allowed_failures

try:
    import distributed
except ImportError as exc:  # the extra is optional; say how to get it
    raise ConfigError("the dask executor needs Dask distributed: pip install 'sidecar-thumbs[dask]'") from exc

__all__ = ["ClusterLink", "DaskUnavailableError", "SchedulerLostError", "cancel_quietly"]

log = logging.getLogger(__name__)


class DaskUnavailableError(ConfigError):
    """the Dask cluster cannot be used"""


class ClusterLink:
    """A client of one Dask scheduler, and the cluster-wide requests the executor makes through it.

    Args:
        scheduler: the scheduler address, a ``LocalCluster`` or a ``Client`` (not closed by :meth:`close`;
            a client made here is).
        connect_timeout: seconds to reach the scheduler.
        restart_timeout: seconds a worker restart may take.

    Raises:
        DaskUnavailableError: the scheduler cannot be reached.
    """

    def __init__(
        self,
        scheduler: str | distributed.Client | distributed.LocalCluster,
        *,
        connect_timeout: float,
        restart_timeout: float,
    ) -> None:
        self.client, self._own_client = _connect(scheduler, connect_timeout)
        self.address: str = self.client.scheduler.address
        self._restart_timeout = restart_timeout
        self._lock = threading.Lock()
        self._restarting: set[str] = set()
        self._restarter = cf.ThreadPoolExecutor(2, thread_name_prefix="dask-restart")

    def set_allowed_failures(self, value: int) -> None:
        """Make the scheduler hand every worker death to us at once (see :mod:`.dask`); warn if it refuses."""
        try:
            old = self.client.run_on_scheduler(set_allowed_failures, value)
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

    def render_slots(self) -> int:
        """Renders the cluster can run at once: per worker, its RENDER resource (at most its threads)."""
        info = self.client.scheduler_info(n_workers=-1)
        total = 0
        for w in info.get("workers", {}).values():
            slots = int((w.get("resources") or {}).get(RESOURCE, 0))
            total += min(slots, int(w.get("nthreads") or slots))
        return total

    def wait_for_render_slots(self, wait: float) -> int:
        """The render slots, once there are any.

        Raises:
            DaskUnavailableError: no worker offering ``RENDER`` joined within ``wait`` seconds.
        """
        deadline = time.monotonic() + wait
        while True:
            slots = self.render_slots()
            if slots > 0:
                return slots
            if time.monotonic() >= deadline:
                raise DaskUnavailableError(
                    f"no Dask worker offering the {RESOURCE} resource joined {self.address} within {wait:g} s; "
                    f"start workers with: dask worker {self.address} --nthreads 1 --resources {RESOURCE}=1"
                )
            time.sleep(0.2)

    def restart(self, worker: str) -> None:
        """Restart a worker through its nanny, in the background (once at a time per worker)."""
        with self._lock:
            if worker in self._restarting:
                return
            self._restarting.add(worker)

        def run() -> None:
            try:
                out = self.client.restart_workers([worker], timeout=self._restart_timeout, raise_for_error=False)
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

    def close(self, topic: str | None = None) -> None:
        """Wait for restarts in progress, stop listening to ``topic``, and close a client made here."""
        self._restarter.shutdown(wait=True)
        if topic is not None:
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(topic)
        if self._own_client:
            try:
                self.client.close(timeout=5)
            except Exception:  # a lost scheduler: nothing left to close politely
                log.debug("closing the Dask client failed", exc_info=True)


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


class SchedulerLostError(RunError):
    """lost the Dask scheduler"""


def cancel_quietly(dfut: distributed.Future) -> None:
    """Cancel a Dask task, ignoring a closing or lost client (the task goes with it then)."""
    with contextlib.suppress(Exception):
        dfut.cancel()
