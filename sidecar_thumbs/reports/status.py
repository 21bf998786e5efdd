"""What the daemon is doing, read from the database while it writes (WAL: readers never block it)."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sidecar_thumbs.dam.mapping import DamMapping
from sidecar_thumbs.errors import DatabaseError
from sidecar_thumbs.files.roots import canonical_roots, check_root
from sidecar_thumbs.store.lock import LockHolder, read_lock_holder
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus

__all__ = ["RootReport", "StatusReport", "collect_status", "current_user", "format_since"]


@dataclass(frozen=True)
class RootReport:
    """A root as the daemon last recorded it (written when its state changes), and as this process sees it.

    Both sides follow one rule (:func:`~sidecar_thumbs.files.roots.check_root`): a root the daemon cannot
    list — permission denied; on macOS a launchd job without Full Disk Access — is offline with that reason.
    This process may see it otherwise: Terminal has its own Full Disk Access grant, another user other rights.

    Attributes:
        online: The daemon's record; None when no daemon has recorded this root (a configured root only).
        reason: Why the daemon holds it offline.
        since: When the daemon's record last changed state.
        online_here: Whether this process (the user running ``status``) can list it now.
        reason_here: Why not.
    """

    path: str
    online: bool | None
    reason: str | None
    since: float | None
    online_here: bool
    reason_here: str | None

    @property
    def seen_otherwise_here(self) -> bool:
        """Whether what this process sees is worth a word beside the daemon's record."""
        if self.online is None or self.online != self.online_here:
            return True
        return not self.online and self.reason != self.reason_here

    def describe(self, user: str) -> str:
        """One line: ``PATH: online`` or ``PATH: offline since …: REASON``, and what ``user`` sees from here
        when that differs."""
        if self.online is None:
            said = "no daemon has recorded it"
        elif self.online:
            said = "online"
        else:
            said = f"offline since {format_since(self.since or 0.0)}: {self.reason}"
        if self.seen_otherwise_here:
            said += f"; from here (as {user}): {'readable' if self.online_here else self.reason_here}"
        return f"{self.path}: {said}"

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "online": self.online, "reason": self.reason, "since": self.since,
                "online_here": self.online_here, "reason_here": self.reason_here}  # fmt: skip


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
        }


def collect_status(
    database: str | os.PathLike[str],
    *,
    busy_timeout_ms: int = 5000,
    failures: int = 10,
    dam: DamMapping | None = None,
    roots: Sequence[str] = (),
) -> StatusReport:
    """Read the state of ``database`` (read-only; never creates it, nor its -wal/-shm files), and look at
    each root — those the daemon recorded, and ``roots`` (the configured ones) — from this process.

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
        recorded = {path: (online, reason, since) for path, online, reason, since in db.root_states()}
        all_roots = [*recorded, *(r for r in canonical_roots(roots) if r not in recorded)]
        known = {r: db.present_under(r) for r in all_roots}
        backlog = db.backlog()
        rate = db.rate(60.0)
        fails: list[dict[str, object]] = [
            {"path": r.path, "error": r.error, "attempts": r.attempts, "transient": r.error_transient,
             "retry_at": r.next_attempt_at, "when": r.updated_at}
            for r in db.recent_failures(failures)
        ]  # fmt: skip
        renderer = db.get_meta("renderer")
    root_reports = []
    for root in all_roots:
        here = check_root(root, known=known[root])  # the daemon's rule, with its count of models there
        online, reason, since = recorded.get(root, (None, None, None))
        root_reports.append(RootReport(root, online, reason, since, here.online, here.reason))
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
    )


def check_readable(database: str | os.PathLike[str]) -> None:
    """Raise a :class:`DatabaseError` that says whose file it is when we may not read ``database``.

    The daemon runs as the service's user; a person running ``status`` as themselves otherwise
    gets SQLite's bare "unable to open database file".
    """
    path = os.path.abspath(database)
    folder = os.path.dirname(path)
    if not os.path.lexists(folder):  # nothing scanned yet: there is no one to ask for permission
        raise DatabaseError(f"state database {path} does not exist")
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


def current_user() -> str:
    """The name of the user running this process (whose view of the roots ``status`` shows)."""
    return _user_name(os.geteuid())


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
