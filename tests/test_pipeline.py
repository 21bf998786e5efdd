"""The pipeline with the inline executor: claimed rows in, sidecars and database records out."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from mesh_builders import binary_stl

from sidecar_thumbs.files.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import FileState, ModelRow, ModelStatus
from sidecar_thumbs.work.claims import ClaimSource, run_pending
from sidecar_thumbs.work.executors.local import InlineExecutor
from sidecar_thumbs.work.jobs import RenderJob, RenderResult
from sidecar_thumbs.work.outcomes import Outcome
from sidecar_thumbs.work.pipeline import Pipeline

SMALL = ThumbnailOptions(render=RenderOptions(size=32))


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    root.mkdir()
    for i in range(3):
        (root / f"m{i}.stl").write_bytes(binary_stl(10, seed=i))
    (root / "bad.stl").write_bytes(b"solid broken\nfacet nonsense\n")
    return root


@pytest.fixture
def db(tmp_path: Path, lib: Path) -> StateDB:
    d = StateDB(tmp_path / "state.sqlite3")
    states = []
    for p in sorted(lib.iterdir()):
        st = p.stat()
        states.append(FileState(str(p), st.st_size, st.st_mtime_ns, None, needs_render=True))
    d.upsert_files(states)
    yield d
    d.close()


def _status(db: StateDB, path: Path) -> ModelStatus:
    row = db.get(str(path))
    assert row is not None
    return row.status


class AfterRender:
    """Inline executor that does something to the model right after the worker has read it (the
    seam is ours: the Executor protocol)."""

    workers = 1

    def __init__(self, action: dict[str, Callable[[Path], object]]) -> None:
        self.inline = InlineExecutor()
        self.action = action

    def submit(self, job: RenderJob) -> cf.Future[RenderResult]:
        fut = self.inline.submit(job)
        todo = self.action.get(Path(job.path).name)
        if todo is not None:
            todo(Path(job.path))
        return fut

    def shutdown(self, *, cancel: bool = False) -> None:
        pass


def test_every_claimed_row_ends_done_or_failed_with_a_sidecar_or_a_reason(db: StateDB, lib: Path) -> None:
    outcomes: list[Outcome] = []
    pipeline = Pipeline(db, InlineExecutor(), SMALL, durable=False, on_outcome=outcomes.append)
    try:
        stats = run_pending(pipeline, batch_size=2, roots=[str(lib)])
    finally:
        pipeline.close()
    assert (stats.rendered, stats.embedded, stats.failed, stats.requeued) == (3, 0, 1, 0)
    assert [p for p, _ in stats.failures] == [str(lib / "bad.stl")]
    assert sorted(Path(o.path).name for o in outcomes) == ["bad.stl", "m0.stl", "m1.stl", "m2.stl"]
    for i in range(3):
        m = lib / f"m{i}.stl"
        info = read_sidecar(sidecar_path_for(m))
        assert info is not None and info.ours and info.readable
        assert (info.size, info.mtime_ns) == (m.stat().st_size, m.stat().st_mtime_ns)
        row = db.get(str(m))
        assert row is not None and row.status is ModelStatus.DONE and row.has_thumbnail
    bad = db.get(str(lib / "bad.stl"))
    assert bad is not None and bad.status is ModelStatus.FAILED and bad.error
    assert bad.hash is not None  # which content failed: it is not retried until it changes
    assert not sidecar_path_for(lib / "bad.stl").exists()
    assert pipeline.in_flight == 0 and pipeline.pending_commits == 0


def test_a_model_replaced_during_its_render_is_rendered_again_not_pictured_stale(db: StateDB, lib: Path) -> None:
    def replace(p: Path) -> None:
        p.write_bytes(binary_stl(40, seed=99))

    pipeline = Pipeline(db, AfterRender({"m0.stl": replace}), SMALL, durable=False)
    try:
        stats = pipeline.run(ClaimSource(db, 10, [str(lib)]))
    finally:
        pipeline.close()
    assert stats.requeued == 1 and stats.rendered == 2
    assert not sidecar_path_for(lib / "m0.stl").exists()  # no picture of the old content
    assert _status(db, lib / "m0.stl") is ModelStatus.PENDING


def test_a_model_deleted_during_its_render_is_marked_missing(db: StateDB, lib: Path) -> None:
    pipeline = Pipeline(db, AfterRender({"m1.stl": Path.unlink}), SMALL, durable=False)
    try:
        stats = pipeline.run(ClaimSource(db, 10, [str(lib)]))
    finally:
        pipeline.close()
    assert stats.missing == 1 and stats.failed == 1  # bad.stl
    assert _status(db, lib / "m1.stl") is ModelStatus.MISSING
    assert not sidecar_path_for(lib / "m1.stl").exists()


def test_a_foreign_file_under_the_sidecar_name_fails_the_model_and_stays(db: StateDB, lib: Path) -> None:
    foreign = sidecar_path_for(lib / "m2.stl")
    foreign.write_bytes(b"not ours")
    pipeline = Pipeline(db, InlineExecutor(), SMALL, durable=False)
    try:
        stats = run_pending(pipeline, 10, [str(lib)])
    finally:
        pipeline.close()
    assert foreign.read_bytes() == b"not ours"
    assert str(lib / "m2.stl") in dict(stats.failures)


def test_a_stop_starts_nothing_new_and_puts_claims_back(db: StateDB, lib: Path) -> None:
    stop = threading.Event()
    stop_after_first = AfterRender({p.name: lambda _p: stop.set() for p in lib.iterdir()})
    pipeline = Pipeline(db, stop_after_first, SMALL, durable=False)
    try:
        stats = pipeline.run(ClaimSource(db, 10, [str(lib)], stop), stop)
    finally:
        pipeline.close()
    assert stats.finished == 1  # the job in flight finished and was committed; no other started
    counts = db.counts()
    assert counts[ModelStatus.RENDERING] == 0  # nothing left claimed
    assert counts[ModelStatus.PENDING] == 3 and stats.requeued == 3
    again = Pipeline(db, InlineExecutor(), SMALL, durable=False)
    try:
        assert run_pending(again, 10).finished == 3  # the next run continues where this one stopped
    finally:
        again.close()


def test_abandon_releases_rows_claimed_but_never_submitted(db: StateDB, lib: Path) -> None:
    rows: list[ModelRow] = db.claim(10, roots=[str(lib)])
    pipeline = Pipeline(db, InlineExecutor(), SMALL, durable=False)
    try:
        pipeline.submit(rows[0])
        while pipeline.in_flight:
            pipeline.poll(0.05)  # rendered, written and committed
        pipeline.submit(rows[1])  # handed out, its result never taken
        back = pipeline.abandon(rows[2:])
    finally:
        pipeline.close()
    assert back == 3
    counts = db.counts()
    assert counts[ModelStatus.RENDERING] == 0 and counts[ModelStatus.PENDING] == 3
    assert _status(db, Path(rows[0].path)) in (ModelStatus.DONE, ModelStatus.FAILED)


def test_the_claim_source_claims_one_batch_at_a_time(db: StateDB, lib: Path) -> None:
    source = ClaimSource(db, 2, [str(lib)])
    first = next(source)
    assert db.counts()[ModelStatus.RENDERING] == 2  # one batch claimed, not all four
    assert len(source.unconsumed()) == 1
    assert first.path.startswith(str(lib))
    db.release_claims()


def test_the_window_keeps_every_worker_busy(db: StateDB) -> None:
    class Four(InlineExecutor):
        workers = 4

    pipeline = Pipeline(db, Four(), SMALL)
    try:
        assert pipeline.window == 8 and pipeline.has_room()
    finally:
        pipeline.close()
