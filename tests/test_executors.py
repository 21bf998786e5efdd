"""Executors: the inline seam, the local process pool, and how pool-level failures become one file's failure."""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path

import pytest
from mesh_builders import binary_stl
from pebble import ProcessExpired

from sidecar_thumbs.errors import RunError
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.work.executors.local import TIMEOUT_ATTEMPTS, InlineExecutor, LocalPool, make_executor, result_of
from sidecar_thumbs.work.jobs import RenderJob, RenderResult, render_job

SMALL = ThumbnailOptions(render=RenderOptions(size=32))
JOB = RenderJob("/lib/part.stl", SMALL)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    p = tmp_path / "part.stl"
    p.write_bytes(binary_stl(20, seed=5))
    return p


def _failed_future(exc: BaseException) -> cf.Future[RenderResult]:
    fut: cf.Future[RenderResult] = cf.Future()
    fut.set_exception(exc)
    return fut


def test_zero_workers_means_inline() -> None:
    executor = make_executor(0, timeout=5, max_tasks=10, options=SMALL)
    assert isinstance(executor, InlineExecutor) and executor.workers == 1


def test_the_inline_executor_hands_back_a_finished_future(model: Path) -> None:
    job = RenderJob(str(model), SMALL)
    fut = InlineExecutor().submit(job)
    assert fut.done()
    r = result_of(job, fut)
    assert r.ok and r.png == render_job(job).png


def test_a_timeout_fails_the_file_and_says_the_limit() -> None:
    # Transient the first times (a throttled or stopped machine), permanent after max_attempts strikes.
    r = result_of(JOB, _failed_future(TimeoutError()), timeout=3.0)
    assert not r.ok and r.transient and r.max_attempts == TIMEOUT_ATTEMPTS == 3
    assert r.error == "render timed out after the limit of 3 s; the worker was stopped"


def test_a_crashed_worker_fails_only_its_file() -> None:
    r = result_of(JOB, _failed_future(ProcessExpired("gone", code=-11)))
    assert r.error == "worker process crashed (killed by signal 11) while rendering this file"
    r = result_of(JOB, _failed_future(ProcessExpired("gone", code=3)))
    assert r.error is not None and "exit code 3" in r.error


def test_a_cancelled_job_is_transient() -> None:
    fut: cf.Future[RenderResult] = cf.Future()
    fut.cancel()
    r = result_of(JOB, fut)
    assert (r.ok, r.transient, r.error) == (False, True, "cancelled")


def test_any_other_worker_error_is_that_files_failure() -> None:
    r = result_of(JOB, _failed_future(ValueError("odd")))
    assert r.error == "worker error: ValueError: odd" and r.path == JOB.path


def test_a_lost_executor_stops_the_run() -> None:
    with pytest.raises(RunError):
        result_of(JOB, _failed_future(RunError("the scheduler is gone")))


@pytest.mark.integration
def test_the_local_pool_renders_in_spawned_workers(model: Path) -> None:
    pool = LocalPool(1, timeout=60, max_tasks=5, options=SMALL)
    try:
        job = RenderJob(str(model), SMALL)
        fut = pool.submit(job)
        cf.wait([fut], timeout=60)
        result = result_of(job, fut)
    finally:
        pool.shutdown()
    assert result.ok and result.png == render_job(job).png
