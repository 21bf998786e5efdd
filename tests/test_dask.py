"""The Dask executor on a real LocalCluster with worker processes (2 workers, 1 thread, RENDER=1)."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")
import dask  # noqa: E402  (installed with distributed)
from faults import faulty_render_job  # noqa: E402

from sidecar_thumbs.files.sidecar import sidecar_path_for  # noqa: E402
from sidecar_thumbs.render.thumbnail import ThumbnailOptions  # noqa: E402
from sidecar_thumbs.store.state import StateDB  # noqa: E402
from sidecar_thumbs.types import ModelStatus  # noqa: E402
from sidecar_thumbs.work.executors.dask import PLUGIN_NAME, DaskExecutor, SchedulerLostError  # noqa: E402
from sidecar_thumbs.work.executors.local import LocalPool, result_of  # noqa: E402
from sidecar_thumbs.work.executors.pathmap import parse_path_map  # noqa: E402
from sidecar_thumbs.work.jobs import RenderJob  # noqa: E402
from sidecar_thumbs.work.scan import scan  # noqa: E402

pytestmark = pytest.mark.integration  # every test here runs a real Dask LocalCluster

REPO = Path(__file__).resolve().parents[1]
OPTIONS = ThumbnailOptions()
PICKS = [
    "stl-binary/admesh__binary.stl",
    "stl-binary/lib3mf__Helix.stl",
    "3mf/3mfsamples__box.3mf",
    "3mf/3mfsamples__cylinder.3mf",
]


def _cluster(n_workers: int = 2) -> distributed.LocalCluster:
    return distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        resources={"RENDER": 1},
        dashboard_address=":0",
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    # A LocalCluster closes a worker's nanny for good when the worker has been gone from the scheduler
    # for `lost-worker-timeout` (15 s): on a loaded machine a restarted worker (spawn, imports, warm-up)
    # takes longer, and the cluster shrank by one. Real `dask worker` processes have no such rule.
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "120s"}), _cluster() as c:
        yield c


def _library(corpus: Path, dest: Path, extra: tuple[str, ...] = ()) -> list[Path]:
    dest.mkdir(parents=True)
    out = []
    for rel in PICKS:
        shutil.copy2(corpus / rel, dest / Path(rel).name)
        out.append(dest / Path(rel).name)
    src = REPO / "examples" / "models" / "parts" / "bracket.stl"
    for name in extra:
        shutil.copy2(src, dest / name)
        out.append(dest / name)
    return out


def _scan(lib: Path, db_path: Path, make_executor):  # type: ignore[no-untyped-def]
    with StateDB(db_path) as db:
        return scan([str(lib)], db=db, options=OPTIONS, durable=False, make_executor=make_executor)


def _wait_for_workers(client: distributed.Client, n: int, timeout: float = 60) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:
        workers = set(client.scheduler_info(n_workers=-1)["workers"])
        if len(workers) >= n or time.monotonic() > deadline:
            return workers
        time.sleep(0.1)


def test_workers_count_render_slots_and_are_warmed(cluster: distributed.LocalCluster) -> None:
    ex = DaskExecutor(cluster, timeout=30, options=OPTIONS)
    try:
        assert ex.slots == 2
        assert ex.workers == 2 * ex.batch_size  # jobs it takes at once: the pipeline keeps twice that submitted
        assert all(ex._client.run(lambda dask_worker: PLUGIN_NAME in dask_worker.plugins).values())
    finally:
        ex.shutdown()


def test_identical_jobs_are_rendered_again_not_cached(cluster: distributed.LocalCluster, corpus: Path) -> None:
    ex = DaskExecutor(cluster, timeout=30, options=OPTIONS, batch_size=1)
    try:
        job = RenderJob(str(corpus / PICKS[0]), OPTIONS)
        a, b = ex.submit(job), ex.submit(job)
        assert len(ex._batches) == 2  # two Dask keys: pure=True would have given one
        ra, rb = a.result(timeout=60), b.result(timeout=60)
        assert ra.ok and rb.ok and ra.png == rb.png
    finally:
        ex.shutdown()


def test_scan_through_dask_gives_byte_identical_sidecars(
    cluster: distributed.LocalCluster, corpus: Path, tmp_path: Path
) -> None:
    lib = tmp_path / "models"
    models = _library(corpus, lib)
    # The workers see the library under another name, as a Linux worker sees a Mac's share.
    (tmp_path / "worker-view").symlink_to(lib)
    mapping = parse_path_map([f"{lib}={tmp_path / 'worker-view'}"])

    local = _scan(lib, tmp_path / "local.sqlite3", lambda: LocalPool(2, timeout=30, options=OPTIONS))
    assert local.rendered + local.embedded == len(models) and not local.failures
    expected = {m: sidecar_path_for(m).read_bytes() for m in models}
    for m in models:
        sidecar_path_for(m).unlink()

    futures: list[cf.Future] = []

    def make() -> DaskExecutor:
        ex = DaskExecutor(cluster, timeout=30, options=OPTIONS, path_map=mapping)
        submit = ex.submit
        ex.submit = lambda job: futures.append(submit(job)) or futures[-1]  # type: ignore[method-assign]
        return ex

    remote = _scan(lib, tmp_path / "dask.sqlite3", make)
    assert remote.rendered + remote.embedded == len(models) and not remote.failures
    assert {m: sidecar_path_for(m).read_bytes() for m in models} == expected
    seen = [f.result().path for f in futures]  # a worker's result names the path it read
    assert len(seen) == len(models) and all(p.startswith(f"{tmp_path / 'worker-view'}/") for p in seen)


def test_hung_and_crashing_renders_fail_only_their_file(
    cluster: distributed.LocalCluster, corpus: Path, tmp_path: Path
) -> None:
    lib = tmp_path / "models"
    models = _library(corpus, lib, extra=("hang.stl", "segfault.stl", "exit.stl"))
    client = distributed.Client(cluster, set_as_default=False)
    try:
        before = _wait_for_workers(client, 2)
        s = _scan(lib, tmp_path / "db.sqlite3", lambda: DaskExecutor(client, timeout=8.0, job=faulty_render_job))
        reasons = dict(s.failures)
        assert set(reasons) == {str(lib / n) for n in ("hang.stl", "segfault.stl", "exit.stl")}, reasons
        assert "timed out" in reasons[str(lib / "hang.stl")]
        assert "worker process crashed" in reasons[str(lib / "segfault.stl")]
        assert "worker process crashed" in reasons[str(lib / "exit.stl")]
        good = [m for m in models if not m.name.startswith(("hang", "segfault", "exit"))]
        assert s.rendered + s.embedded == len(good)
        assert all(sidecar_path_for(m).exists() for m in good)
        # The stuck worker was replaced and the cluster is whole again.
        after = _wait_for_workers(client, 2)
        assert len(after) == 2 and after != before
    finally:
        client.close()


@contextlib.contextmanager
def _separate_scheduler(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A `dask scheduler` and one `dask worker` in their own processes, as on real machines, so the
    scheduler can really go away (SIGKILL) without taking the test's process with it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    log = (tmp_path / "dask.log").open("wb")
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--dashboard-address", ":0"],
        env=env, stdout=log, stderr=log,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--resources",
         "RENDER=1", "--no-nanny", "--dashboard-address", ":0"],
        env=env, stdout=log, stderr=log,
    )  # fmt: skip
    try:
        _wait_for_port(port, scheduler)  # a loaded machine takes seconds to start it; the tests connect with 2 s
        yield address, scheduler
    finally:
        for proc in (worker, scheduler):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        log.close()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "the dask scheduler did not start"
            time.sleep(0.2)


def _wait_until_running(ex: DaskExecutor, name: str) -> None:
    deadline = time.monotonic() + 60
    while not any(path.endswith(name) for path in ex.running()):
        assert time.monotonic() < deadline, f"{name} never started"
        time.sleep(0.05)


def test_lost_scheduler_fails_what_is_in_flight_with_a_clear_error(corpus: Path, tmp_path: Path) -> None:
    lib = tmp_path / "models"
    _library(corpus, lib, extra=("hang.stl",))
    with _separate_scheduler(tmp_path) as (address, scheduler):
        ex = DaskExecutor(address, timeout=600, connect_timeout=2, job=faulty_render_job)
        fut = ex.submit(RenderJob(str(lib / "hang.stl"), OPTIONS))
        _wait_until_running(ex, "hang.stl")
        scheduler.kill()
        cf.wait([fut], timeout=30)
        with pytest.raises(SchedulerLostError, match=f"lost the Dask scheduler at {address}"):
            fut.result(timeout=0)
        with pytest.raises(SchedulerLostError):
            ex.submit(RenderJob(str(lib / "admesh__binary.stl"), OPTIONS))
        ex.shutdown(cancel=True)


def _result_of_propagates_run_errors() -> bool:
    fut: cf.Future = cf.Future()
    fut.set_exception(SchedulerLostError("probe"))
    try:
        result_of(RenderJob("/x.stl", OPTIONS), fut)
    except SchedulerLostError:
        return True
    return False


@pytest.mark.xfail(
    not _result_of_propagates_run_errors(),
    reason="executors.result_of must re-raise RunError (requested in the issue #7 report)",
    strict=True,
)
def test_lost_scheduler_mid_scan_leaves_rows_pending(corpus: Path, tmp_path: Path) -> None:
    lib = tmp_path / "models"
    models = _library(corpus, lib, extra=("hang.stl",))
    db_path = tmp_path / "db.sqlite3"
    outcome: list[BaseException | None] = []
    with _separate_scheduler(tmp_path) as (address, scheduler):
        ex = DaskExecutor(address, timeout=600, connect_timeout=2, job=faulty_render_job)

        def run() -> None:
            try:
                _scan(lib, db_path, lambda: ex)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        t = threading.Thread(target=run)
        t.start()
        _wait_until_running(ex, "hang.stl")
        scheduler.kill()
        t.join(60)
    assert not t.is_alive()
    assert isinstance(outcome[0], SchedulerLostError)
    with StateDB(db_path) as db:
        rows = db.rows_under([str(lib)])
    assert len(rows) == len(models)
    statuses = {r.status for r in rows.values()}
    assert ModelStatus.RENDERING not in statuses and ModelStatus.FAILED not in statuses
    assert rows[str(lib / "hang.stl")].status is ModelStatus.PENDING


def test_unreachable_scheduler_is_a_clear_config_error() -> None:
    from sidecar_thumbs.work.executors.dask import DaskUnavailableError

    with pytest.raises(DaskUnavailableError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        DaskExecutor("tcp://127.0.0.1:9", timeout=5, connect_timeout=1)


def test_missing_render_resource_is_reported(tmp_path: Path) -> None:
    from sidecar_thumbs.work.executors.dask import DaskUnavailableError

    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c,
        pytest.raises(DaskUnavailableError, match="--resources RENDER=1"),
    ):
        DaskExecutor(c, timeout=5, wait_for_workers=0.5)


def test_job_paths_are_mapped_before_they_reach_the_workers(cluster: distributed.LocalCluster) -> None:
    ex = DaskExecutor(cluster, timeout=30, path_map=parse_path_map(["/Volumes/3D=/nonexistent/3d"]))
    try:
        r = ex.submit(RenderJob("/Volumes/3D/a.stl", OPTIONS)).result(timeout=60)
        assert r.path == "/nonexistent/3d/a.stl" and not r.ok  # the worker looked under the mapped name
    finally:
        ex.shutdown()
