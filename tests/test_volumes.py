"""Volumes that come and go under the real commands and a real daemon process (issue #11).

A volume going away is its folder renamed away; an unmounted mount point is an empty folder in its place.
The daemon runs as ``python -m sidecar_thumbs watch`` with a real observer; the rescan interval is an hour,
so what happens after a root returns comes from the watcher and the root's own rescan, never from the
periodic one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sidecar_thumbs.cli.main import cli
from sidecar_thumbs.daemon.events import EventQueue
from sidecar_thumbs.daemon.watcher import Watcher
from sidecar_thumbs.files.sidecar import sidecar_path_for
from sidecar_thumbs.reports.status import collect_status
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus
from tests.test_daemon import EXAMPLES, REPO, SETTLE, DaemonProcess, wait_for

MODELS = ("gear.stl", "parts/bracket.stl", "parts/gear copy.stl")
NO_RESCAN = ("--rescan-interval", "3600")
LOADED = 60.0  # seconds a log line may take on a loaded 2-core machine (the numba warm-up shares it)


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    d = tmp_path / "lib"
    (d / "parts").mkdir(parents=True)
    shutil.copy(EXAMPLES / "gear.stl", d / MODELS[0])
    shutil.copy(EXAMPLES / "parts" / "bracket.stl", d / MODELS[1])
    shutil.copy(EXAMPLES / "gear.stl", d / MODELS[2])
    return d


def rows(db: Path) -> dict[str, ModelStatus]:
    with StateDB(db, readonly=True) as s:
        return {p: r.status for p, r in s.rows_under().items()}


# -- one-off commands: exit 1 naming the root --------------------------------------------------------


@pytest.mark.parametrize("command", [["scan"], ["verify"], ["clean"], ["gallery"], ["watch", "--once"]])
def test_one_off_command_on_a_misspelt_root_exits_1_naming_it(tmp_path: Path, command: list[str]) -> None:
    root = tmp_path / "3D-Modles"
    StateDB(tmp_path / "s.sqlite3").close()
    args = [*command, str(root)]
    if command[0] != "clean":
        args += ["--db", str(tmp_path / "s.sqlite3")]
    if command[0] == "gallery":
        args += ["-o", str(tmp_path / "g.html")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert f"root {root} offline: does not exist; nothing was marked missing" in result.stderr


def test_scan_of_an_empty_mount_point_exits_1_and_override_marks_them_missing(tmp_path: Path, lib: Path) -> None:
    db = tmp_path / "s.sqlite3"
    invoke = CliRunner().invoke
    assert invoke(cli, ["scan", str(lib), "--db", str(db), "--workers", "0"]).exit_code == 0
    lib.rename(tmp_path / "away")
    lib.mkdir()
    result = invoke(cli, ["scan", str(lib), "--db", str(db), "--workers", "0"])
    assert result.exit_code == 1
    assert "is an empty folder where a volume should be mounted" in result.stderr
    assert "--allow-mass-missing" in result.stderr
    assert set(rows(db).values()) == {ModelStatus.DONE}
    # The user says the library really was emptied.
    result = invoke(cli, ["scan", str(lib), "--db", str(db), "--workers", "0", "--allow-mass-missing"])
    assert result.exit_code == 0, result.stderr
    assert set(rows(db).values()) == {ModelStatus.MISSING}


# -- the watcher ------------------------------------------------------------------------------------


def test_watch_of_a_root_that_vanished_is_restarted_when_it_is_back(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    root.mkdir()
    queue = EventQueue()
    watcher = Watcher([str(root)], queue)
    watcher.start()
    try:
        root.rmdir()  # inotify: IN_DELETE_SELF, then IN_IGNORED; watchdog stops the emitter
        wait_for(lambda: not watcher.alive(), timeout=10, what="the watch to die with its folder")
        root.mkdir()
        assert watcher.ensure_alive() == [str(root)]
        queue.drain()
        shutil.copy(EXAMPLES / "gear.stl", root / "new.stl")
        wait_for(lambda: any(e.path == str(root / "new.stl") for e in queue.drain()), timeout=10, what="event")
    finally:
        watcher.stop()


# -- the daemon ---------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("stand_in", "watcher"),
    [("renamed away", "--no-polling"), ("empty mount point", "--no-polling"), ("empty mount point", "--polling")],
)
def test_daemon_waits_for_a_volume_that_goes_and_comes_back(
    tmp_path: Path, lib: Path, stand_in: str, watcher: str
) -> None:
    # Polling sees the empty folder as every file deleted at once: the deletes must not be believed.
    db = tmp_path / "state.sqlite3"
    polling = ("--poll-interval", "1") if watcher == "--polling" else ()
    d = DaemonProcess(lib, db, watcher, *polling, *NO_RESCAN)
    try:
        wait_for(lambda: all(d.renders_of(lib / m) == 1 for m in MODELS), timeout=120, what="first renders")
        lib.rename(tmp_path / "away")
        if stand_in == "empty mount point":
            lib.mkdir()
        reason = "does not exist" if stand_in == "renamed away" else "is an empty folder where a volume should be"
        d.wait_log(f"root {lib} offline: {reason}", timeout=LOADED)
        report = collect_status(db)
        assert [(r.path, r.online) for r in report.roots] == [(str(lib), False)]
        assert report.roots[0].since <= time.time()
        status = subprocess.run(
            [sys.executable, "-m", "sidecar_thumbs", "status", "--db", str(db)],
            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        assert f"{lib}: offline since " in status.stdout, status.stdout + status.stderr
        time.sleep(2.5)  # a few sweeps with the volume away
        assert set(rows(db).values()) == {ModelStatus.DONE}
        if stand_in == "empty mount point":
            lib.rmdir()
        (tmp_path / "away").rename(lib)
        t0 = time.monotonic()
        d.wait_log(f"root {lib} back online", timeout=LOADED)
        reattach_s = time.monotonic() - t0
        d.wait_log(f"rescan of {lib}", timeout=LOADED)
        shutil.copy(EXAMPLES / "gear.stl", lib / "parts" / "after.stl")  # seen by the re-attached watcher
        wait_for(lambda: d.renders_of(lib / "parts" / "after.stl") == 1, timeout=60, what="render from the event")
        time.sleep(SETTLE * 2)
        log = d.log()
        assert all(d.renders_of(lib / m) == 1 for m in MODELS), "models rendered again on return"
        assert log.count(f"root {lib} offline") == 1 and log.count(f"root {lib} back online") == 1
        assert all(sidecar_path_for(lib / m).exists() for m in MODELS)
        assert set(rows(db).values()) == {ModelStatus.DONE}
        assert collect_status(db).roots[0].online
        assert reattach_s < 20, f"re-attached after {reattach_s:.1f} s"  # 1.3 s measured; a sweep is 2 s
        print(f"re-attached {reattach_s:.2f} s after the root returned; 0 renders on return")
    finally:
        assert d.stop() == 0


@pytest.mark.integration
def test_daemon_started_before_its_root_exists_watches_it_when_it_appears(tmp_path: Path) -> None:
    root = tmp_path / "later"
    d = DaemonProcess(root, tmp_path / "state.sqlite3", *NO_RESCAN)
    try:
        d.wait_log(f"root {root} offline: does not exist", timeout=LOADED)
        d.wait_log("watching nothing yet", timeout=LOADED)
        root.mkdir()
        d.wait_log(f"root {root} back online", timeout=LOADED)
        d.wait_log(f"rescan of {root}", timeout=LOADED)
        target = root / "new.stl"
        shutil.copy(EXAMPLES / "gear.stl", target)
        wait_for(lambda: sidecar_path_for(target).exists(), timeout=60, what="render from the event")
        # The sidecar is written before the render is logged: wait for the line too.
        wait_for(lambda: d.renders_of(target) >= 1, timeout=10, what="the render's log line")
        assert d.renders_of(target) == 1
        assert d.proc.poll() is None
    finally:
        assert d.stop() == 0


@pytest.mark.integration
def test_daemon_given_a_root_twice_through_a_link_renders_a_new_file_once(tmp_path: Path, lib: Path) -> None:
    (tmp_path / "libl").symlink_to(lib)
    db = tmp_path / "state.sqlite3"
    d = DaemonProcess(lib, db, str(tmp_path / "libl"), *NO_RESCAN)
    try:
        wait_for(lambda: all(d.renders_of(lib / m) == 1 for m in MODELS), timeout=120, what="first renders")
        target = tmp_path / "libl" / "parts" / "new.stl"
        shutil.copy(EXAMPLES / "gear.stl", target)
        real = lib / "parts" / "new.stl"
        wait_for(lambda: d.renders_of(real) == 1, timeout=60, what="render")
        time.sleep(SETTLE * 3)
        assert d.renders_of(real) == 1 and d.renders_of(target) == 0
        assert sorted(rows(db)) == sorted(str(lib / m) for m in (*MODELS, "parts/new.stl"))
    finally:
        assert d.stop() == 0


def _mount_tmpfs(target: Path) -> None:
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(target)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); needs root in a sandbox that allows mounts")


@pytest.mark.integration
@pytest.mark.parametrize("away_s", [4.0, 0.0], ids=["unmounted for two sweeps", "remounted within a sweep"])
def test_daemon_survives_a_real_unmount_and_remount(tmp_path: Path, lib: Path, away_s: float) -> None:
    """A real volume: a tmpfs mounted at the root, unmounted (inotify: IN_UNMOUNT, IN_IGNORED) and mounted
    again with the same files. Remounted within a sweep, the root shows the same identity (st_dev, st_ino):
    only the watch that went blind tells, and it is re-attached."""
    vol = tmp_path / "vol"
    vol.mkdir()
    _mount_tmpfs(vol)
    db = tmp_path / "state.sqlite3"
    d = None
    try:
        shutil.copytree(lib, vol, dirs_exist_ok=True)
        d = DaemonProcess(vol, db, *NO_RESCAN)
        wait_for(lambda: all(d.renders_of(vol / m) == 1 for m in MODELS), timeout=120, what="first renders")
        saved = tmp_path / "saved"
        shutil.copytree(vol, saved)  # the volume's content, sidecars included, times kept
        subprocess.run(["umount", str(vol)], check=True)
        if away_s:
            d.wait_log(f"root {vol} offline: is an empty folder where a volume should be mounted", timeout=LOADED)
            time.sleep(away_s)
            assert set(rows(db).values()) == {ModelStatus.DONE}
        _mount_tmpfs(vol)
        shutil.copytree(saved, vol, dirs_exist_ok=True)
        back = f"root {vol} back online" if away_s else f"file watcher (InotifyObserver) of {vol} stopped"
        d.wait_log(back, timeout=LOADED)
        d.wait_log(f"rescan of {vol}", timeout=LOADED)
        target = vol / "parts" / "after.stl"
        shutil.copy(EXAMPLES / "gear.stl", target)
        wait_for(lambda: d.renders_of(target) == 1, timeout=60, what="render from the event")
        assert all(d.renders_of(vol / m) == 1 for m in MODELS), "models rendered again on return"
        assert set(rows(db).values()) == {ModelStatus.DONE}
    finally:
        code = d.stop() if d is not None else 0
        subprocess.run(["umount", "-l", str(vol)], check=False)
    assert code == 0
