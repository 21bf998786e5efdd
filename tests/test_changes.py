"""The daemon's intake: events and settled paths become database marks (real SQLite, real files,
renders inline). Time is passed in, so the settle window and the delayed sidecar removal run on a
fake clock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mesh_builders import binary_stl

from sidecar_thumbs.daemon.changes import ChangeTracker
from sidecar_thumbs.daemon.events import EventKind, FileEvent
from sidecar_thumbs.daemon.settle import Settler
from sidecar_thumbs.files.sidecar import sidecar_path_for
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelRow, ModelStatus
from sidecar_thumbs.work.executors.local import InlineExecutor
from sidecar_thumbs.work.scan import scan

SETTLE = 3.0
SMALL = ThumbnailOptions(render=RenderOptions(size=32))


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    (root / "sub").mkdir(parents=True)
    (root / "a.stl").write_bytes(binary_stl(20, seed=1))
    (root / "sub" / "b.stl").write_bytes(binary_stl(20, seed=2))
    return root


@pytest.fixture
def db(tmp_path: Path, lib: Path) -> StateDB:
    """A database in which every model of ``lib`` is rendered (rows done, sidecars on disk)."""
    d = StateDB(tmp_path / "state.sqlite3")
    summary = scan([str(lib)], db=d, make_executor=InlineExecutor, options=SMALL, durable=False)
    assert summary.rendered == 2
    yield d
    d.close()


@pytest.fixture
def tracker(db: StateDB) -> ChangeTracker:
    return ChangeTracker(db, Settler(SETTLE))


def _row(db: StateDB, path: Path) -> ModelRow:
    row = db.get(str(path))
    assert row is not None, path
    return row


def _changed(path: Path, is_dir: bool = False) -> FileEvent:
    return FileEvent(EventKind.CHANGED, str(path), is_dir)


def _settle(tracker: ChangeTracker, now: float) -> int:
    """What the daemon's loop does once the window has passed: ingest what is due."""
    return tracker.ingest(tracker.settler.due(now + SETTLE))


def test_a_new_model_waits_for_the_settle_window_then_is_pending(tracker: ChangeTracker, lib: Path) -> None:
    new = lib / "new.stl"
    new.write_bytes(binary_stl(10, seed=3))
    assert tracker.handle([_changed(new)], now=0.0) == 0
    assert tracker.ingest(tracker.settler.due(SETTLE - 0.1)) == 0  # not yet: still inside the window
    assert tracker.db.get(str(new)) is None
    assert _settle(tracker, 0.0) == 1
    row = _row(tracker.db, new)
    assert row.status is ModelStatus.PENDING and row.hash is not None


def test_an_event_without_a_change_marks_nothing(tracker: ChangeTracker, lib: Path) -> None:
    tracker.handle([_changed(lib / "a.stl")], now=0.0)  # e.g. our own metadata, or a no-op save
    assert _settle(tracker, 0.0) == 0
    assert _row(tracker.db, lib / "a.stl").status is ModelStatus.DONE


def test_a_touch_costs_a_hash_not_a_render(tracker: ChangeTracker, lib: Path) -> None:
    a = lib / "a.stl"
    os.utime(a, ns=(1_000_000_000, 1_000_000_000))
    tracker.handle([_changed(a)], now=0.0)
    assert _settle(tracker, 0.0) == 0
    row = _row(tracker.db, a)
    assert row.mtime_ns == 1_000_000_000 and row.status is ModelStatus.DONE


def test_changed_content_is_pending_again(tracker: ChangeTracker, lib: Path) -> None:
    a = lib / "a.stl"
    old = _row(tracker.db, a).hash
    a.write_bytes(binary_stl(30, seed=9))
    tracker.handle([_changed(a)], now=0.0)
    assert _settle(tracker, 0.0) == 1
    row = _row(tracker.db, a)
    assert row.status is ModelStatus.PENDING and row.hash != old


