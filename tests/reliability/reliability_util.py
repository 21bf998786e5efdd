"""Helpers for the reliability suite: generated models, a daemon in its own process group, checks.

Everything is real: files in tmp_path, SQLite files, ``python -m sidecar_thumbs`` processes.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mesh_builders import binary_stl  # noqa: F401 (re-exported: the reliability tests import it from here)

from sidecar_thumbs.files.fingerprint import hash_bytes
from sidecar_thumbs.files.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus

REPO = Path(__file__).resolve().parents[2]


SMALL = ThumbnailOptions(render=RenderOptions(size=64))
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def wait_for(cond: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Daemon:
    """``python -m sidecar_thumbs watch`` in a new session (its own process group), log to a file."""

    def __init__(self, root: Path, db: Path, *extra: str, workers: int = 2, log: Path | None = None) -> None:
        self.log_path = log or db.with_name(f"daemon.{time.monotonic_ns()}.log")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()/kill()
        args = [sys.executable, "-m", "sidecar_thumbs", "-vv", "watch", str(root), "--db", str(db)]
        args += ["--workers", str(workers), "--size", "64", *extra]
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env=ENV, cwd=db.parent, start_new_session=True
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, *, group: bool) -> None:
        """SIGKILL the coordinator alone (workers orphaned) or the whole process group."""
        with _suppress_lookup():
            if group:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.kill()
        self.proc.wait(30)
        self._log.close()

    def wait(self, timeout: float = 120.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def reap_group(self) -> None:
        """Kill anything left in the process group (orphaned workers), so no test leaks processes."""
        with _suppress_lookup():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()


class _suppress_lookup:  # used like contextlib.suppress
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> bool:
        return exc_type is not None and issubclass(exc_type, ProcessLookupError)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def integrity_ok(db: Path) -> str:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def pngs(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.png")]


def check_library(root: Path, db: Path, models: Iterable[Path]) -> dict[str, int]:
    """The end state every fault test wants: each model has a valid, fresh sidecar of ours or a
    recorded failure with a one-line reason; every PNG decodes; no temp files; the DB is intact.

    Returns counts {"fresh": n, "failed": n}.
    """
    problems: list[str] = []
    counts = {"fresh": 0, "failed": 0}
    with StateDB(db, readonly=True) as state:
        for m in models:
            row = state.get(str(m))
            info = read_sidecar(sidecar_path_for(m))
            digest = hash_bytes(m.read_bytes())
            if info is not None and info.ours and info.readable and info.content_hash == digest:
                counts["fresh"] += 1
                if row is None or row.status is not ModelStatus.DONE or row.thumb_hash != digest:
                    problems.append(f"{m}: fresh sidecar but row is {row}")
            elif row is not None and row.status is ModelStatus.FAILED and row.error and "\n" not in row.error:
                counts["failed"] += 1
            else:
                problems.append(f"{m}: no fresh sidecar ({info}) and no recorded failure ({row})")
    for png in pngs(root):
        info = read_sidecar(png)
        if info is None or not info.readable:
            problems.append(f"{png}: partial or corrupt PNG")
    problems += [f"stray temp file {t}" for t in temp_files(root)]
    ok = integrity_ok(db)
    if ok != "ok":
        problems.append(f"integrity_check: {ok}")
    assert not problems, "\n".join(problems[:30])
    return counts


def bind_socket(path: Path) -> socket.socket:
    """A listening-capable UNIX socket at ``path``. Bound by its bare name from inside its folder:
    macOS allows only 104 bytes in a socket address, less than a pytest tmp_path there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    here = os.getcwd()
    os.chdir(path.parent)
    try:
        sock.bind(path.name)
    finally:
        os.chdir(here)
    return sock
