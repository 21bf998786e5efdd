"""Executors: the inline seam, the local process pool, and how pool-level failures become one file's failure."""

from __future__ import annotations

import concurrent.futures as cf
from dataclasses import replace
from pathlib import Path

import pytest
from faults import faulty_render_job
from mesh_builders import binary_stl
from pebble import ProcessExpired

from sidecar_thumbs.errors import RunError
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.work.executors.local import (
    ALONE_BYTES,
    TIMEOUT_ATTEMPTS,
    InlineExecutor,
    LocalPool,
    make_executor,
    result_of,
    run_chunk,
)
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


def _chunk_jobs(folder: Path, names: list[str]) -> list[RenderJob]:
    jobs = []
    for i, name in enumerate(names):
        p = folder / name
        p.write_bytes(binary_stl(20, seed=i))
        jobs.append(RenderJob(str(p), SMALL, p.stat().st_size))
    return jobs


def _count_tasks(pool: LocalPool) -> list[int]:
    """Files per task the pool sends to pebble, in order (a seam we own: the pool's submit call)."""
    sent: list[int] = []
    submit = pool._pool.submit

    def counting(fn: object, timeout: float, *args: object) -> object:
        sent.append(len(args[1]) if fn is run_chunk else 1)  # type: ignore[arg-type]
        return submit(fn, timeout, *args)

    pool._pool.submit = counting  # type: ignore[method-assign]
    return sent


@pytest.mark.integration
def test_small_files_travel_in_chunks_and_each_gets_its_own_result(tmp_path: Path) -> None:
    pool = LocalPool(1, timeout=60, options=SMALL, chunk_files=4)
    sent = _count_tasks(pool)
    try:
        jobs = _chunk_jobs(tmp_path, [f"m{i}.stl" for i in range(9)])
        big = replace(jobs[0], size=ALONE_BYTES)  # its size says: too big to wait for others
        futs = [pool.submit(j) for j in [*jobs, big]]
        cf.wait(futs, timeout=60)
        results = [result_of(j, f) for j, f in zip([*jobs, big], futs, strict=True)]
    finally:
        pool.shutdown()
    assert [r.path for r in results] == [j.path for j in [*jobs, big]] and all(r.ok for r in results)
    assert results[3].png == render_job(jobs[3]).png
    # The first goes at once (the worker is idle), the next wait to fill chunks of 4; the big one goes
    # alone at once; the last small one when a worker frees.
    assert sent == [1, 4, 1, 4] or sent == [1, 4, 4, 1], sent


@pytest.mark.integration
def test_a_file_that_kills_its_chunk_is_named_alone_and_the_others_render(tmp_path: Path) -> None:
    pool = LocalPool(1, timeout=5, options=SMALL, job=faulty_render_job, chunk_files=4)
    sent = _count_tasks(pool)
    try:
        # The first keeps the worker busy, so the next four share a chunk, which crashes, then times out
        # when its files go again alone: each fault is told of its own file, and the others render.
        jobs = _chunk_jobs(tmp_path, ["a.stl", "b.stl", "segfault.stl", "c.stl", "hang.stl", "d.stl"])
        futs = [pool.submit(j) for j in jobs]
        cf.wait(futs, timeout=120)
        results = {Path(j.path).name: result_of(j, f, 5) for j, f in zip(jobs, futs, strict=True)}
    finally:
        pool.shutdown(cancel=True)
    assert sent[:2] == [1, 4], sent
    assert "killed by signal 11" in (results["segfault.stl"].error or "")
    assert "timed out" in (results["hang.stl"].error or "")
    assert all(results[n].ok for n in ("a.stl", "b.stl", "c.stl", "d.stl")), results
