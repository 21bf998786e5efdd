"""Worker faults: hang, segfault, os._exit, MemoryError, a result that never comes back — each fails
only its own file with a reason, and the pool goes on at full size (issue #6, item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_faults import faulty_job
from reliability_util import SMALL, binary_stl, check_library

from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus
from sidecar_thumbs.work.executors.local import LocalPool, result_of
from sidecar_thumbs.work.jobs import RenderJob
from sidecar_thumbs.work.scan import scan

pytestmark = pytest.mark.integration  # reliability suite: real processes, faults, many files

TIMEOUT = 3.0
FAULTS = {
    "hang.stl": "timed out",
    "segfault.stl": "killed by signal 11",
    "exit.stl": "exit code 3",
    "memoryerror.stl": "MemoryError",
    "noreturn.stl": "timed out",
}


def _pids(pool: LocalPool, folder: Path, n: int, want: int = 2, rounds: int = 20) -> set[int]:
    """The pids of the workers that take ``n`` quick jobs, round after round until ``want`` workers have
    answered: on a loaded machine one worker may take a whole round while the other is still starting."""
    pids: set[int] = set()
    for k in range(rounds):
        jobs = []
        for i in range(n):
            p = folder / f"pid{k}_{i}.stl"
            p.write_bytes(b"")
            jobs.append(RenderJob(str(p), SMALL))
        futs = [(j, pool.submit(j)) for j in jobs]
        for j, f in futs:
            f.exception(timeout=60)
            r = result_of(j, f)
            assert r.error is not None and r.error.startswith("pid "), r.error
            pids.add(int(r.error.split()[1]))
        if len(pids) >= want:
            break
    return pids


def test_each_fault_fails_only_its_file_and_the_pool_stays_full(tmp_path: Path) -> None:
    pool = LocalPool(2, timeout=TIMEOUT, options=SMALL, job=faulty_job)
    try:
        before = _pids(pool, tmp_path, 8)
        assert len(before) == 2
        jobs = []
        for i, name in enumerate([*FAULTS, "good0.stl", "good1.stl", "good2.stl"]):
            p = tmp_path / name
            p.write_bytes(binary_stl(200, seed=i))
            jobs.append(RenderJob(str(p), SMALL))
        futs = [(j, pool.submit(j)) for j in jobs]
        for j, f in futs:
            f.exception(timeout=60)
            r = result_of(j, f, TIMEOUT)
            name = Path(j.path).name
            if name in FAULTS:
                assert not r.ok and r.error and FAULTS[name] in r.error and "\n" not in r.error, (name, r.error)
            else:
                assert r.ok, (name, r.error)
        # Full size again: the replacement workers all take work (new pids where workers died).
        after = _pids(pool, tmp_path, 8)
        assert len(after) == 2, after
        assert pool._pool.active  # pebble's own view: the pool is still running
    finally:
        pool.shutdown(cancel=True)


def _no_pool() -> LocalPool:
    raise AssertionError("nothing should need rendering")


def _scan_faults(tmp_path: Path, faults: list[str]) -> tuple[Path, Path, list[Path], StateDB]:
    lib = tmp_path / "lib"
    lib.mkdir()
    models = []
    for i, name in enumerate([*faults, *(f"good{i}.stl" for i in range(6))]):
        p = lib / name
        p.write_bytes(binary_stl(100, seed=i))
        models.append(p)
    db_path = tmp_path / "db.sqlite3"
    db = StateDB(db_path)
    summary = scan(
        [str(lib)],
        db=db,
        make_executor=lambda: LocalPool(2, timeout=TIMEOUT, options=SMALL, job=faulty_job),
        options=SMALL,
        timeout=TIMEOUT,
        durable=False,
    )
    assert summary.failed == len(faults) and summary.rendered == 6
    return lib, db_path, models, db


def test_faults_in_a_scan_are_recorded_with_a_reason(tmp_path: Path) -> None:
    lib, db_path, models, db = _scan_faults(tmp_path, list(FAULTS))
    try:
        for name, reason in FAULTS.items():
            row = db.get(str(lib / name))
            assert row is not None and row.status is ModelStatus.FAILED and row.error and reason in row.error
    finally:
        db.close()
    check_library(lib, db_path, models)


def test_a_file_that_kills_its_worker_is_not_handed_out_again(tmp_path: Path) -> None:
    lib, _, _, db = _scan_faults(tmp_path, ["segfault.stl", "exit.stl"])
    try:
        again = scan([str(lib)], db=db, make_executor=_no_pool, options=SMALL)
        assert again.failed == 0 and again.rendered == 0
    finally:
        db.close()
