"""The scan pipeline end to end: real SQLite, real corpus files, real worker processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults import faulty_render_job

from sidecar_thumbs.files.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus
from sidecar_thumbs.work.executors.local import InlineExecutor, LocalPool
from sidecar_thumbs.work.scan import scan

REPO = Path(__file__).resolve().parents[1]
OPTIONS = ThumbnailOptions()


def _copy_library(corpus: Path, dest: Path) -> list[Path]:
    picks = [
        "stl-binary/admesh__binary.stl",
        "stl-ascii/" + sorted(os.listdir(corpus / "stl-ascii"))[0],
        "3mf/3mfsamples__box.3mf",
        "3mf/3mfsamples__cylinder.3mf",
    ]
    out = []
    for i, rel in enumerate(picks):
        folder = dest / f"folder{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / Path(rel).name
        shutil.copy2(corpus / rel, target)
        out.append(target)
    for p in (REPO / "examples" / "models").rglob("*.stl"):
        target = dest / "examples" / p.name
        target.parent.mkdir(exist_ok=True)
        shutil.copy2(p, target)
        out.append(target)
    return out


@pytest.fixture
def library(tmp_path: Path, corpus: Path) -> tuple[Path, list[Path]]:
    lib = tmp_path / "lib"
    return lib, _copy_library(corpus, lib)


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    d = StateDB(tmp_path / "state" / "db.sqlite3")
    yield d
    d.close()


def run(lib: Path, db: StateDB, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("make_executor", InlineExecutor)
    return scan([str(lib)], db=db, options=OPTIONS, durable=False, **kw)  # type: ignore[arg-type]


def test_first_scan_renders_everything_and_flags_rows(library: tuple[Path, list[Path]], db: StateDB) -> None:
    lib, models = library
    s = run(lib, db)
    assert s.found == len(models)
    assert s.rendered + s.embedded == len(models) and s.failed == 0
    for m in models:
        info = read_sidecar(sidecar_path_for(m))
        assert info is not None and info.ours and info.readable
        row = db.get(str(m))
        assert row is not None and row.status is ModelStatus.DONE and row.has_thumbnail
        assert row.thumb_hash == info.content_hash == row.hash


def test_second_scan_renders_nothing(library: tuple[Path, list[Path]], db: StateDB) -> None:
    lib, models = library
    run(lib, db)
    s = run(lib, db, make_executor=_no_executor)
    assert (s.unchanged, s.rendered, s.hashed) == (len(models), 0, 0)


def _no_executor() -> InlineExecutor:
    raise AssertionError("nothing should be rendered, so no executor should start")


def test_touch_without_change_rehashes_but_does_not_rerender(library: tuple[Path, list[Path]], db: StateDB) -> None:
    lib, models = library
    run(lib, db)
    before = sidecar_path_for(models[0]).stat().st_mtime_ns
    t = time.time() + 5
    os.utime(models[0], (t, t))
    s = run(lib, db, make_executor=_no_executor)
    assert (s.hashed, s.touched, s.rendered) == (1, 1, 0)
    assert sidecar_path_for(models[0]).stat().st_mtime_ns == before
    assert db.get(str(models[0])).mtime_ns == models[0].stat().st_mtime_ns  # type: ignore[union-attr]


def test_content_change_rerenders_only_that_file(library: tuple[Path, list[Path]], db: StateDB) -> None:
    lib, models = library
    run(lib, db)
    target = next(m for m in models if m.name == "gear.stl")
    shutil.copy2(REPO / "examples" / "models" / "parts" / "bracket.stl", target)
    s = run(lib, db)
    assert (s.changed, s.rendered) == (1, 1)
    info = read_sidecar(sidecar_path_for(target))
    assert info is not None and info.content_hash == db.get(str(target)).hash  # type: ignore[union-attr]


def test_deleted_model_row_goes_missing_and_sidecar_is_reported_orphaned(
    library: tuple[Path, list[Path]], db: StateDB
) -> None:
    from sidecar_thumbs.reports.verify import ProblemKind, verify

    lib, models = library
    run(lib, db)
    models[0].unlink()
    s = run(lib, db)
    assert s.missing == 1
    row = db.get(str(models[0]))
    assert row is not None and row.status is ModelStatus.MISSING and not row.has_thumbnail
    report = verify([str(lib)], db=db)
    assert [(p.kind, p.path) for p in report.problems] == [(ProblemKind.ORPHANED, str(sidecar_path_for(models[0])))]


def test_existing_fresh_sidecars_are_adopted_without_rendering(
    library: tuple[Path, list[Path]], db: StateDB, tmp_path: Path
) -> None:
    lib, models = library
    run(lib, db)
    with StateDB(tmp_path / "fresh.sqlite3") as other:  # the database was lost
        s = run(lib, other, make_executor=_no_executor)
        assert s.rendered == 0 and other.counts()[ModelStatus.DONE] == len(models)


def test_bad_file_fails_with_a_reason_and_is_not_retried_until_it_changes(
    library: tuple[Path, list[Path]], db: StateDB
) -> None:
    lib, _ = library
    bad = lib / "broken.stl"
    bad.write_bytes(b"solid x\nfacet normal 0 0 0\nouter loop\nvertex 1 2\nendsolid")
    s = run(lib, db)
    assert s.failed == 1 and s.failures[0][0] == str(bad)
    assert "\n" not in s.failures[0][1]
    assert not sidecar_path_for(bad).exists()
    row = db.get(str(bad))
    assert row is not None and row.status is ModelStatus.FAILED and row.error
    s2 = run(lib, db, make_executor=_no_executor)  # unchanged bad file: not tried again
    assert s2.failed == 0
    s3 = run(lib, db, retry_failed=True)
    assert s3.failed == 1


def test_force_renders_everything_again(library: tuple[Path, list[Path]], db: StateDB) -> None:
    lib, models = library
    run(lib, db)
    s = run(lib, db, force=True)
    assert s.rendered + s.embedded == len(models)


@pytest.mark.integration
def test_hung_and_crashing_renders_fail_only_their_file(library: tuple[Path, list[Path]], db: StateDB) -> None:
    lib, models = library
    src = REPO / "examples" / "models" / "parts" / "bracket.stl"
    for name in ("hang.stl", "segfault.stl", "exit.stl"):
        shutil.copy2(src, lib / name)
    s = run(lib, db, make_executor=lambda: LocalPool(2, timeout=3.0, job=faulty_render_job))
    reasons = dict(s.failures)
    assert set(reasons) == {str(lib / n) for n in ("hang.stl", "segfault.stl", "exit.stl")}
    assert "timed out" in reasons[str(lib / "hang.stl")]
    assert "signal 11" in reasons[str(lib / "segfault.stl")]
    assert "crashed" in reasons[str(lib / "exit.stl")]
    assert s.rendered + s.embedded == len(models)
    for m in models:
        assert sidecar_path_for(m).exists()


SCAN_SCRIPT = """
import sys
from sidecar_thumbs.cli.main import cli
sys.argv = ["sidecar-thumbs", "scan", sys.argv[1], "--db", sys.argv[2], "--workers", "2"]
cli()
"""


def _state_of(lib: Path, db_path: Path) -> dict[str, tuple[str, bool, str | None]]:
    with StateDB(db_path) as d:
        return {
            os.path.relpath(p, lib): (r.status.value, r.has_thumbnail, r.thumb_hash)
            for p, r in d.rows_under([str(lib)]).items()
        }


@pytest.mark.integration
def test_interrupted_scan_then_rescan_equals_uninterrupted(tmp_path: Path, corpus: Path) -> None:
    lib_a, lib_b = tmp_path / "a", tmp_path / "b"
    for lib in (lib_a, lib_b):
        _copy_library(corpus, lib)
        for p in sorted((corpus / "stl-binary").iterdir())[:12]:
            shutil.copy2(p, lib / p.name)
    db_a, db_b = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCAN_SCRIPT, str(lib_a), str(db_a)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    # Interrupt once the first sidecars appear: mid-run, with renders in flight.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(lib_a.rglob(".*.thumbnail.png")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (130, 0), err
    for p in lib_a.rglob("*.tmp"):
        raise AssertionError(f"temp file left behind: {p}")
    for p in lib_a.rglob(".*.thumbnail.png"):
        info = read_sidecar(p)
        assert info is not None and info.readable, f"partial sidecar {p}"
    for lib, dbp in ((lib_a, db_a), (lib_b, db_b)):
        r = subprocess.run(
            [sys.executable, "-c", SCAN_SCRIPT, str(lib), str(dbp)],
            env=env,
            capture_output=True,
            cwd=tmp_path,
            timeout=300,
        )
        assert r.returncode in (0, 3), r.stderr
    assert _state_of(lib_a, db_a) == _state_of(lib_b, db_b)
