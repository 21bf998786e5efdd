"""The one picklable job a worker runs: ``render_job(job) -> RenderResult``.

Workers are pure: given a path and settings they return PNG bytes or a typed failure. They never open
the database and never write files, so the same job runs unchanged in a local process pool or on a
Dask worker on another machine.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sidecar_thumbs import numba_cache
from sidecar_thumbs.errors import ModelError
from sidecar_thumbs.files.fingerprint import hash_bytes, oversize_key
from sidecar_thumbs.mesh.siblings import sibling_reader
from sidecar_thumbs.render.thumbnail import ThumbnailOptions, make_thumbnail_from_bytes, read_model_bytes
from sidecar_thumbs.types import Fingerprint, ThumbSource

__all__ = [
    "RenderJob",
    "RenderResult",
    "WarmUpSlots",
    "failure",
    "limit_native_threads",
    "render_job",
    "run_warm_up_steps",
    "warm_up_worker",
]


@dataclass(frozen=True)
class RenderJob:
    """What to render. ``path`` is as the worker sees it (see path mapping for remote workers)."""

    path: str
    options: ThumbnailOptions
    size: int | None = None  # the model's size when handed out: small ones travel in chunks (executors.local)


@dataclass(frozen=True)
class RenderResult:
    """A worker's answer: PNG bytes and the facts of the content it was made from, or a failure."""

    path: str
    png: bytes | None
    source: ThumbSource | None = None
    content_hash: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    triangles: int | None = None
    render_ms: float = 0.0
    error: str | None = None
    transient: bool = False
    # For a transient failure: after this many in a row for the same content it is permanent
    # (None: the database's default). A timeout says little about the file: see executors.result_of.
    max_attempts: int | None = None

    @property
    def ok(self) -> bool:
        return self.png is not None

    @property
    def fingerprint(self) -> Fingerprint | None:
        """The content the worker read, when it got as far as reading it."""
        if self.content_hash is None or self.size is None or self.mtime_ns is None:
            return None
        return Fingerprint(self.size, self.mtime_ns, self.content_hash)


def failure(path: str, error: str, *, transient: bool = False) -> RenderResult:
    """A failed result; ``error`` is folded to one line."""
    return RenderResult(path=path, png=None, error=" ".join(error.split()) or "unknown error", transient=transient)


def render_job(job: RenderJob) -> RenderResult:
    """Render one model. Never raises for a bad file: every per-file problem becomes a failed result.

    A failure still reports the content hash when the file could be read, so the coordinator knows
    a deterministic failure belongs to *this* content and retries only when the content changes.
    """
    t0 = time.perf_counter()
    try:
        data, size, mtime_ns = read_model_bytes(job.path, job.options.limits)
    except ModelError as exc:
        r = failure(job.path, exc.message, transient=exc.transient)
        cap_size: int | None = getattr(exc, "size", None)
        if cap_size is not None:
            # Over the size cap, never read: its stat stands for its content, so the coordinator
            # records the failure without hashing gigabytes itself.
            mtime: int = getattr(exc, "mtime_ns")  # noqa: B009 (set with size by the size cap)
            r = replace(r, content_hash=oversize_key(cap_size, mtime), size=cap_size, mtime_ns=mtime)
        return r
    digest = hash_bytes(data)

    def failed(reason: str, transient: bool = False) -> RenderResult:
        r = failure(job.path, reason, transient=transient)
        return replace(r, content_hash=digest, size=size, mtime_ns=mtime_ns)

    try:
        name = os.path.basename(job.path)
        thumb = make_thumbnail_from_bytes(data, name, size, mtime_ns, job.options, digest, sibling_reader(job.path))
    except ModelError as exc:
        return failed(exc.message, exc.transient)
    except MemoryError:
        return failed("out of memory while rendering (file too large for this machine?)")
    except RecursionError:
        return failed("model structure nested too deeply")
    except Exception as exc:  # a bug of ours on a strange file must cost that file only
        return failed(f"internal error: {type(exc).__name__}: {exc}")
    finally:
        del data  # a 1 GB model must not stay alive while the PNG result is pickled
    return RenderResult(
        path=job.path,
        png=thumb.png,
        source=thumb.source,
        content_hash=thumb.content_hash,
        size=thumb.size,
        mtime_ns=thumb.mtime_ns,
        triangles=thumb.triangles,
        render_ms=(time.perf_counter() - t0) * 1e3,
    )


def _exit_when_orphaned(parent: int, interval: float = 1.0) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent:  # re-parented: the coordinator is gone
            os._exit(0)


def limit_native_threads() -> None:
    """One thread for numpy's BLAS (and OpenMP) in this process. A render worker draws one file at a
    time and the pool already has a worker per core; OpenBLAS would start a helper thread per core for
    every large matrix product (a 3MF object's transform, a colour conversion), spin them, and double
    the CPU a file costs while the other workers wait. Never raises."""
    try:
        import numpy  # noqa: F401  (threadpoolctl limits only the libraries already loaded)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    except Exception:  # threadpoolctl missing or a BLAS it cannot drive: the default threads stay
        logging.getLogger(__name__).debug("could not limit BLAS threads", exc_info=True)


