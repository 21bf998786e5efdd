"""Database faults: locked beyond busy_timeout, removed or replaced by garbage while the daemon
runs — a clear error, a non-zero exit, no damage to models or sidecars (issue #6, item 6)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from reliability_util import Daemon, binary_stl, wait_for

from sidecar_thumbs.errors import DatabaseError
from sidecar_thumbs.files.fingerprint import hash_bytes
from sidecar_thumbs.files.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import FileState

pytestmark = pytest.mark.integration  # reliability suite: real processes, faults, many files


def _library(root: Path, n: int) -> dict[Path, str]:
    root.mkdir()
    out = {}
    for i in range(n):
        p = root / f"m{i:03d}.stl"
        data = binary_stl(200, seed=i)
        p.write_bytes(data)
        out[p] = hash_bytes(data)
    return out


def _undamaged(models: dict[Path, str]) -> None:
    for m, digest in models.items():
        assert hash_bytes(m.read_bytes()) == digest, f"model changed: {m}"
        info = read_sidecar(sidecar_path_for(m))
        assert info is None or (info.ours and info.readable and info.content_hash == digest), info
    assert not [p for p in next(iter(models)).parent.iterdir() if p.name.endswith(".tmp")]


def test_locked_beyond_busy_timeout_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    StateDB(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock and never lets go
    try:
        with StateDB(path, busy_timeout_ms=100) as db, pytest.raises(DatabaseError) as err:
            db.upsert_files([FileState(str(tmp_path / "m.stl"), 1, 1, None, True)])
        assert "locked" in err.value.message and "\n" not in err.value.message
    finally:
        other.execute("ROLLBACK")
        other.close()
    with StateDB(path) as db:  # nothing half-written once the lock is gone
        assert db.get(str(tmp_path / "m.stl")) is None


@pytest.mark.parametrize("fault", ["garbage", "removed"])
def test_database_damaged_while_the_daemon_runs(tmp_path: Path, fault: str) -> None:
    models = _library(tmp_path / "lib", 150)
    db = tmp_path / "state" / "db.sqlite3"
    db.parent.mkdir()
    d = Daemon(tmp_path / "lib", db, "--settle", "0.2", "--rescan-interval", "1")
    try:
        wait_for(lambda: any(sidecar_path_for(m).exists() for m in models), what="first renders")
        if fault == "garbage":
            for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
                if p.exists():
                    with open(p, "r+b") as f:
                        f.write(os.urandom(8192))  # the same inode, overwritten
        else:
            for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
                p.unlink(missing_ok=True)
        # More work arrives, so the daemon must touch the database again.
        (tmp_path / "lib" / "late.stl").write_bytes(binary_stl(10))
        rc = d.proc.wait(12)  # two rescans (1 s apart) must notice
    finally:
        d.reap_group()
    log = d.log()
    assert rc != 0, log[-2000:]
    assert "database" in log.lower() or "sqlite" in log.lower(), log[-2000:]
    _undamaged(models)
