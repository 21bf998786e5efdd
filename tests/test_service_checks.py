"""What a launchd service needs checked at start: root permissions, the SQLite library, whose database,
the renderer in use, and the polling period."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar_thumbs.daemon.events import EventQueue
from sidecar_thumbs.daemon.loop import Daemon, DaemonConfig
from sidecar_thumbs.daemon.watcher import Watcher
from sidecar_thumbs.errors import DatabaseError
from sidecar_thumbs.files.dbowner import other_user_warnings
from sidecar_thumbs.render import describe_kernel
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.reports.status import collect_status
from sidecar_thumbs.store.sqlite import check_sqlite_library
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.work.executors.local import InlineExecutor

REPO = Path(__file__).resolve().parents[1]


def _without_dac_override(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python that cannot override file permissions (root drops CAP_DAC_*)."""
    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root reads every folder, and setpriv (util-linux) is not there to drop that")
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, check=False)


@pytest.mark.integration  # a Python subprocess without CAP_DAC_OVERRIDE
def test_a_root_the_daemon_cannot_list_is_offline_with_the_reason_and_status_tells_who_can(tmp_path: Path) -> None:
    """One record: the daemon's root state. Here the daemon is a process that may not list the root (as a
    launchd job without Full Disk Access), and ``status`` runs as a user that may (Terminal with its grant)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    db_path = tmp_path / "db.sqlite3"
    StateDB(db_path).close()
    locked.chmod(0)
    try:
        r = _without_dac_override(
            "from sidecar_thumbs.daemon.root_states import RootStates; "
            "from sidecar_thumbs.store.state import StateDB; "
            f"db = StateDB({str(db_path)!r}); RootStates([{str(locked)!r}], db).start(); db.close()"
        )
    finally:
        locked.chmod(0o755)
    assert r.returncode == 0, r.stderr
    assert f"root {locked} offline: cannot be read: permission denied" in r.stderr  # logged once
    (root,) = collect_status(db_path, roots=[str(locked)]).roots
    assert (root.path, root.online, root.online_here) == (str(locked), False, True)
    assert root.reason is not None and root.reason.startswith("cannot be read: permission denied")
    line = root.describe("alice")
    assert line.startswith(f"{locked}: offline since ") and line.endswith("; from here (as alice): readable")
    with StateDB(db_path) as db:
        assert db.get_meta("root_access") is None  # no second record beside the root state


def test_status_shows_what_the_daemon_saw_and_its_renderer(tmp_path: Path) -> None:
    absent = str(tmp_path / "Volumes" / "3D-Files")
    lib = tmp_path / "lib"
    lib.mkdir()
    db_path = tmp_path / "db.sqlite3"
    with StateDB(db_path) as db:
        # (A --once daemon stops at an offline root: the absent one is looked at from here below.)
        daemon = Daemon(DaemonConfig(roots=(str(lib),), once=True, durable=False), db=db,
                        make_executor=InlineExecutor, options=ThumbnailOptions())  # fmt: skip
        daemon.run()
    report = collect_status(db_path, roots=[absent, str(lib)])
    assert report.renderer == describe_kernel("auto")
    assert [r.describe("bob") for r in report.roots] == [
        f"{lib}: online",  # the daemon's roots first; readable here too, so nothing more to say
        f"{absent}: no daemon has recorded it; from here (as bob): does not exist",
    ]


def test_too_old_sqlite_is_refused_with_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_sqlite_library.cache_clear()
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    try:
        with pytest.raises(DatabaseError, match=r"SQLite 3\.31\.1 is too old \(needs 3\.35\.0"):
            StateDB(tmp_path / "db.sqlite3")
        assert not (tmp_path / "db.sqlite3").exists()
    finally:
        check_sqlite_library.cache_clear()


def test_this_sqlite_is_new_enough() -> None:
    check_sqlite_library()  # RETURNING and json_each, as claim() uses them


def test_default_database_of_another_user_is_pointed_out(tmp_path: Path) -> None:
    rel = Path("Library/Application Support/sidecar-thumbs/state.sqlite3")
    me, daemon_user = tmp_path / "alice", tmp_path / "_sidecar"
    (daemon_user / rel).parent.mkdir(parents=True)
    (daemon_user / rel).write_bytes(b"")  # the daemon, run by launchd as _sidecar, made its database here
    (tmp_path / "carol").mkdir()
    others = [("_sidecar", daemon_user), ("carol", tmp_path / "carol")]
    (warning,) = other_user_warnings(me / rel, default=me / rel, home=me, others=others)
    assert "_sidecar has one at" in warning and f"--db {daemon_user / rel}" in warning
    # Chosen explicitly (--db / DAM_DATABASE_PATH), or present for us: nothing to say.
    assert other_user_warnings(me / rel, default=None, home=me, others=others) == []
    (me / rel).parent.mkdir(parents=True)
    (me / rel).write_bytes(b"")
    assert other_user_warnings(me / rel, default=me / rel, home=me, others=others) == []


def test_database_owned_by_another_user_is_pointed_out(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite3"
    db.write_bytes(b"")
    me = os.geteuid()
    assert other_user_warnings(db, default=None, uid=me) == []
    (warning,) = other_user_warnings(db, default=None, uid=me + 4242)
    assert "belongs to" in warning and "run this command as that user" in warning
    # Our own default, present: nothing to say.
    assert other_user_warnings(db, default=db, home=tmp_path, uid=me) == []


def test_polling_uses_the_long_interval_not_every_second(tmp_path: Path) -> None:
    w = Watcher([str(tmp_path)], EventQueue(), polling=True, poll_interval=90.0)
    w.start()
    try:
        assert w._observer is not None and w._observer.timeout == 90.0  # type: ignore[attr-defined]
    finally:
        w.stop()


def test_log_file_is_reopened_after_rotation_moves_it(tmp_path: Path) -> None:
    import logging

    from sidecar_thumbs.logs import setup_logging

    logger = logging.getLogger("sidecar_thumbs")
    saved = logger.handlers[:], logger.level, logger.propagate
    log_file = tmp_path / "logs" / "sidecar-thumbs.log"
    try:
        setup_logging(logging.INFO, "text", log_file=str(log_file))
        logger.info("before rotation")
        log_file.rename(log_file.with_suffix(".log.0"))  # what newsyslog does, without signalling anyone
        logger.info("after rotation")
    finally:
        for h in logger.handlers:
            h.close()
        logger.handlers[:], logger.level, logger.propagate = saved
    assert "before rotation" in log_file.with_suffix(".log.0").read_text()
    assert "after rotation" in log_file.read_text() and "before" not in log_file.read_text()


def test_renderer_description_names_the_kernel_and_why_numpy() -> None:
    from sidecar_thumbs.render import resolve_kernel

    assert describe_kernel("numpy") == "numpy (asked for)"
    auto = describe_kernel("auto")
    if resolve_kernel("auto") == "numba":
        assert auto.startswith("numba ")  # with its version, so `status` tells 0.62 from 0.68
    else:
        assert auto.startswith("numpy (numba is not installed")


@pytest.mark.integration
def test_watch_logs_to_the_log_file_and_status_shows_renderer_and_roots(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(REPO / "examples" / "models" / "gear.stl", lib / "gear.stl")
    db, log_file = tmp_path / "s.sqlite3", tmp_path / "logs" / "daemon.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "SIDECAR_THUMBS_LOG_FILE": str(log_file)}
    args = [sys.executable, "-m", "sidecar_thumbs", "watch", str(lib), "--once", "--workers", "1", "--db", str(db)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert r.returncode == 0, r.stderr
    logged = log_file.read_text()
    assert "renderer: " in logged and "start-up scan: 1 models" in logged
    assert "start-up scan" not in r.stderr  # the log went to the file, not to launchd's descriptor

    from click.testing import CliRunner

    from sidecar_thumbs.cli.main import cli
    from sidecar_thumbs.reports.status import current_user

    roots = f"{lib}{os.pathsep}{tmp_path / 'unmounted'}"
    out = CliRunner().invoke(cli, ["status", "--db", str(db)], env={"SIDECAR_THUMBS_ROOTS": roots}).output
    assert f"renderer  {describe_kernel('auto')} (as the daemon last started)" in out
    me = current_user()
    assert f"roots     {lib}: online\n" in out  # one line per root: the daemon's record …
    unmounted = tmp_path / "unmounted"  # … and a configured root no daemon has seen, as this user sees it
    assert f"          {unmounted}: no daemon has recorded it; from here (as {me}): does not exist\n" in out
    assert "root      " not in out  # no second record of the same roots
