"""The state database: schema, the row state machine, path storage, and sharing the file between processes.

Every test uses a real SQLite file in tmp_path; the concurrency tests use real second processes.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar_thumbs.errors import DatabaseError
from sidecar_thumbs.store import migrations
from sidecar_thumbs.store import sqlite as sqlitedb
from sidecar_thumbs.store.dbpath import ESCAPED_PREFIX, path_from_db, path_to_db
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import FileState, ModelStatus, RenderDone, RenderFailed, ThumbSource

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "sidecar.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[StateDB]:
    with StateDB(db_path) as state:
        yield state


def pending(path: str, hash: str | None = "h1", size: int = 100, mtime_ns: int = 1) -> FileState:
    return FileState(path=path, size=size, mtime_ns=mtime_ns, hash=hash, needs_render=True)


def done(path: str, hash: str = "h1", size: int = 100, mtime_ns: int = 1) -> RenderDone:
    return RenderDone(path, hash, size, mtime_ns, source="rendered", triangles=12, render_ms=4.5)


def run_python(script: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=60, **kwargs
    )


# -- opening and migrations --------------------------------------------------------------------------


def test_new_database_gets_schema_wal_and_its_folder(db_path: Path) -> None:
    with StateDB(db_path):
        pass
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations.SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"st_models", "st_meta"} <= tables
    finally:
        conn.close()


def test_reopen_is_idempotent_and_keeps_rows(db_path: Path) -> None:
    with StateDB(db_path) as db:
        db.upsert_files([pending("/m/a.stl")], now=10)
        db.set_meta("last_scan", "10")
    with StateDB(db_path) as db:
        assert db.get("/m/a.stl") is not None
        assert db.get_meta("last_scan") == "10"
        assert db.get_meta("nope") is None


def test_old_schema_upgrades_in_one_go(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with StateDB(db_path) as db:
        db.upsert_files([pending("/m/a.stl")], now=10)
    step = ("CREATE TABLE st_extra (x INTEGER)", "ALTER TABLE st_models ADD COLUMN note TEXT")
    nxt = len(migrations.STEPS) + 1
    for module in (migrations, sqlitedb):
        monkeypatch.setattr(module, "SCHEMA_VERSION", nxt)
    monkeypatch.setattr(migrations, "STEPS", (*migrations.STEPS, step))
    with StateDB(db_path) as db:
        assert db.get("/m/a.stl") is not None
        assert db._read("PRAGMA user_version") == [(nxt,)]
        assert db._read("SELECT count(*) FROM st_extra") == [(0,)]


def test_failed_upgrade_leaves_old_schema_intact(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    StateDB(db_path).close()
    broken = ("CREATE TABLE st_extra (x INTEGER)", "THIS IS NOT SQL")
    current = len(migrations.STEPS)
    for module in (migrations, sqlitedb):
        monkeypatch.setattr(module, "SCHEMA_VERSION", current + 1)
    monkeypatch.setattr(migrations, "STEPS", (*migrations.STEPS, broken))
    with pytest.raises(DatabaseError, match="syntax error"):
        StateDB(db_path)
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == current
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'st_extra'").fetchone()[0] == 0
    finally:
        conn.close()


def test_newer_schema_is_refused(db_path: Path) -> None:
    StateDB(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    for readonly in (False, True):
        with pytest.raises(DatabaseError, match=r"written by a newer sidecar-thumbs \(schema 99\)"):
            StateDB(db_path, readonly=readonly)


def test_garbage_file_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "notes.db"
    junk.write_bytes(b"this is a text file, not a database\n" * 200)
    for readonly in (False, True):
        with pytest.raises(DatabaseError, match="is not a SQLite database"):
            StateDB(junk, readonly=readonly)
    assert junk.read_bytes().startswith(b"this is a text file")


def test_missing_file_without_create_is_refused(db_path: Path) -> None:
    with pytest.raises(DatabaseError, match="does not exist"):
        StateDB(db_path, create=False)
    with pytest.raises(DatabaseError, match="does not exist"):
        StateDB(db_path, readonly=True)
    assert not db_path.parent.exists()


def test_readonly_reads_but_cannot_write(db_path: Path) -> None:
    with StateDB(db_path) as db:
        db.upsert_files([pending("/m/a.stl")], now=10)
    with StateDB(db_path, readonly=True) as ro:
        assert ro.counts()[ModelStatus.PENDING] == 1
        with pytest.raises(DatabaseError, match="readonly"):
            ro.upsert_files([pending("/m/b.stl")])
        ro.checkpoint()  # a no-op, not an error


def test_readonly_refuses_a_database_not_yet_upgraded(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(DatabaseError, match="has schema 0"):
        StateDB(empty, readonly=True)


# -- paths --------------------------------------------------------------------------------------------

AWKWARD_NAMES = [
    os.fsdecode(b"caf\xff\xfe.stl"),  # not UTF-8: surrogate escapes
    "line\nbreak.stl",
    'quote\'s "double".3mf',
    "rocket 🚀 part.stl",
    "100% done.stl",
    os.fsdecode(b"mixed %FF and \xff.stl"),
    ESCAPED_PREFIX + "looks escaped.stl",
]


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_awkward_paths_round_trip(db: StateDB, name: str) -> None:
    path = f"/lib/{name}"
    assert path_from_db(path_to_db(path)) == path
    db.upsert_files([pending(path)], now=1)
    row = db.get(path)
    assert row is not None and row.path == path
    assert list(db.rows_under(["/lib"])) == [path]
    assert [r.path for r in db.claim(5, now=2)] == [path]
    assert db.record_done([done(path)], now=3) == []
    assert db.get(path).status is ModelStatus.DONE  # type: ignore[union-attr]


def test_plain_paths_are_stored_verbatim_for_other_readers(db: StateDB) -> None:
    db.upsert_files([pending("/lib/ok 🚀.stl"), pending(os.fsdecode(b"/lib/\xff.stl"))], now=1)
    stored = sorted(r[0] for r in db._read("SELECT path FROM st_models"))
    assert stored == ["/lib/ok 🚀.stl", ESCAPED_PREFIX + "/lib/%FF.stl"]


def test_rows_under_matches_whole_folder_names_only(db: StateDB) -> None:
    paths = ["/a/b", "/a/b/x.stl", "/a/b/sub/y.stl", "/a/bc/z.stl", "/a/b.stl", "/a/b0.stl", "/a/c.stl"]
    paths.append(os.fsdecode(b"/a/b/\xff.stl"))
    db.upsert_files([pending(p) for p in paths], now=1)
    under_b = {"/a/b", "/a/b/x.stl", "/a/b/sub/y.stl", os.fsdecode(b"/a/b/\xff.stl")}
    assert set(db.rows_under(["/a/b"])) == under_b
    assert set(db.rows_under(["/a/b/"])) == under_b
    assert set(db.rows_under(["/a/bc", "/a/c.stl"])) == {"/a/bc/z.stl", "/a/c.stl"}
    assert set(db.rows_under(["/"])) == set(paths)
    assert set(db.rows_under()) == set(paths)
    assert db.rows_under([]) == {}
    assert set(db.rows_under([os.fsdecode(b"/a/b/\xff.stl")])) == {os.fsdecode(b"/a/b/\xff.stl")}


# -- the row state machine ----------------------------------------------------------------------------


def test_upsert_claim_done(db: StateDB) -> None:
    db.upsert_files([pending("/m/new.stl", size=7, mtime_ns=70)], now=100)
    row = db.get("/m/new.stl")
    assert row is not None
    assert (row.status, row.has_thumbnail, row.attempts, row.created_at) == (
        ModelStatus.PENDING,
        False,
        0,
        100.0,
    )
    [claimed] = db.claim(10, now=101)
    assert (claimed.status, claimed.updated_at) == (ModelStatus.RENDERING, 100.0)
    assert db.claim(10, now=102) == []  # a claimed row is not handed out twice
    assert db.record_done([done("/m/new.stl", size=7, mtime_ns=70)], now=103) == []
    row = db.get("/m/new.stl")
    assert row is not None
    assert row.status is ModelStatus.DONE
    assert (row.has_thumbnail, row.thumb_hash, row.thumb_source, row.triangles) == (
        True,
        "h1",
        "rendered",
        12,
    )
    assert (row.rendered_at, row.render_ms, row.error, row.next_attempt_at) == (103.0, 4.5, None, None)


def test_new_file_with_fresh_sidecar_is_done_without_render(db: StateDB) -> None:
    db.upsert_files([FileState("/m/a.stl", 5, 6, "hx", needs_render=False)], now=1)
    row = db.get("/m/a.stl")
    assert row is not None
    assert (row.status, row.has_thumbnail, row.thumb_hash) == (ModelStatus.DONE, True, "hx")
    assert db.claim(10, now=2) == []


def test_claim_oldest_first_with_limit_and_roots(db: StateDB) -> None:
    db.upsert_files([pending("/r1/old.stl")], now=1)
    db.upsert_files([pending("/r2/mid.stl")], now=2)
    db.upsert_files([pending("/r1/new.stl")], now=3)
    assert [r.path for r in db.claim(2, now=10)] == ["/r1/old.stl", "/r2/mid.stl"]
    db.release_claims()
    assert [r.path for r in db.claim(5, now=11, roots=["/r1"])] == ["/r1/old.stl", "/r1/new.stl"]
    assert db.claim(5, now=12, roots=["/elsewhere"]) == []


def test_transient_failure_backs_off_then_gives_up(db: StateDB) -> None:
    db.upsert_files([pending("/m/busy.stl")], now=0)
    now = 0.0
    waits = []
    for _ in range(4):
        [row] = db.claim(1, now=now)
        db.record_failed([RenderFailed(row.path, "file busy", transient=True)], now=now, max_transient_attempts=4)
        row = db.get("/m/busy.stl")  # type: ignore[assignment]
        assert row.status is ModelStatus.FAILED and row.error_transient
        if row.next_attempt_at is None:
            break
        waits.append(row.next_attempt_at - now)
        assert db.claim(1, now=row.next_attempt_at - 0.001) == []  # not before its time
        now = row.next_attempt_at
    assert waits == [30.0, 60.0, 120.0]
    assert row.attempts == 4 and row.next_attempt_at is None  # the 4th failure is final
    assert db.claim(1, now=1e9) == []


def test_backoff_is_capped(db: StateDB) -> None:
    db.upsert_files([pending("/m/busy.stl")], now=0)
    for _ in range(6):
        db.record_failed([RenderFailed("/m/busy.stl", "busy", transient=True)], now=0, backoff_max=100.0)
    row = db.get("/m/busy.stl")
    assert row is not None and (row.attempts, row.next_attempt_at) == (6, 100.0)


def test_deterministic_failure_waits_for_the_file_to_change(db: StateDB) -> None:
    db.upsert_files([pending("/m/bad.stl", hash="h1")], now=0)
    db.claim(1, now=1)
    long_error = "binary STL truncated:\n header says 5000 triangles " + "x" * 1000
    assert db.record_failed([RenderFailed("/m/bad.stl", long_error, transient=False, hash="h1")], now=2) == []
    row = db.get("/m/bad.stl")
    assert row is not None
    assert (row.status, row.has_thumbnail, row.error_transient, row.attempts) == (
        ModelStatus.FAILED,
        False,
        False,
        1,
    )
    assert row.next_attempt_at is None
    assert row.error is not None and len(row.error) == 500 and "\n" not in row.error
    assert db.claim(10, now=1e9) == []
    # A rescan that finds nothing new keeps it failed.
    db.upsert_files([FileState("/m/bad.stl", 100, 1, "h1", needs_render=False)], now=3)
    assert db.get("/m/bad.stl").status is ModelStatus.FAILED  # type: ignore[union-attr]
    assert db.claim(10, now=1e9) == []
    # Same content flagged again (e.g. settings changed): pending, attempts kept.
    db.upsert_files([pending("/m/bad.stl", hash="h1")], now=4)
    row = db.get("/m/bad.stl")
    assert row is not None and (row.status, row.attempts) == (ModelStatus.PENDING, 1)
    db.claim(1, now=5)
    db.record_failed([RenderFailed("/m/bad.stl", "still bad", transient=False)], now=6)
    # The file changed: pending, claimable now, attempts start over.
    db.upsert_files([pending("/m/bad.stl", hash="h2", size=200, mtime_ns=2)], now=7)
    row = db.get("/m/bad.stl")
    assert row is not None and (row.status, row.attempts, row.hash) == (ModelStatus.PENDING, 0, "h2")
    assert [r.path for r in db.claim(10, now=7)] == ["/m/bad.stl"]


def test_done_is_ignored_when_the_file_changed_meanwhile(db: StateDB) -> None:
    db.upsert_files([pending("/m/a.stl", hash="h1")], now=0)
    db.claim(1, now=1)
    db.upsert_files([pending("/m/a.stl", hash="h2", size=101, mtime_ns=2)], now=2)  # saved again
    assert db.record_done([done("/m/a.stl", hash="h1")], now=3) == ["/m/a.stl"]
    row = db.get("/m/a.stl")
    assert row is not None and (row.status, row.has_thumbnail, row.hash) == (ModelStatus.PENDING, False, "h2")
    [again] = db.claim(1, now=4)
    assert db.record_done([done(again.path, hash="h2", size=101, mtime_ns=2)], now=5) == []
    assert db.get("/m/a.stl").thumb_hash == "h2"  # type: ignore[union-attr]


def test_done_without_known_hash_checks_size_and_mtime(db: StateDB) -> None:
    db.upsert_files([pending("/m/a.stl", hash=None, size=10, mtime_ns=1)], now=0)
    db.upsert_files([pending("/m/b.stl", hash=None, size=10, mtime_ns=1)], now=0)
    db.claim(2, now=1)
    db.upsert_files([pending("/m/b.stl", hash=None, size=11, mtime_ns=2)], now=2)
    ignored = db.record_done([done("/m/a.stl", "ha", 10, 1), done("/m/b.stl", "hb", 10, 1)], now=3)
    assert ignored == ["/m/b.stl"]
    assert db.get("/m/a.stl").hash == "ha"  # type: ignore[union-attr]


def test_results_for_missing_or_unknown_files_are_ignored(db: StateDB) -> None:
    db.upsert_files([pending("/m/gone.stl")], now=0)
    db.claim(1, now=1)
    db.mark_missing(["/m/gone.stl"])
    assert db.record_done([done("/m/gone.stl"), done("/m/never.stl")], now=2) == [
        "/m/gone.stl",
        "/m/never.stl",
    ]
    assert db.record_failed([RenderFailed("/m/gone.stl", "vanished", transient=True)], now=2) == ["/m/gone.stl"]
    assert db.get("/m/gone.stl").status is ModelStatus.MISSING  # type: ignore[union-attr]


def test_failure_about_older_content_is_ignored(db: StateDB) -> None:
    db.upsert_files([pending("/m/a.stl", hash="h2")], now=0)
    assert db.record_failed([RenderFailed("/m/a.stl", "bad", transient=False, hash="h1")], now=1) == ["/m/a.stl"]
    assert db.get("/m/a.stl").status is ModelStatus.PENDING  # type: ignore[union-attr]


def test_release_claims(db: StateDB) -> None:
    db.upsert_files([pending(f"/m/{i}.stl") for i in range(4)], now=0)
    assert len(db.claim(10, now=1)) == 4
    assert db.release_claims(["/m/0.stl", "/m/unknown.stl"]) == 1
    assert db.counts()[ModelStatus.RENDERING] == 3
    assert db.release_claims() == 3
    assert db.counts()[ModelStatus.PENDING] == 4
    assert len(db.claim(10, now=2)) == 4


def test_upsert_keeps_hash_only_while_stat_is_unchanged(db: StateDB) -> None:
    db.upsert_files([FileState("/m/a.stl", 10, 1, "h1", needs_render=False)], now=0)
    db.upsert_files([FileState("/m/a.stl", 10, 1, None, needs_render=False)], now=1)
    assert db.get("/m/a.stl").hash == "h1"  # type: ignore[union-attr]
    db.upsert_files([FileState("/m/a.stl", 11, 2, None, needs_render=True)], now=2)
    row = db.get("/m/a.stl")
    assert row is not None and row.hash is None and row.thumb_hash == "h1" and row.has_thumbnail


def test_missing_file_that_comes_back(db: StateDB) -> None:
    db.upsert_files([pending("/m/a.stl"), pending("/m/b.stl")], now=0)
    db.claim(2, now=1)
    db.record_done([done("/m/a.stl"), done("/m/b.stl")], now=2)
    db.mark_missing(["/m/a.stl", "/m/b.stl"])
    row = db.get("/m/a.stl")
    assert row is not None and (row.status, row.has_thumbnail) == (ModelStatus.MISSING, False)
    assert db.claim(10, now=3) == []
    db.upsert_files([FileState("/m/a.stl", 100, 1, "h1", needs_render=False), pending("/m/b.stl", hash="h9")], now=4)
    a, b = db.get("/m/a.stl"), db.get("/m/b.stl")
    assert a is not None and (a.status, a.has_thumbnail, a.thumb_hash) == (ModelStatus.DONE, True, "h1")
    assert b is not None and b.status is ModelStatus.PENDING


def test_rename_keeps_the_row_and_replaces_a_new_one(db: StateDB) -> None:
    db.upsert_files([pending("/m/old.stl")], now=0)
    db.claim(1, now=1)
    db.record_done([done("/m/old.stl")], now=2)
    old_id = db.get("/m/old.stl").id  # type: ignore[union-attr]
    db.upsert_files([pending("/m/sub/new.stl")], now=3)  # the scan saw the new name first
    assert db.rename("/m/old.stl", "/m/sub/new.stl")
    assert db.get("/m/old.stl") is None
    row = db.get("/m/sub/new.stl")
    assert row is not None and (row.id, row.status, row.thumb_hash) == (old_id, ModelStatus.DONE, "h1")
    assert not db.rename("/m/nothing.stl", "/m/sub/new.stl")
    assert db.get("/m/sub/new.stl") is not None


def test_retry_failed_under_roots(db: StateDB) -> None:
    db.upsert_files([pending("/r1/a.stl"), pending("/r2/b.stl")], now=0)
    db.record_failed([RenderFailed(p, "bad", transient=False) for p in ("/r1/a.stl", "/r2/b.stl")], now=1)
    assert db.retry_failed(["/r1"]) == 1
    row = db.get("/r1/a.stl")
    assert row is not None and (row.status, row.attempts) == (ModelStatus.PENDING, 0)
    assert db.get("/r2/b.stl").status is ModelStatus.FAILED  # type: ignore[union-attr]
    assert db.retry_failed() == 1


def test_flags_deletes_and_stats(db: StateDB) -> None:
    db.upsert_files([pending(f"/m/{i}.stl") for i in range(5)], now=0)
    db.claim(3, now=1)
    db.record_done([done("/m/0.stl")], now=100)
    db.record_done([done("/m/1.stl")], now=130)
    db.record_failed([RenderFailed("/m/2.stl", "first", transient=False)], now=140)
    db.record_failed([RenderFailed("/m/3.stl", "second", transient=True)], now=150)
    assert db.counts() == {
        ModelStatus.PENDING: 1, ModelStatus.RENDERING: 0, ModelStatus.DONE: 2,
        ModelStatus.FAILED: 2, ModelStatus.MISSING: 0,
    }  # fmt: skip
    assert db.rate(window_s=40, now=150) == pytest.approx(1 / 40)
    assert db.rate(window_s=60, now=150) == pytest.approx(2 / 60)
    assert db.rate(window_s=60, now=99) == 0.0
    assert db.backlog(now=150) == 1  # /m/4; /m/3 is backing off
    assert db.backlog(now=150 + 30) == 2
    assert [r.error for r in db.recent_failures()] == ["second", "first"]
    assert len(db.recent_failures(limit=1)) == 1
    db.set_has_thumbnail([("/m/0.stl", False), ("/m/4.stl", True)])
    assert not db.get("/m/0.stl").has_thumbnail  # type: ignore[union-attr]
    assert db.get("/m/4.stl").has_thumbnail  # type: ignore[union-attr]
    db.delete_rows(["/m/0.stl", "/m/1.stl"])
    assert set(db.rows_under()) == {"/m/2.stl", "/m/3.stl", "/m/4.stl"}
    db.checkpoint()


def test_transaction_rolls_back_on_error(db: StateDB) -> None:
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO st_meta (key, value) VALUES ('k', 'v')")
        raise RuntimeError("boom")
    assert db.get_meta("k") is None
    with db.transaction() as conn:
        conn.execute("INSERT INTO st_meta (key, value) VALUES ('k', 'v')")
    assert db.get_meta("k") == "v"


# -- sharing the file with other processes ------------------------------------------------------------

READER = """
import json, sys
from sidecar_thumbs.store.state import StateDB
with StateDB(sys.argv[1], readonly=True, busy_timeout_ms=100) as db:
    print(json.dumps(sorted(db.rows_under())))
