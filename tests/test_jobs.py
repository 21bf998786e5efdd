"""The worker's one job: pure (reads the model, writes nothing), never raises, says which content it saw."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mesh_builders import binary_stl

from sidecar_thumbs.files.fingerprint import hash_bytes
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.types import Fingerprint
from sidecar_thumbs.work import jobs
from sidecar_thumbs.work.jobs import (
    RenderJob,
    RenderResult,
    WarmUpSlots,
    failure,
    render_job,
    run_warm_up_steps,
    warm_up_worker,
)

SMALL = ThumbnailOptions(render=RenderOptions(size=32))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    p = tmp_path / "part.stl"
    p.write_bytes(binary_stl(25, seed=4))
    return p


def test_a_good_model_gives_png_bytes_and_the_facts_of_its_content(model: Path) -> None:
    before = sorted(os.listdir(model.parent))
    r = render_job(RenderJob(str(model), SMALL))
    st = model.stat()
    assert r.ok and r.png is not None and r.png.startswith(PNG_SIGNATURE)
    assert (r.source, r.triangles, r.error) == ("rendered", 25, None)
    assert (r.content_hash, r.size, r.mtime_ns) == (hash_bytes(model.read_bytes()), st.st_size, st.st_mtime_ns)
    assert r.fingerprint == Fingerprint(st.st_size, st.st_mtime_ns, hash_bytes(model.read_bytes()))
    assert r.render_ms > 0
    assert sorted(os.listdir(model.parent)) == before  # nothing written beside the model


def test_a_bad_model_fails_for_good_and_names_the_content_that_failed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.stl"
    bad.write_bytes(b"solid x\nthis is not\nan stl\n")
    r = render_job(RenderJob(str(bad), SMALL))
    assert not r.ok and r.png is None and not r.transient
    assert r.error and "\n" not in r.error
    assert r.content_hash == hash_bytes(bad.read_bytes())  # retried only once the content changes


def test_a_vanished_model_is_a_transient_failure_without_a_hash(tmp_path: Path) -> None:
    r = render_job(RenderJob(str(tmp_path / "gone.stl"), SMALL))
    assert not r.ok and r.transient and r.content_hash is None and r.fingerprint is None
    assert r.error == "file vanished before it could be read"


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (MemoryError(), "out of memory while rendering"),
        (RecursionError(), "nested too deeply"),
        (KeyError("surprise"), "internal error: KeyError: 'surprise'"),
    ],
)
def test_an_unexpected_error_fails_only_that_file(
    model: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException, reason: str
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(jobs, "make_thumbnail_from_bytes", explode)
    r = render_job(RenderJob(str(model), SMALL))
    assert not r.ok and not r.transient and r.error is not None and reason in r.error
    assert r.content_hash == hash_bytes(model.read_bytes())


def test_failure_folds_the_reason_to_one_line() -> None:
    assert failure("/m.stl", "two\n  lines\t here").error == "two lines here"
    assert failure("/m.stl", "   ").error == "unknown error"
    assert failure("/m.stl", "busy", transient=True).transient


def test_jobs_and_results_cross_process_boundaries(model: Path) -> None:
    job = RenderJob(str(model), SMALL)
    result = render_job(job)
    assert pickle.loads(pickle.dumps(job)) == job
    assert pickle.loads(pickle.dumps(result)) == result
    assert isinstance(result, RenderResult)


@pytest.mark.integration
def test_a_render_worker_runs_numpys_blas_on_one_thread() -> None:
    """A pool worker (spawned, as on the Mac) has one BLAS thread after its initialiser, so a large
    matrix product in a reader does not spin a helper thread per core against the other workers."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with multiprocessing.get_context("spawn").Pool(1, initializer=warm_up_worker) as pool:
        infos = pool.apply(threadpoolctl.threadpool_info)
    blas = [i for i in infos if i["user_api"] == "blas"]
    assert blas and all(i["num_threads"] == 1 for i in blas), infos


