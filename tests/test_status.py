"""status: what the daemon is doing, read from a real database (read-only, never created)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from sidecar_thumbs.errors import DatabaseError
from sidecar_thumbs.reports.status import collect_status
from sidecar_thumbs.store import migrations
from sidecar_thumbs.store.lock import DaemonLock
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import FileState, ModelStatus, RenderDone, RenderFailed


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Four models: two done (one just now), one failed with a reason, one pending."""
    path = tmp_path / "state.sqlite3"
    now = time.time()
    with StateDB(path) as db:
        db.upsert_files([FileState(f"/lib/{n}.stl", 10, 1, f"h{n}", needs_render=True) for n in "abcd"], now=now)
        db.claim(3, now=now)  # a, b, c
        db.record_done([RenderDone("/lib/a.stl", "ha", 10, 1, "rendered", 12, 5.0)], now=now - 3600)
        db.record_done([RenderDone("/lib/b.stl", "hb", 10, 1, "embedded", None, 5.0)], now=now - 1)
        db.record_failed([RenderFailed("/lib/c.stl", "not a valid STL", transient=False, hash="hc")], now=now)
    return path


def test_counts_backlog_and_failures(db_path: Path) -> None:
    report = collect_status(db_path)
    assert report.database == os.fspath(db_path)
    assert report.counts == {"pending": 1, "rendering": 0, "done": 2, "failed": 1, "missing": 0}
    assert report.total == 4 and report.backlog == 1
    assert [(f["path"], f["error"]) for f in report.failures] == [("/lib/c.stl", "not a valid STL")]
    assert report.daemon is None and report.dam is None


def test_rate_over_the_last_minute_gives_the_eta(db_path: Path) -> None:
    report = collect_status(db_path)
    assert report.rate_1m == pytest.approx(1 / 60)  # one render in the last minute (the other is old)
    assert report.eta_s == pytest.approx(60.0)


def test_a_running_daemon_is_shown(db_path: Path) -> None:
    with DaemonLock(db_path):
        report = collect_status(db_path)
    assert report.daemon is not None and report.daemon.pid == os.getpid()
    assert json.loads(json.dumps(report.as_dict()))["daemon"]["pid"] == os.getpid()


def test_the_json_form_holds_every_figure(db_path: Path) -> None:
    out = collect_status(db_path).as_dict()
    assert set(out) == {
        "database", "total", "counts", "backlog", "rate_per_s_1m", "eta_s", "recent_failures", "daemon",
        "asset_manager", "roots", "renderer",
    }  # fmt: skip
    assert out["counts"] == {s.value: n for s, n in zip(ModelStatus, [1, 0, 2, 1, 0], strict=True)}


def test_an_empty_database_has_nothing_to_do(tmp_path: Path) -> None:
    StateDB(tmp_path / "empty.sqlite3").close()
    report = collect_status(tmp_path / "empty.sqlite3")
    assert (report.total, report.backlog, report.eta_s) == (0, 0, 0.0)


def test_a_database_that_does_not_exist_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError):
        collect_status(tmp_path / "nope.sqlite3")
    assert not (tmp_path / "nope.sqlite3").exists()


def test_a_database_whose_folder_does_not_exist_is_the_same_error(tmp_path: Path) -> None:
    # Before any scan the default folder (~/.local/share/sidecar-thumbs) is not there yet: `status` said
    # so with a traceback (the permission message stat()ed the missing folder).
    with pytest.raises(DatabaseError, match="does not exist"):
        collect_status(tmp_path / "never-made" / "state.sqlite3")
    assert not (tmp_path / "never-made").exists()


def test_each_root_is_one_line_the_daemons_record_and_what_differs_here(tmp_path: Path) -> None:
    gone, lib, away = tmp_path / "gone", tmp_path / "lib", tmp_path / "away"
    lib.mkdir()
    gone.mkdir()
    db_path = tmp_path / "state.sqlite3"
    with StateDB(db_path) as db:
        db.set_root_state(str(lib), True, None, now=1000.0)
        db.set_root_state(str(away), False, "does not exist", now=1000.0)
        db.set_root_state(str(gone), True, None, now=1000.0)
    gone.rmdir()  # went after the daemon's record (it sees it at its next sweep)
    report = collect_status(db_path, roots=[str(lib)])  # configured and recorded: once
    lines = [r.describe("carol") for r in report.roots]
    assert lines[0].startswith(f"{away}: offline since ") and lines[0].endswith(": does not exist")
    assert lines[1:] == [f"{gone}: online; from here (as carol): does not exist", f"{lib}: online"]
    (away_json, *_) = json.loads(json.dumps(report.as_dict()))["roots"]
    assert away_json == {"path": str(away), "online": False, "reason": "does not exist", "since": 1000.0,
                         "online_here": False, "reason_here": "does not exist"}  # fmt: skip


def test_a_database_with_the_old_root_access_record_is_upgraded_to_one_record(tmp_path: Path) -> None:
    """Schema 4 kept the daemon's listing check as JSON in st_meta beside the root states; the upgrade drops it."""
    db_path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(db_path)
    for step in migrations.STEPS[:4]:
        for sql in step:
            conn.execute(sql)
    conn.execute("PRAGMA user_version = 4")
    conn.execute("INSERT INTO st_meta (key, value) VALUES ('root_access', ?)", (json.dumps({"/lib": "denied"}),))
    conn.execute("INSERT INTO st_roots (path, online, reason, since) VALUES ('/lib', 0, 'does not exist', 5.0)")
    conn.commit()
    conn.close()
    with StateDB(db_path) as db:  # a writing command (the daemon's start, a scan) upgrades it
        assert db.get_meta("root_access") is None
        assert db._read("PRAGMA user_version") == [(migrations.SCHEMA_VERSION,)]
    (root,) = collect_status(db_path).roots
    assert (root.path, root.online, root.reason, root.since) == ("/lib", False, "does not exist", 5.0)