class WarmUpSlots:
    """Spreads a cold cache's compile over a pool's workers, each kernel compiled once.

    On a fresh install every worker would compile every kernel itself: minutes of CPU each, in
    parallel, so the first run's wall time is a whole compile however many cores there are. Each worker
    takes the warm-up steps starting at its own place in the list (worker k of n at step k·len/n) and
    claims each step before running it. A step another worker has claimed is left for last, and run once
    that worker has finished it: numba then loads from the on-disk cache what the other compiled and saved
    (the 3MF scanner's step alone is ~80 s of CPU; a second worker compiling it again only made both
    finish later). With a warm cache every step is a load, whoever claims it. The counter and the claims
    are shared through spawn (``multiprocessing`` shared memory), so they must reach the workers as an
    initialiser argument.
    """

    MAX_STEPS = 16  # steps beyond these are not shared: each worker runs them itself
    _FREE, _CLAIMED, _DONE = 0, 1, 2

    def __init__(self, workers: int, context: Any) -> None:
        self.workers = max(1, workers)
        self._next = context.Value("i", 0)
        self._steps = context.Array("b", self.MAX_STEPS)
        self._owners = context.Array("i", self.MAX_STEPS)  # the process id that claimed each step

    def take(self, steps: int) -> int:
        """Where this worker starts in a list of ``steps`` steps."""
        with self._next.get_lock():
            k = self._next.value
            self._next.value = k + 1
        return (k % self.workers) * steps // self.workers

    def claim(self, step: int) -> bool:
        """Whether this worker is the first to run ``step`` (then it must call :meth:`finish`)."""
        if step >= self.MAX_STEPS:
            return True
        with self._steps.get_lock():
            if self._steps[step] != self._FREE:
                return False
            self._steps[step] = self._CLAIMED
            self._owners[step] = os.getpid()
            return True

    def finish(self, step: int) -> None:
        """``step`` has run (or failed): a worker waiting for it may go on."""
        if step < self.MAX_STEPS:
            with self._steps.get_lock():
                self._steps[step] = self._DONE

    def wait(self, step: int, timeout: float = 600.0, poll: float = 0.05) -> bool:
        """Wait until ``step`` is done by whoever claimed it. False, and the caller runs the step itself,
        when the worker that claimed it is gone (crashed or killed mid-compile) or after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while step < self.MAX_STEPS and self._steps[step] != self._DONE:
            if time.monotonic() >= deadline or not _alive(self._owners[step]):
                return False
            time.sleep(poll)
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # exists, but another user's (EPERM)
        return True
    return True


def run_warm_up_steps(steps: Sequence[Callable[[], None]], slots: WarmUpSlots | None) -> None:
    """Run every step once, in this worker's order: its own claims first, then, as they are done, the
    steps other workers claimed (loads from the cache by then). Without ``slots``, in list order."""
    if slots is None:
        for step in steps:
            step()
        return
    start = slots.take(len(steps))
    later = []
    for i in [*range(start, len(steps)), *range(start)]:
        if not slots.claim(i):
            later.append(i)
            continue
        try:
            steps[i]()
        finally:
            slots.finish(i)
    for i in later:
        slots.wait(i)
        steps[i]()


def warm_up_worker(options: ThumbnailOptions | None = None, slots: WarmUpSlots | None = None) -> None:
    """Worker process initialiser: pay numba's compile/cache-load cost once per worker, not on its
    first file. Never raises: a failed warm-up only means the first file pays for it (and a failing
    initialiser would break the whole pool)."""
    # Ctrl-C on a terminal signals the whole process group; the coordinator decides what stops,
    # so workers must not die half-way through a job on their own.
    if threading.current_thread() is threading.main_thread():  # (a Dask worker may call this elsewhere)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A coordinator killed with SIGKILL cannot stop its workers; they must notice and go, or they
    # linger holding memory (and, on the share's host, CPU) until someone finds them.
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), name="orphan-watch", daemon=True).start()
    # A pool worker runs only our kernels: numba may skip its probes for scipy's BLAS and cffi (0.17 s
    # of each worker's start, and scipy's OpenBLAS is never mapped).
    numba_cache.own_process()
    try:
        from sidecar_thumbs.mesh import load as mesh_load
        from sidecar_thumbs.render import warm_up

        render = (options or ThumbnailOptions()).render
        # Cold, 2 cores: the 3MF scanner ~80 s of CPU, the renderer ~18 s, OBJ ~16 s, the rest a few s.
        steps: list[Callable[[], None]] = [*mesh_load.warm_up_steps(), functools.partial(warm_up, render)]
        run_warm_up_steps(steps, slots)
    except Exception:
        logging.getLogger(__name__).exception("worker warm-up failed; continuing cold")
    # After the warm-up: threadpoolctl limits only the libraries loaded by then, and numba's compiler
    # loads scipy's own OpenBLAS.
    limit_native_threads()