def test_warm_up_slots_spread_the_workers_over_the_steps() -> None:
    """On a cold cache each worker starts the warm-up at its own place (worker k of n at k·steps/n), so
    two workers compile different kernels first; a worker replaced later wraps around."""
    slots = WarmUpSlots(2, multiprocessing.get_context("spawn"))
    assert [slots.take(5) for _ in range(5)] == [0, 2, 0, 2, 0]
    eight = WarmUpSlots(8, multiprocessing.get_context("spawn"))
    assert [eight.take(5) for _ in range(8)] == [0, 0, 1, 1, 2, 3, 3, 4]
    assert WarmUpSlots(0, multiprocessing.get_context("spawn")).take(5) == 0


def test_each_warm_up_step_runs_first_in_one_worker_and_then_in_the_others() -> None:
    """Two workers on a cold cache: a step claimed by one is run by the other only after it is done (then a
    load from numba's cache), never at the same time (a second compile of the same kernels)."""
    slots = WarmUpSlots(2, multiprocessing.get_context("spawn"))
    runs: dict[int, list[tuple[str, float, float]]] = {i: [] for i in range(5)}

    def step(i: int) -> Callable[[], None]:
        def run() -> None:
            t0 = time.monotonic()
            time.sleep(0.2 if i == 0 else 0.02)  # step 0 is the long compile
            runs[i].append((threading.current_thread().name, t0, time.monotonic()))

        return run

    steps = [step(i) for i in range(5)]
    workers = [threading.Thread(target=run_warm_up_steps, args=(steps, slots), name=f"w{k}") for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(10)
    for i, done in runs.items():
        assert sorted(name for name, _, _ in done) == ["w0", "w1"], i  # every worker ran every step once
        (_, _, first_end), (_, second_start, _) = sorted(done, key=lambda r: r[1])
        assert second_start >= first_end, i  # one after the other
    first = {i: min(done, key=lambda r: r[1])[0] for i, done in runs.items()}
    assert first[0] != first[2]  # the workers started at steps 0 and 2: each compiled one of them


def test_a_step_whose_worker_never_finishes_is_run_after_the_wait() -> None:
    slots = WarmUpSlots(1, multiprocessing.get_context("spawn"))
    assert slots.claim(0) and not slots.claim(0)
    assert slots.wait(0, timeout=0.05) is False  # claimed by a worker that never finishes: the caller runs it
    slots._owners[0] = _gone_pid()
    started = time.monotonic()
    assert slots.wait(0, timeout=60) is False  # its worker is gone: no waiting out the timeout
    assert time.monotonic() - started < 5
    slots.finish(0)
    assert slots.wait(0, timeout=0.05) is True
    assert slots.claim(WarmUpSlots.MAX_STEPS) and slots.claim(WarmUpSlots.MAX_STEPS)  # beyond: not shared
    ran: list[int] = []
    run_warm_up_steps([lambda: ran.append(1), lambda: ran.append(2)], None)  # no slots: in order
    assert ran == [1, 2]


def _gone_pid() -> int:
    """The process id of a child that has exited and been reaped."""
    child = multiprocessing.get_context("spawn").Process(target=os.getpid)
    child.start()
    child.join()
    assert child.pid is not None
    return child.pid


@pytest.mark.integration
def test_warm_up_slots_reach_spawned_workers() -> None:
    """The shared counter goes to each worker as an initialiser argument through spawn."""
    ctx = multiprocessing.get_context("spawn")
    slots = WarmUpSlots(2, ctx)
    with ctx.Pool(2, initializer=warm_up_worker, initargs=(None, slots)) as pool:
        assert pool.apply(os.getpid) > 0
        deadline = time.monotonic() + 60
        while slots._next.value < 2 and time.monotonic() < deadline:  # the other worker may still be starting
            time.sleep(0.05)
    assert slots._next.value == 2  # each worker took one slot
