"""The daemon with a real observer on real folders, in a real process (and in-process where the test
must reach inside, e.g. to stop only the observer)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from sidecar_thumbs.daemon.loop import Daemon, DaemonConfig
from sidecar_thumbs.files.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.lock import DaemonLock, read_lock_holder
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus
from sidecar_thumbs.work.executors.local import InlineExecutor

pytestmark = pytest.mark.integration  # every test here runs `sidecar-thumbs watch` in its own process

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "models"
SETTLE = 0.5


def wait_for(cond: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def binary_stl(path: Path, n: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    rec = np.zeros(n, dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    centres = rng.uniform(-20, 20, (n, 1, 3)).astype(np.float32)
    rec["v"] = centres + rng.normal(0, 0.5, (n, 3, 3)).astype(np.float32)
    data = b"binary".ljust(80, b"\0") + np.uint32(n).tobytes() + rec.tobytes()
    return data


class DaemonProcess:
    """``sidecar-thumbs watch`` in its own process, logging at debug level to a file."""

    def __init__(self, root: Path, db: Path, *extra: str) -> None:
        self.log_path = db.with_suffix(f".{int(time.monotonic() * 1000)}.log")
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        args = [
            sys.executable,
            "-m",
            "sidecar_thumbs",
            "-vv",
            "watch",
            str(root),
            "--db",
            str(db),
            "--workers",
            "1",
            "--settle",
            str(SETTLE),
            *extra,
        ]
        self.proc = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=db.parent,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def renders_of(self, path: Path) -> int:
        return self.log().count(f"rendered: {path} (")

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        wait_for(lambda: text in self.log() or self.proc.poll() is not None, timeout, repr(text))
        assert text in self.log(), self.log()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    d = tmp_path / "lib"
    (d / "sub").mkdir(parents=True)
    return d


@pytest.fixture
def daemon(lib: Path, tmp_path: Path) -> Iterator[DaemonProcess]:
    d = DaemonProcess(lib, tmp_path / "state.sqlite3")
    d.wait_log("watching")
    yield d
    d.stop()


def row(tmp_path: Path, path: Path):  # type: ignore[no-untyped-def]
    with StateDB(tmp_path / "state.sqlite3", readonly=True) as db:
        return db.get(str(path))


def test_created_model_gets_a_sidecar_once(daemon: DaemonProcess, lib: Path) -> None:
    target = lib / "sub" / "gear.stl"
    shutil.copy(EXAMPLES / "gear.stl", target)
    wait_for(lambda: sidecar_path_for(target).exists(), what="sidecar")
    wait_for(lambda: daemon.renders_of(target) == 1, what="render logged")
    time.sleep(SETTLE * 3)
    assert daemon.renders_of(target) == 1


def test_modify_rerenders_and_touch_does_not(daemon: DaemonProcess, lib: Path, tmp_path: Path) -> None:
    target = lib / "part.stl"
    shutil.copy(EXAMPLES / "gear.stl", target)
    wait_for(lambda: daemon.renders_of(target) == 1, what="first render")
    first = read_sidecar(sidecar_path_for(target))
    # touch: same content, new mtime → hashed, not rendered
    t = time.time() + 10
    os.utime(target, (t, t))
    wait_for(
        lambda: (r := row(tmp_path, target)) is not None and r.mtime_ns == target.stat().st_mtime_ns,
        what="touch recorded",
    )
    time.sleep(SETTLE * 2)
    assert daemon.renders_of(target) == 1
    # real change → rendered again, from the new content
    shutil.copy(EXAMPLES / "parts" / "bracket.stl", target)
    wait_for(lambda: daemon.renders_of(target) == 2, what="second render")
    second = read_sidecar(sidecar_path_for(target))
    assert first is not None and second is not None and first.content_hash != second.content_hash


def test_delete_marks_missing_and_removes_only_our_sidecar(daemon: DaemonProcess, lib: Path, tmp_path: Path) -> None:
    ours, theirs = lib / "a.stl", lib / "b.stl"
    shutil.copy(EXAMPLES / "gear.stl", ours)
    wait_for(lambda: sidecar_path_for(ours).exists(), what="sidecar")
    foreign = sidecar_path_for(theirs)
    foreign.write_bytes(b"a file someone else made")  # not ours: must survive
    shutil.copy(EXAMPLES / "gear.stl", theirs)
    wait_for(lambda: "failed: " + str(theirs) in daemon.log(), what="refusal to overwrite")
    ours.unlink()
    theirs.unlink()
    wait_for(lambda: not sidecar_path_for(ours).exists(), timeout=SETTLE * 4 + 10, what="sidecar removed")
    assert foreign.read_bytes() == b"a file someone else made"
    r = row(tmp_path, ours)
    assert r is not None and r.status is ModelStatus.MISSING


def test_rename_moves_row_and_sidecar_without_rerender(daemon: DaemonProcess, lib: Path, tmp_path: Path) -> None:
    src, dest = lib / "old name.stl", lib / "sub" / "new name.stl"
    shutil.copy(EXAMPLES / "gear.stl", src)
    wait_for(lambda: daemon.renders_of(src) == 1, what="render")
    os.rename(src, dest)
    wait_for(lambda: sidecar_path_for(dest).exists(), what="sidecar moved")
    assert not sidecar_path_for(src).exists()
    time.sleep(SETTLE * 3)
    assert daemon.renders_of(dest) == 0
    r = row(tmp_path, dest)
    assert r is not None and r.status is ModelStatus.DONE and r.has_thumbnail


def test_rename_folder_moves_its_rows(daemon: DaemonProcess, lib: Path, tmp_path: Path) -> None:
    folder = lib / "batch"
    folder.mkdir()
    models = [folder / f"m{i}.stl" for i in range(3)]
    for m in models:
        shutil.copy(EXAMPLES / "parts" / "bracket.stl", m)
    wait_for(lambda: all(daemon.renders_of(m) == 1 for m in models), what="renders")
    os.rename(folder, lib / "renamed")
    moved = [lib / "renamed" / m.name for m in models]
    wait_for(
        lambda: all((r := row(tmp_path, m)) is not None and r.status is ModelStatus.DONE for m in moved),
        what="rows moved",
    )
    time.sleep(SETTLE * 3)
    assert all(daemon.renders_of(m) == 0 for m in moved)
    assert all(sidecar_path_for(m).exists() for m in moved)


def test_slow_chunked_copy_is_rendered_once_after_it_completes(daemon: DaemonProcess, lib: Path) -> None:
    data = binary_stl(lib / "x", 60_000)  # 3 MB
    target = lib / "big.stl"
    with open(target, "wb") as f:
        for i in range(0, len(data), 256 * 1024):
            f.write(data[i : i + 256 * 1024])
            f.flush()
            time.sleep(0.15)  # an SMB copy arriving in pieces: ~2 s, longer than the settle window
    wait_for(lambda: daemon.renders_of(target) == 1, what="render")
    time.sleep(SETTLE * 3)
    assert daemon.renders_of(target) == 1
    info = read_sidecar(sidecar_path_for(target))
    from sidecar_thumbs.files.fingerprint import hash_bytes

    assert info is not None and info.content_hash == hash_bytes(data)


def test_second_instance_is_refused(daemon: DaemonProcess, lib: Path, tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "sidecar_thumbs", "watch", str(lib), "--db", str(tmp_path / "state.sqlite3")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert r.returncode == 1
    assert "another sidecar-thumbs daemon is already running" in r.stderr
    assert f"pid {daemon.proc.pid}" in r.stderr
    holder = read_lock_holder(tmp_path / "state.sqlite3")
    assert holder is not None and holder.pid == daemon.proc.pid


def test_scan_while_the_daemon_runs_marks_work_for_it_instead_of_rendering(
    daemon: DaemonProcess, lib: Path, tmp_path: Path
) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "sidecar_thumbs", "scan", str(lib), "--db", str(tmp_path / "state.sqlite3"), "--json"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    import json

    summary = json.loads(r.stdout)
    assert summary["rendered"] == 0 and summary["interrupted"] is False
    # The daemon still holds its lock, and a scan refused to start a second coordinator.
    holder = read_lock_holder(tmp_path / "state.sqlite3")
    assert holder is not None and holder.pid == daemon.proc.pid and holder.role == "daemon"


def test_sigterm_mid_batch_then_restart_loses_nothing(lib: Path, tmp_path: Path) -> None:
    # More models than the pool keeps in flight (workers x 2 x 16-file chunks = 64 here): a stop finishes
    # what is in flight, so with fewer a fast machine renders them all before the SIGTERM lands.
    models = []
    for i in range(200):
        p = lib / f"part{i:03d}.stl"
        p.write_bytes(binary_stl(p, 10_000, seed=i))
        models.append(p)
    db = tmp_path / "state.sqlite3"
    d = DaemonProcess(lib, db)
    wait_for(lambda: sum(sidecar_path_for(m).exists() for m in models) >= 3, timeout=60, what="some renders")
    assert d.stop(signal.SIGTERM) == 0
    done_before = sum(sidecar_path_for(m).exists() for m in models)
    print(f"{done_before} of {len(models)} rendered before the stop")
    assert done_before < len(models), "stopped too late to test anything"
    assert not list(lib.rglob("*.tmp"))
    with StateDB(db, readonly=True) as s:
        assert s.counts()[ModelStatus.RENDERING] == 0  # nothing left claimed
    d2 = DaemonProcess(lib, db)
    wait_for(lambda: all(sidecar_path_for(m).exists() for m in models), timeout=120, what="all rendered")
    d2.stop()
    for m in models:
        info = read_sidecar(sidecar_path_for(m))
        assert info is not None and info.readable and info.ours
    with StateDB(db, readonly=True) as s:
        assert s.counts()[ModelStatus.DONE] == len(models)


def test_change_missed_by_the_watcher_is_caught_by_the_rescan(lib: Path, tmp_path: Path) -> None:
    target = lib / "quiet.stl"
    shutil.copy(EXAMPLES / "gear.stl", target)
    db = StateDB(tmp_path / "inproc.sqlite3")
    config = DaemonConfig(roots=(str(lib),), settle=SETTLE, sweep_interval=0.5, rescan_interval=1.0, durable=False)
    daemon = Daemon(config, db=db, make_executor=InlineExecutor, options=ThumbnailOptions())
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: sidecar_path_for(target).exists(), what="first render")
        first = read_sidecar(sidecar_path_for(target))
        assert daemon.watcher is not None
        daemon.watcher.stop()  # events stop arriving, as when FSEvents drops them
        shutil.copy(EXAMPLES / "parts" / "bracket.stl", target)
        wait_for(
            lambda: (
                (i := read_sidecar(sidecar_path_for(target))) is not None
                and first is not None
                and i.content_hash != first.content_hash
            ),
            what="rescan caught the change",
        )
    finally:
        daemon.request_stop()
        thread.join(30)
        db.close()


def test_once_mode_renders_everything_then_exits(lib: Path, tmp_path: Path) -> None:
    for name in ("gear.stl", "plate.3mf"):
        shutil.copy(EXAMPLES / name, lib / name)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sidecar_thumbs",
            "watch",
            str(lib),
            "--once",
            "--workers",
            "1",
            "--db",
            str(tmp_path / "s.sqlite3"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert r.returncode == 0, r.stderr
    assert all(sidecar_path_for(lib / n).exists() for n in ("gear.stl", "plate.3mf"))
    lock = DaemonLock(tmp_path / "s.sqlite3")
    lock.acquire()  # released on exit
    lock.release()
