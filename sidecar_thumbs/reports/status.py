"""What the daemon is doing, read from the database while it writes (WAL: readers never block it)."""

from __future__ import annotations

import errno
import grp
import json
import os
import pwd
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sidecar_thumbs.dam.mapping import DamMapping
from sidecar_thumbs.errors import DatabaseError
from sidecar_thumbs.store.lock import LockHolder, read_lock_holder
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus

__all__ = ["ROOT_ACCESS_KEY", "RootReport", "StatusReport", "collect_status", "root_access_problem"]


@dataclass(frozen=True)
class RootReport:
    """A daemon root's state as the daemon last recorded it (written when it changes)."""

    path: str
    online: bool
    reason: str | None
    since: float

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "online": self.online, "reason": self.reason, "since": self.since}


ROOT_ACCESS_KEY = "root_access"  # st_meta: JSON {root: problem or ""} as the daemon saw it at its last rescan

_FULL_DISK_ACCESS = (
    "permission denied listing it; on macOS grant Full Disk Access to the Python binary that runs "
    "the daemon (README: Full Disk Access)"
)


def root_access_problem(root: str) -> str | None:
    """Why ``root`` cannot be listed by this process, or None when it can (one ``scandir``, one entry).

    On macOS, a removable or network volume listed without Full Disk Access fails with EPERM (the sandbox
    says no) or EACCES: that is the usual reason a launchd job sees nothing although a terminal does.
    """
    try:
        with os.scandir(root) as it:
            next(it, None)
    except PermissionError:
        return _FULL_DISK_ACCESS
    except FileNotFoundError:
        return "not found (volume not mounted?)"
    except NotADirectoryError:
        return "not a folder"
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            return _FULL_DISK_ACCESS
        return f"cannot list it: {exc.strerror or exc}"
    return None


@dataclass
class StatusReport:
    database: str
    total: int
    counts: dict[str, int]
    backlog: int
    rate_1m: float  # renders per second over the last minute
    eta_s: float | None
    failures: list[dict[str, object]] = field(default_factory=list)
    daemon: LockHolder | None = None
    dam: dict[str, object] | None = None  # the asset manager's table, when attached
    roots: list[RootReport] = field(default_factory=list)
    renderer: str | None = None  # the kernel the daemon last started with
    # Per root: whether this process can list it, and what the daemon saw at its last rescan.
    access: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "database": self.database,
            "total": self.total,
            "counts": self.counts,
            "backlog": self.backlog,
            "rate_per_s_1m": round(self.rate_1m, 3),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            "recent_failures": self.failures,
            "daemon": None
            if self.daemon is None
            else {"pid": self.daemon.pid, "since": self.daemon.since, "host": self.daemon.host},
            "asset_manager": self.dam,
            "roots": [r.as_dict() for r in self.roots],
            "renderer": self.renderer,
            "access": self.access,
        }


def collect_status(
    database: str | os.PathLike[str],
    *,
    busy_timeout_ms: int = 5000,
    failures: int = 10,
    dam: DamMapping | None = None,
    roots: Sequence[str] = (),
) -> StatusReport:
    """Read the state of ``database`` (read-only; never creates it, nor its -wal/-shm files), and check that
    ``roots`` can be listed by this process.

    Raises:
        DatabaseError: it cannot be read; for a permission problem the message names the owner and
            what to do.
    """
    check_readable(database)
    dam_info: dict[str, object] | None = None
    with StateDB(database, busy_timeout_ms=busy_timeout_ms, readonly=True, dam=dam) as db:
        if dam is not None:
            total, unflagged = db.dam_counts()
            dam_info = {"table": dam.table, "models": total, "without_thumbnail": unflagged,
                        "flag_column": dam.flag_column, "path_column": dam.path_column}  # fmt: skip
        counts = {s.value: n for s, n in db.counts().items()}
        for s in ModelStatus:
            counts.setdefault(s.value, 0)
        root_reports = [RootReport(*r) for r in db.root_states()]
        backlog = db.backlog()
        rate = db.rate(60.0)
        fails: list[dict[str, object]] = [
            {"path": r.path, "error": r.error, "attempts": r.attempts, "transient": r.error_transient,
             "retry_at": r.next_attempt_at, "when": r.updated_at}
            for r in db.recent_failures(failures)
        ]  # fmt: skip
        renderer = db.get_meta("renderer")
        try:
            seen_by_daemon = json.loads(db.get_meta(ROOT_ACCESS_KEY) or "{}")
        except ValueError:
            seen_by_daemon = {}
    root_checks: list[dict[str, object]] = [
        {"path": r, "problem": root_access_problem(r), "daemon_problem": seen_by_daemon.get(r) or None} for r in roots
    ]
    eta = backlog / rate if rate > 0 and backlog else (0.0 if not backlog else None)
    return StatusReport(
        database=os.fspath(database),
        total=sum(counts.values()),
        counts=counts,
        backlog=backlog,
        rate_1m=rate,
        eta_s=eta,
        failures=fails,
        daemon=read_lock_holder(database),
        dam=dam_info,
        roots=root_reports,
        renderer=renderer,
        access=root_checks,
    )


def check_readable(database: str | os.PathLike[str]) -> None:
    """Raise a :class:`DatabaseError` that says whose file it is when we may not read ``database``.

    The daemon runs as the service's user; a person running ``status`` as themselves otherwise
    gets SQLite's bare "unable to open database file".
    """
    path = os.path.abspath(database)
    folder = os.path.dirname(path)
    if not os.access(folder, os.X_OK):
        raise DatabaseError(_denied(folder, "open the folder of the state database", "rx"))
    for p in (path, f"{path}-wal", f"{path}-shm"):
        if os.path.lexists(p) and not os.access(p, os.R_OK):
            raise DatabaseError(_denied(p, "read", "r"))


def _denied(path: str, what: str, bits: str) -> str:
    st = os.stat(path)
    owner, group = _user_name(st.st_uid), _group_name(st.st_gid)
    return (
        f"permission denied: cannot {what} {path}: it belongs to {owner}:{group} (mode {stat.filemode(st.st_mode)}) "
        f"and this is {_user_name(os.geteuid())}; run it as that user (sudo -u {owner} sidecar-thumbs status), "
        f"or let your user read it (e.g. add yourself to group {group} and chmod g+{bits} it)"
    )


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def format_since(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
