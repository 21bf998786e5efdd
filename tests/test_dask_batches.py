"""Who is blamed when a Dask worker dies holding a batch (pure bookkeeping; the cluster tests are in test_dask.py)."""

from __future__ import annotations

import concurrent.futures as cf

from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.work.executors.dask_batches import Batch, FileTask, judge_death, unstarted_limit
from sidecar_thumbs.work.jobs import RenderJob

OPTIONS = ThumbnailOptions()
DEAD = "tcp://10.0.0.2:4000"


def batch(*names: str, started_on: str | None = None, current: int = 0) -> Batch:
    files = [FileTask(RenderJob(f"/lib/{n}", OPTIONS), cf.Future()) for n in names]
    b = Batch(files, None, "key", 0.0)
    if started_on is not None:
        b.started, b.worker, b.current = 1.0, started_on, current
    return b


def judge(b: Batch, running_there: Batch | None) -> tuple[list[str], list[str], bool]:
    v = judge_death(b, DEAD, running_there, crash_retries=1, max_deaths=5)
    return [f.job.path for f, _ in v.failed], [f.job.path for f in v.again], v.alone


def test_a_batch_queued_behind_the_one_that_ran_goes_again_as_it_was_uncharged() -> None:
    culprit, queued = batch("bad.stl", started_on=DEAD), batch("a.stl", "b.stl")
    assert judge(queued, culprit) == ([], ["/lib/a.stl", "/lib/b.stl"], False)
    assert all(f.deaths == 0 and f.crashes == 0 for f in queued.files)


def test_a_file_alone_that_crashes_its_worker_twice_fails() -> None:
    b = batch("bad.stl", started_on=DEAD)
    assert judge(b, b) == ([], ["/lib/bad.stl"], True)  # once: a machine switched off is not the file's fault
    failed, again, _ = judge(b, b)
    assert (failed, again) == (["/lib/bad.stl"], [])


def test_a_running_batch_cannot_blame_one_file_so_each_goes_again_alone() -> None:
    b = batch("a.stl", "bad.stl", "c.stl", started_on=DEAD, current=1)
    b.files[0].future.set_result(None)  # type: ignore[arg-type]  # settled before the death: not sent again
    assert judge(b, b) == ([], ["/lib/bad.stl", "/lib/c.stl"], True)
    assert [f.deaths for f in b.files[1:]] == [1, 1] and all(f.crashes == 0 for f in b.files)


def test_with_no_start_known_every_file_is_charged_a_death_and_fails_after_the_limit() -> None:
    b = batch("x.stl")
    for _ in range(4):
        assert judge(b, None) == ([], ["/lib/x.stl"], True)
    failed, again, _ = judge(b, None)
    assert (failed, again) == (["/lib/x.stl"], [])


def test_a_batch_waits_behind_at_most_one_other_before_it_counts_as_stuck() -> None:
    assert unstarted_limit(10.0, 1, 3.0) == 30.0  # one file a task: as before batching
    assert unstarted_limit(10.0, 8, 3.0) == 100.0
