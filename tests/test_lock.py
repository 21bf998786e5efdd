"""The coordinator lock: one renderer per database, who holds it, and nothing stale after a release.

flock locks belong to open file descriptions, so two DaemonLock objects in one process exclude each
other just as two processes do (the subprocess cases live in test_daemon.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sidecar_thumbs.errors import DatabaseError, LockedError, SidecarThumbsError
from sidecar_thumbs.store.lock import DaemonLock, lock_path_for, read_lock_holder


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "db.sqlite3"


def test_the_lock_file_sits_beside_the_database(db: Path) -> None:
    assert lock_path_for(db) == Path(f"{db}.lock")


def test_no_holder_without_a_lock_file_or_after_release(db: Path) -> None:
    assert read_lock_holder(db) is None
    with DaemonLock(db):
        pass
    assert lock_path_for(db).exists()  # left in place: removing it would race with a starter
    assert read_lock_holder(db) is None


def test_the_holder_is_known_while_held(db: Path) -> None:
    with DaemonLock(db, role="scan"):
        holder = read_lock_holder(db)
        assert holder is not None
        assert (holder.pid, holder.role, holder.host) == (os.getpid(), "scan", os.uname().nodename)


def test_a_second_coordinator_is_refused_with_who_holds_it(db: Path) -> None:
    with DaemonLock(db, role="daemon"):
        second = DaemonLock(db, role="scan")
        with pytest.raises(LockedError, match=rf"another sidecar-thumbs daemon .*pid {os.getpid()}") as caught:
            second.acquire()
        assert isinstance(caught.value, SidecarThumbsError)
        assert second.holder is not None and second.holder.role == "daemon"
        second.release()  # releasing a lock never taken is harmless
        assert read_lock_holder(db) is not None
    third = DaemonLock(db)
    third.acquire()  # free again once released
    third.release()


def test_an_unreadable_holder_record_still_refuses(db: Path) -> None:
    with DaemonLock(db):
        os.truncate(lock_path_for(db), 0)  # a holder that crashed mid-write of its record
        with pytest.raises(LockedError, match="already running"):
            DaemonLock(db).acquire()
        holder = read_lock_holder(db)
        assert holder is not None and holder.pid == 0


def test_a_lock_file_that_cannot_be_created_is_a_database_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    with pytest.raises(DatabaseError, match="cannot open the lock file"):
        DaemonLock(tmp_path / "file" / "db.sqlite3").acquire()