"""


@pytest.mark.integration
def test_reader_process_is_not_blocked_and_sees_committed_rows(db: StateDB, db_path: Path) -> None:
    db.upsert_files([pending("/m/committed.stl")], now=0)
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO st_models (path, status, created_at, updated_at) VALUES ('/m/open.stl', 'pending', 0, 0)"
        )
        during = run_python(READER, str(db_path))
    after = run_python(READER, str(db_path))
    assert during.returncode == 0, during.stderr
    assert during.stdout.strip() == '["/m/committed.stl"]'
    assert after.stdout.strip() == '["/m/committed.stl", "/m/open.stl"]'


HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO st_meta (key, value) VALUES ('holder', 'was here')")
print("locked", flush=True)
if float(sys.argv[2]) < 0:
    sys.stdin.read()  # hold until the test closes our stdin
else:
    time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def start_holder(db_path: Path, hold_s: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db_path), str(hold_s)],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "locked\n"
    return proc


@pytest.mark.integration
def test_write_retries_past_busy_timeout_until_the_other_writer_commits(db_path: Path) -> None:
    with StateDB(db_path, busy_timeout_ms=100) as db:
        db.upsert_files([pending("/m/a.stl")], now=0)
        db.claim(1, now=1)
        holder = start_holder(db_path, hold_s=0.3)  # 3x busy_timeout
        try:
            assert db.record_done([done("/m/a.stl")], now=2) == []
        finally:
            holder.communicate(timeout=30)
        assert db.busy_retries >= 1
        assert db.get("/m/a.stl").status is ModelStatus.DONE  # type: ignore[union-attr]
        assert db.get_meta("holder") == "was here"


@pytest.mark.integration
def test_write_raises_when_the_other_writer_never_lets_go(db_path: Path) -> None:
    with StateDB(db_path, busy_timeout_ms=50) as db:
        db.upsert_files([pending("/m/a.stl")], now=0)
        holder = start_holder(db_path, hold_s=-1)
        try:
            with pytest.raises(DatabaseError, match="stayed locked by another process"):
                db.mark_missing(["/m/a.stl"])
        finally:
            holder.communicate(input="", timeout=30)
        assert db.get("/m/a.stl").status is ModelStatus.PENDING  # type: ignore[union-attr]
        db.mark_missing(["/m/a.stl"])  # and works again once the lock is free
        assert db.get("/m/a.stl").status is ModelStatus.MISSING  # type: ignore[union-attr]


SNAPSHOT_READER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN")
print(conn.execute("SELECT count(*) FROM st_models").fetchone()[0], flush=True)
sys.stdin.read()  # keep the read snapshot until the test closes our stdin
conn.execute("COMMIT")
"""


