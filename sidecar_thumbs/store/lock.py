"""The single-instance lock: one daemon per database.

An exclusive ``flock`` on ``<database>.lock``, held for the daemon's life. The kernel drops it when the
process dies (even by SIGKILL), so a crash never leaves a stale lock to clean up by hand. The file
also says who holds it (pid, since when) for ``status`` and for the refusal message.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sidecar_thumbs.errors import DatabaseError, LockedError

__all__ = ["DaemonLock", "LockHolder", "lock_path_for", "read_lock_holder"]


@dataclass(frozen=True)
class LockHolder:
    pid: int
    since: float  # unix time the lock was taken
    host: str
    role: str = "daemon"  # "daemon" (watch), "scan" or "verify" (--fix)


def lock_path_for(database: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(database)}.lock")


def _read_info(fd: int) -> LockHolder | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096) or b"{}")
        return LockHolder(
            int(data["pid"]), float(data["since"]), str(data.get("host", "")), str(data.get("role", "daemon"))
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class DaemonLock:
    """Take with :meth:`acquire` (raises :class:`LockedError` if another coordinator holds it)."""

    def __init__(self, database: str | os.PathLike[str], role: str = "daemon") -> None:
        self.path = lock_path_for(database)
        self.role = role
        self._fd: int | None = None
        self.holder: LockHolder | None = None  # who held it when acquire() was refused

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DatabaseError(f"cannot open the lock file {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.holder = _read_info(fd)
            os.close(fd)
            who, what = "", "daemon"
            if holder is not None:
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.since))
                who, what = f" (pid {holder.pid}, since {since})", holder.role
            raise LockedError(
                f"another sidecar-thumbs {what} is already running on this database{who}; "
                f"stop it first (lock: {self.path})"
            ) from None
        info = {"pid": os.getpid(), "since": time.time(), "host": os.uname().nodename, "role": self.role}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            # Leave the file (removing it would race with a daemon starting now); just unlock.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_lock_holder(database: str | os.PathLike[str]) -> LockHolder | None:
    """Who holds the daemon lock on ``database`` right now, or None when no daemon runs."""
    path = lock_path_for(database)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_info(fd) or LockHolder(0, 0.0, "")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
