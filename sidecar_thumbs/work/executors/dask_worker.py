"""What runs on the Dask side of the Dask executor: the batch task, its start notices, the warm-up plugin.

Importable on every worker (the task functions are pickled by reference) and on the scheduler
(:func:`set_allowed_failures` runs there). The coordinator's side is :mod:`.dask`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sidecar_thumbs.errors import ConfigError
from sidecar_thumbs.work.jobs import RenderJob, RenderResult, failure

try:
    import distributed
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError as exc:  # the extra is optional; say how to get it
    raise ConfigError("the dask executor needs Dask distributed: pip install 'sidecar-thumbs[dask]'") from exc

__all__ = ["PLUGIN_NAME", "RESOURCE", "WarmUpPlugin", "run_batch", "set_allowed_failures"]

RESOURCE = "RENDER"
PLUGIN_NAME = "sidecar-thumbs-warm-up"


def run_batch(fn: Callable[[RenderJob], RenderResult], jobs: Sequence[RenderJob], topic: str) -> list[RenderResult]:
    """The task a worker runs: render ``jobs`` one after the other, announcing each start.

    Several files a task because Dask's own cost per task (submit, schedule, finish, fetch, release:
    a dozen messages, ~6 ms of CPU on 2 cores) is what made it 1.3x slower than the local pool. A start
    notice per file keeps the per-file timeout. A task of one file announces its start with a round trip
    (~1 ms), so that the notice has left before the file can crash the worker and the coordinator knows
    whom to blame; in a larger batch it is fire-and-forget, and after a crash every file of the batch is
    sent again alone (see :func:`.dask_batches.judge_death`). One file's exception is that file's failure,
    as the local pool reports it.
    """
    key = _current_key()
    announce = _announce_start if len(jobs) == 1 else _post_start
    results = []
    for index, job in enumerate(jobs):
        announce(topic, key, index)
        try:
            results.append(fn(job))
        except Exception as exc:  # render_job never raises; a test's job function may
            results.append(failure(job.path, f"worker error: {type(exc).__name__}: {exc}"))
    return results


def _current_key() -> str | None:
    try:
        return str(distributed.get_worker().get_current_task())
    except Exception:  # not on a worker (a test calling it inline)
        return None


def _announce_start(topic: str, key: str | None, index: int) -> None:
    if key is None:
        return
    try:
        from distributed.utils import sync

        worker = distributed.get_worker()
        msg = {"key": key, "index": index, "worker": worker.address}
    except Exception:  # not on a worker: nothing to announce
        return
    try:
        # A round trip, not the fire-and-forget Worker.log_event: a file that segfaults at once
        # would kill the process before the batched message left, and the coordinator must know
        # which file was running when a worker died.
        sync(worker.loop, worker.scheduler.log_event, topic=topic, msg=msg, callback_timeout=10)
    except Exception:  # without the notice the coordinator times the task from its submission
        worker.log_event(topic, msg)


def _post_start(topic: str, key: str | None, index: int) -> None:
    """A start notice without waiting: queued on the worker's batched stream to the scheduler."""
    if key is None:
        return
    with contextlib.suppress(Exception):  # not on a worker: nothing to announce
        worker = distributed.get_worker()
        worker.log_event(topic, {"key": key, "index": index, "worker": worker.address})


def _warm_up(options: Any) -> None:
    # Not jobs.warm_up_worker: that one ignores SIGINT for pool children, which would stop a
    # `dask worker` in a terminal from reacting to Ctrl-C (and signal() only works in the main thread).
    try:
        from sidecar_thumbs.mesh import load as mesh_load
        from sidecar_thumbs.render import warm_up
        from sidecar_thumbs.render.thumbnail import ThumbnailOptions

        warm_up((options or ThumbnailOptions()).render)
        mesh_load.warm_up()
    except Exception:
        logging.getLogger(__name__).exception("worker warm-up failed; continuing cold")


class WarmUpPlugin(WorkerPlugin):
    """Loads numba's compiled renderer on every worker, including workers that join later."""

    name = PLUGIN_NAME

    def __init__(self, options: Any = None) -> None:
        self.options = options  # ThumbnailOptions, or None for the defaults

    def setup(self, worker: Any) -> None:
        _warm_up(self.options)


def set_allowed_failures(value: int, dask_scheduler: Any = None) -> int:
    """Runs on the scheduler: set ``allowed-failures``; returns the previous value."""
    old = int(dask_scheduler.allowed_failures)
    dask_scheduler.allowed_failures = value
    return old