@pytest.mark.integration
def test_checkpoint_does_not_fail_under_a_long_reader_and_truncates_after(db: StateDB, db_path: Path) -> None:
    db.upsert_files([pending(f"/m/{i}.stl") for i in range(500)], now=0)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    reader = subprocess.Popen(
        [sys.executable, "-c", SNAPSHOT_READER, str(db_path)],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert reader.stdout is not None and reader.stdout.readline() == "500\n"
        db.upsert_files([pending(f"/m/more{i}.stl") for i in range(500)], now=1)
        assert db.checkpoint() is False  # the reader still needs the WAL; no error, no wait
        db.upsert_files([pending("/m/last.stl")], now=2)  # and writing goes on
    finally:
        reader.communicate(input="", timeout=30)
    assert db.checkpoint() is True
    assert Path(f"{db_path}-wal").stat().st_size == 0
    assert db.counts()[ModelStatus.PENDING] == 1001


def test_plan_rows_differing_returns_only_what_differs(db: StateDB) -> None:
    # Four done rows with sidecars, one pending, one failed; the walk: one unchanged, one moved stat,
    # one whose sidecar is not listed, one not known to the listing; one new file; one row not walked.
    paths = [f"/lib/m{i}.stl" for i in range(6)]
    db.upsert_files([pending(p, hash=f"h{i}") for i, p in enumerate(paths)])
    db.record_done([RenderDone(p, f"h{i}", 100, 1, ThumbSource.RENDERED, 12, 1.0) for i, p in enumerate(paths[:4])])
    db.record_failed([RenderFailed(paths[5], "bad", False, "h5")])
    db.upsert_files([pending("/elsewhere/x.stl")])  # outside the root: never returned
    walk = [
        (paths[0], 100, 1, 7, True),  # unchanged
        (paths[1], 101, 1, 7, True),  # size moved
        (paths[2], 100, 1, 7, False),  # sidecar gone
        (paths[3], 100, 1, 7, None),  # listing did not say: the planner looks
        (paths[4], 100, 1, 7, True),  # pending
        (paths[5], 100, 1, 7, False),  # failed
        ("/lib/new.stl", 5, 5, 5, False),
    ]
    db.upsert_files([pending("/lib/gone.stl")])
    rows, new = db.plan_rows_differing(["/lib"], walk)
    assert set(rows) == {*paths[1:], "/lib/gone.stl"}
    assert new == {"/lib/new.stl"}
    assert rows[paths[5]].status is ModelStatus.FAILED and rows[paths[1]].size == 100
    # Run twice on one connection: the temporary table starts empty each time.
    rows2, new2 = db.plan_rows_differing(["/lib"], walk[:1])
    assert set(rows2) == {*paths[1:], "/lib/gone.stl"} and new2 == set()


def test_plan_rows_differing_with_paths_that_are_not_utf8(db: StateDB) -> None:
    # A name with a byte that is not UTF-8 (surrogate-escaped by os.fsdecode) cannot be bound as it is: the
    # walk is stored as the rows are, escaped, and compared all the same.
    odd, plain = "/lib/caf\udce9.stl", "/lib/plain.stl"
    db.upsert_files([pending(odd, hash="h1"), pending(plain, hash="h2")])
    db.record_done([RenderDone(p, h, 100, 1, ThumbSource.RENDERED, 12, 1.0) for p, h in ((odd, "h1"), (plain, "h2"))])
    rows, new = db.plan_rows_differing(["/lib"], [(odd, 100, 1, 1, True), (plain, 100, 1, 1, True)])
    assert rows == {} and new == set()
    rows, new = db.plan_rows_differing(["/lib"], [(odd, 101, 1, 1, True), ("/lib/n\udcff.stl", 1, 1, 1, False)])
    assert set(rows) == {odd, plain} and new == {"/lib/n\udcff.stl"}


def test_plan_rows_differing_finds_every_unwalked_row_whatever_the_counts(db: StateDB) -> None:
    # The rows the walk did not see are looked up only when the counts say some exist: here one row is
    # gone and one file is new, so the walk has as many paths as there are rows, but one is not a row.
    db.upsert_files([pending("/lib/a.stl", hash="a"), pending("/lib/gone.stl", hash="g")])
    db.record_done([RenderDone("/lib/a.stl", "a", 100, 1, ThumbSource.RENDERED, 12, 1.0)])
    rows, new = db.plan_rows_differing(["/lib"], [("/lib/a.stl", 100, 1, 1, True), ("/lib/b.stl", 1, 1, 1, False)])
    assert set(rows) == {"/lib/gone.stl"} and new == {"/lib/b.stl"}
    # Missing rows are rows too: one that stays unwalked comes back, as before.
    db.mark_missing(["/lib/gone.stl"])
    rows, _ = db.plan_rows_differing(["/lib"], [("/lib/a.stl", 100, 1, 1, True)])
    assert set(rows) == {"/lib/gone.stl"}


@pytest.mark.parametrize("params", [12, 999])  # 2 rows an INSERT (and a remainder of 1), or all 7 in one
def test_plan_rows_differing_within_the_limit_on_parameters(db: StateDB, params: int) -> None:
    db._conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, params)
    paths = [f"/lib/m{i}.stl" for i in range(7)]
    db.upsert_files([pending(p, hash=f"h{i}") for i, p in enumerate(paths)])
    db.record_done([RenderDone(p, f"h{i}", 100, 1, ThumbSource.RENDERED, 12, 1.0) for i, p in enumerate(paths)])
    walk = [(p, 100, 1, 1, True) for p in paths[:5]] + [(paths[5], 100, 2, 1, True), ("/lib/new.stl", 1, 1, 1, False)]
    rows, new = db.plan_rows_differing(["/lib"], walk)
    assert set(rows) == {paths[5], paths[6]} and new == {"/lib/new.stl"}


def test_counts_under_and_present_under_count_every_status(db: StateDB) -> None:
    db.upsert_files([pending(f"/lib/m{i}.stl", hash=f"h{i}") for i in range(6)] + [pending("/other/x.stl")])
    db.record_done([RenderDone(f"/lib/m{i}.stl", f"h{i}", 100, 1, ThumbSource.RENDERED, 12, 1.0) for i in range(3)])
    db.record_failed([RenderFailed("/lib/m3.stl", "bad", False, "h3")])
    db.mark_missing(["/lib/m4.stl"])
    counts = db.counts_under(["/lib"])
    assert counts[ModelStatus.DONE] == 3 and counts[ModelStatus.FAILED] == 1
    assert counts[ModelStatus.MISSING] == 1 and counts[ModelStatus.PENDING] == 1
    assert counts[ModelStatus.RENDERING] == 0 and sum(counts.values()) == 6
    assert db.present_under("/lib") == 5 and db.present_under("/other") == 1 and db.present_under("/none") == 0