def test_a_delete_marks_missing_and_removes_our_sidecar_only_later(tracker: ChangeTracker, lib: Path) -> None:
    a = lib / "a.stl"
    sidecar = sidecar_path_for(a)
    a.unlink()
    tracker.handle([FileEvent(EventKind.DELETED, str(a), False)], now=0.0)
    assert _row(tracker.db, a).status is ModelStatus.MISSING
    tracker.remove_due_sidecars(now=SETTLE)  # it may be half of a rename: wait a little
    assert sidecar.exists()
    tracker.remove_due_sidecars(now=SETTLE + 2.1)
    assert not sidecar.exists()


def test_a_file_we_did_not_write_is_never_removed(tracker: ChangeTracker, lib: Path) -> None:
    a = lib / "a.stl"
    sidecar = sidecar_path_for(a)
    sidecar.write_bytes(b"someone else's picture")
    a.unlink()
    tracker.handle([FileEvent(EventKind.DELETED, str(a), False)], now=0.0)
    tracker.remove_due_sidecars(now=60.0)
    assert sidecar.read_bytes() == b"someone else's picture"


def test_a_delete_event_for_a_file_that_is_back_changes_nothing(tracker: ChangeTracker, lib: Path) -> None:
    tracker.handle([FileEvent(EventKind.DELETED, str(lib / "a.stl"), False)], now=0.0)
    assert _row(tracker.db, lib / "a.stl").status is ModelStatus.DONE
    assert tracker.pending_removals == {}


def test_a_rename_takes_the_row_and_the_sidecar_along(tracker: ChangeTracker, lib: Path) -> None:
    a, moved = lib / "a.stl", lib / "renamed.stl"
    row_id = _row(tracker.db, a).id
    a.rename(moved)
    tracker.handle([FileEvent(EventKind.MOVED, str(a), False, str(moved))], now=0.0)
    assert tracker.db.get(str(a)) is None
    assert _row(tracker.db, moved).id == row_id
    assert sidecar_path_for(moved).exists() and not sidecar_path_for(a).exists()
    assert _settle(tracker, 0.0) == 0  # the stat gate confirms: nothing to render


def test_a_rename_seen_as_delete_and_create_is_matched_by_content(tracker: ChangeTracker, lib: Path) -> None:
    # FSEvents often reports a rename as two unpaired events.
    a, moved = lib / "a.stl", lib / "sub" / "elsewhere.stl"
    a.rename(moved)
    tracker.handle([FileEvent(EventKind.DELETED, str(a), False), _changed(moved)], now=0.0)
    assert _settle(tracker, 0.0) == 0
    row = _row(tracker.db, moved)
    assert row.status is ModelStatus.DONE and row.has_thumbnail
    assert sidecar_path_for(moved).exists()
    tracker.remove_due_sidecars(now=60.0)
    assert sidecar_path_for(moved).exists()


def test_a_folder_rename_moves_its_rows(tracker: ChangeTracker, lib: Path) -> None:
    old, new = lib / "sub", lib / "renamed"
    old.rename(new)
    tracker.handle([FileEvent(EventKind.MOVED, str(old), True, str(new))], now=0.0)
    assert _row(tracker.db, new / "b.stl").status is ModelStatus.DONE
    assert tracker.db.get(str(old / "b.stl")) is None


def test_a_folder_deleted_marks_every_model_in_it_missing(tracker: ChangeTracker, lib: Path) -> None:
    b = lib / "sub" / "b.stl"
    b.unlink()
    os.unlink(sidecar_path_for(b))
    os.rmdir(lib / "sub")
    tracker.handle([FileEvent(EventKind.DELETED, str(lib / "sub"), True)], now=0.0)
    assert _row(tracker.db, b).status is ModelStatus.MISSING


def test_a_folder_that_arrives_has_its_models_looked_at(tracker: ChangeTracker, lib: Path) -> None:
    folder = lib / "arrived"
    folder.mkdir()
    for i in range(3):
        (folder / f"m{i}.stl").write_bytes(binary_stl(8, seed=10 + i))
    tracker.handle([_changed(folder, is_dir=True)], now=0.0)
    assert len(tracker.settler) == 3
    assert _settle(tracker, 0.0) == 3
