"""What the daemon is doing, read from the database while it writes (WAL: readers never block it)."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sidecar_thumbs.dam import DamMapping
from sidecar_thumbs.lock import LockHolder, read_lock_holder
from sidecar_thumbs.models import ModelStatus
from sidecar_thumbs.state import StateDB

__all__ = ["RootReport", "StatusReport", "collect_status", "root_access_problem"]

_FULL_DISK_ACCESS = (
    "permission denied listing it; on macOS grant Full Disk Access to the Python binary that runs "
    "the daemon (README: Full Disk Access)"
)


@dataclass(frozen=True)
class RootReport:
    """A daemon root's state as the daemon last recorded it (written when it changes)."""

    path: str
    online: bool
    reason: str | None
    since: float

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "online": self.online, "reason": self.reason, "since": self.since}


def root_access_problem(root: str) -> str | None:
    """Why ``root`` cannot be listed by this process, or None when it can (one ``scandir``, one entry).

    On macOS, a removable or network volume listed without Full Disk Access fails with EPERM (the sandbox
    says no) or EACCES: that is the usual reason a launchd job sees nothing although a terminal does, and
    why `status` run from a terminal says what *it* sees apart from what the daemon recorded.
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
    # Configured roots this process cannot list, with why (the daemon's own view is in `roots`).
    unreadable: dict[str, str] = field(default_factory=dict)

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
            "unreadable_here": self.unreadable,
        }


def collect_status(
    database: str | os.PathLike[str],
    *,
    busy_timeout_ms: int = 5000,
    failures: int = 10,
    dam: DamMapping | None = None,
    check_roots: Sequence[str] = (),
) -> StatusReport:
    """Read the state of ``database`` (read-only; never creates it), and check that this process can list
    ``check_roots`` (the configured roots)."""
    dam_info: dict[str, object] | None = None
    with StateDB(database, busy_timeout_ms=busy_timeout_ms, readonly=True, dam=dam) as db:
        if dam is not None:
            total, unflagged = db.dam_counts()
            dam_info = {"table": dam.table, "models": total, "without_thumbnail": unflagged,
                        "flag_column": dam.flag_column, "path_column": dam.path_column}  # fmt: skip
        counts = {s.value: n for s, n in db.counts().items()}
        for s in ModelStatus:
            counts.setdefault(s.value, 0)
        roots = [RootReport(*r) for r in db.root_states()]
        backlog = db.backlog()
        rate = db.rate(60.0)
        fails: list[dict[str, object]] = [
            {"path": r.path, "error": r.error, "attempts": r.attempts, "transient": r.error_transient,
             "retry_at": r.next_attempt_at, "when": r.updated_at}
            for r in db.recent_failures(failures)
        ]  # fmt: skip
        renderer = db.get_meta("renderer")
    unreadable = {r: why for r in check_roots if (why := root_access_problem(r)) is not None}
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
        roots=roots,
        renderer=renderer,
        unreadable=unreadable,
    )


def format_since(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
