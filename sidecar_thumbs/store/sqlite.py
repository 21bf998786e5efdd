"""A SQLite connection that follows our rules for a database shared between processes.

* WAL, ``synchronous=NORMAL``, ``busy_timeout`` on every connection, ``journal_size_limit`` 64 MiB,
  ``foreign_keys=ON``; the schema is upgraded on open (:mod:`.migrations`).
* Autocommit mode (``isolation_level=None``) and every read fetches its rows at once, so no read
  transaction stays open between calls — open readers keep the WAL from being checkpointed.
* Writes are short ``BEGIN IMMEDIATE`` transactions: a deferred read→write upgrade fails with
  ``SQLITE_BUSY_SNAPSHOT`` without waiting for the busy handler. A write that still finds the database
  locked after ``busy_timeout`` is retried as a whole a few times, then raises :class:`DatabaseError`,
  so a result is never dropped silently.

Not thread-safe: one thread at a time.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Self, TypedDict, TypeVar

from sidecar_thumbs.errors import DatabaseError, DatabaseLockedError
from sidecar_thumbs.store.migrations import SCHEMA_VERSION, apply_migrations, check_version

__all__ = ["MIN_SQLITE", "SQLiteDB", "check_sqlite_library", "one_line"]

T = TypeVar("T")

# After busy_timeout expires, a write is retried this many more times, sleeping between tries.
_RETRY_SLEEPS_S = (0.05, 0.1, 0.2, 0.4)
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_NOTADB = 5, 6, 26


def _is_busy(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (_SQLITE_BUSY, _SQLITE_LOCKED)


def one_line(text: str, limit: int = 500) -> str:
    """``text`` with all whitespace runs collapsed to one space, cut to ``limit`` characters."""
    return " ".join(text.split())[:limit]


def _wal_without_writer(path: Path, fd: int) -> bool:
    """Whether ``path`` (open as ``fd``) is a WAL-mode database (header bytes 18-19 are 2) with no
    -wal file beside it."""
    if os.path.lexists(f"{path}-wal"):
        return False
    try:
        header = os.pread(fd, 20, 0)
    except OSError:
        return False
    return len(header) == 20 and header[18] == 2 and header[19] == 2


# Claiming work uses UPDATE ... RETURNING (SQLite 3.35, 2021) and json_each (JSON1: built in since 3.38,
# an option before). Python builds linked against an older system library exist (old Linux distributions,
# some custom macOS builds): better one clear line at start than a syntax error at the first claim.
MIN_SQLITE = (3, 35, 0)


@cache
def check_sqlite_library() -> None:
    """Raise :class:`DatabaseError` when the SQLite library Python uses lacks what the queries need."""
    version = sqlite3.sqlite_version
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        need = ".".join(map(str, MIN_SQLITE))
        raise DatabaseError(
            f"SQLite {version} is too old (needs {need} or newer for RETURNING): use a Python linked against "
            "a newer SQLite (python.org or Homebrew Python on macOS)"
        )
    try:
        with contextlib.closing(sqlite3.connect(":memory:")) as conn:
            conn.execute("SELECT value FROM json_each('[1]')").fetchall()
    except sqlite3.Error as exc:
        raise DatabaseError(
            f"SQLite {version} has no JSON functions (json_each: {exc}): use a Python whose SQLite has JSON1"
        ) from exc


class OpenOptions(TypedDict, total=False):
    """How to open a database (the keyword arguments of :class:`SQLiteDB` that its subclasses pass on)."""

    busy_timeout_ms: int
    readonly: bool
    create: bool


class SQLiteDB:
    """An open database file with our connection rules; :class:`~.state.StateDB` builds on it.

    Args:
        path: Database file. Its folder is created when missing (unless ``readonly``/``create=False``).
        busy_timeout_ms: How long one statement waits for another process's lock.
        readonly: Open with ``mode=ro`` (for ``status`` and ``verify``); writes then fail.
        create: When False, a missing file is an error instead of a new empty database.

    Raises:
        DatabaseError: The file is missing (``create=False``), not a SQLite database, written by a newer
            sidecar-thumbs, or cannot be opened or upgraded.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 5000,
        readonly: bool = False,
        create: bool = True,
        schema_in_meta: bool = False,
    ) -> None:
        check_sqlite_library()
        self.path = Path(path)
        self.schema_in_meta = schema_in_meta
        self.readonly = readonly
        self.busy_timeout_ms = busy_timeout_ms
        self.busy_retries = 0  # writes that had to be retried after busy_timeout (for logs/status)
        if self.path.is_dir():
            raise DatabaseError(f"state database {self.path} is a folder; --db/DAM_DATABASE_PATH must name a file")
        if readonly or not create:
            if not self.path.is_file():
                raise DatabaseError(f"state database {self.path} does not exist")
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"cannot create folder for state database {self.path}: {exc}") from exc
        mode = "ro" if readonly else ("rwc" if create else "rw")
        uri = f"file:{urllib.parse.quote(os.fspath(self.path.absolute()))}?mode={mode}"
        probe: int | None = None
        if readonly:
            # The probe descriptor (see below) is opened first here: it also reads the header.
            try:
                probe = os.open(self.path, os.O_RDONLY)
            except OSError as exc:
                raise DatabaseError(f"cannot read state database {self.path}: {exc.strerror}") from None
            if _wal_without_writer(self.path, probe):
                # A reader must not make files: in WAL mode SQLite would create the -wal and -shm files
                # (owned by whoever runs `status`, which can lock the service's user out of its own
                # database), and fails where the folder is not writable. With no -wal file no writer is
                # connected (a WAL writer keeps one open), so the file alone is the whole database.
                uri += "&immutable=1"
        try:
            self._conn = self._connect(uri)
            try:
                self._configure()
                # One read-only descriptor for the connection's whole life, to check the file under it
                # (check_file). Never open and close the database file again while connected: closing
                # any descriptor of a file drops every POSIX lock this process holds on it, SQLite's
                # included — another process could then write at the same time (sqlite.org/howtocorrupt).
                self._probe_fd = probe if probe is not None else os.open(self.path, os.O_RDONLY)
            except BaseException:
                self._conn.close()
                raise
        except BaseException:
            if probe is not None:
                os.close(probe)
            raise

    def _connect(self, uri: str) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout_ms / 1000
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _configure(self) -> None:
        try:
            c = self._conn
            c.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms):d}")
            c.execute("PRAGMA foreign_keys = ON")
            version = check_version(c, self.path, in_meta=self.schema_in_meta)
            if self.readonly:
                if version != SCHEMA_VERSION:
                    raise DatabaseError(
                        f"state database {self.path} has schema {version}, this version needs "
                        f"{SCHEMA_VERSION}: run a writing command (e.g. scan) once to upgrade it"
                    )
                return
            c.execute("PRAGMA journal_mode = WAL").fetchone()
            c.execute("PRAGMA synchronous = NORMAL")
            c.execute(f"PRAGMA journal_size_limit = {64 * 1024 * 1024:d}")
            if version != SCHEMA_VERSION:
                self._write(lambda conn: apply_migrations(conn, self.path, in_meta=self.schema_in_meta))
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> DatabaseError:
        if getattr(exc, "sqlite_errorcode", 0) == _SQLITE_NOTADB:
            return DatabaseError(f"{self.path} is not a SQLite database")
        return DatabaseError(f"state database {self.path}: {one_line(str(exc))}")

    def _locked_error(self, tries: int) -> DatabaseError:
        return DatabaseLockedError(
            f"state database {self.path} stayed locked by another process ({tries} tries of "
            f"{self.busy_timeout_ms} ms); is a long write holding it?"
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    def check_file(self, *, deep: bool = False) -> None:
        """Raise :class:`DatabaseError` when the file under this connection was removed, replaced or
        overwritten. A long-running daemon would otherwise go on writing into an unlinked file (its
        results lost) or over garbage. ``deep`` also runs SQLite's ``quick_check``.
        """
        try:
            st = os.stat(self.path)
            ours = os.fstat(self._probe_fd)
            header = os.pread(self._probe_fd, 16, 0)
        except FileNotFoundError:
            raise DatabaseError(f"state database {self.path} was removed while in use") from None
        except OSError as exc:
            raise DatabaseError(f"state database {self.path} cannot be read: {exc.strerror}") from None
        if (st.st_dev, st.st_ino) != (ours.st_dev, ours.st_ino):
            raise DatabaseError(f"state database {self.path} was replaced by another file while in use")
        if header != b"SQLite format 3\x00":
            raise DatabaseError(f"state database {self.path} was overwritten: it is no longer a SQLite database")
        if deep:
            result = self._read("PRAGMA quick_check")
            if not result or result[0][0] != "ok":
                detail = one_line(str(result[0][0])) if result else "no answer"
                raise DatabaseError(f"state database {self.path} is damaged: {detail}")

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()
        fd, self._probe_fd = getattr(self, "_probe_fd", -1), -1
        if fd >= 0:
            os.close(fd)  # after SQLite let go of its locks

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transactions ------------------------------------------------------------------------------

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, retried after busy_timeout with small sleeps."""
        for tries, sleep_s in enumerate((*_RETRY_SLEEPS_S, None), start=1):
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.Error as exc:
                self._wait_or_raise(exc, tries, sleep_s)

    def _wait_or_raise(self, exc: sqlite3.Error, tries: int, sleep_s: float | None) -> None:
        """After attempt ``tries`` failed with ``exc``: wait ``sleep_s`` before the next one when the
        database was busy; raise when it was not busy, or busy past the last retry (``sleep_s`` None)."""
        if not _is_busy(exc):
            raise self._error(exc) from exc
        if sleep_s is None:
            raise self._locked_error(tries) from exc
        self.busy_retries += 1
        time.sleep(sleep_s)

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction: ``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error).

        Taking the write lock is retried when another process holds it; the body runs once, so keep
        it short and free of waits.

        Yields:
            The connection, inside the transaction.

        Raises:
            DatabaseError: The lock never came free, or SQLite failed.
        """
        self._begin()
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._error(exc) from exc
        except BaseException:
            self._rollback()
            raise

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in a write transaction; retry the whole transaction when it meets a lock."""
        for tries, sleep_s in enumerate((*_RETRY_SLEEPS_S, None), start=1):
            self._begin()
            try:
                result = work(self._conn)
                self._conn.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                self._rollback()
                self._wait_or_raise(exc, tries, sleep_s)
            except BaseException:
                self._rollback()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, sql: str, params: Sequence[object] | dict[str, object] = ()) -> list[tuple]:  # type: ignore[type-arg]
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    # -- reads -------------------------------------------------------------------------------------
    def checkpoint(self) -> bool:
        """Copy the WAL back into the database and truncate it, without waiting for anyone.

        A long reader (an asset manager) would make TRUNCATE wait busy_timeout; with the timeout at
        0 SQLite instead copies what it can, like PASSIVE, and we try again next period.

        Returns:
            True when the WAL was fully checkpointed and truncated.
        """
        if self.readonly:
            return False
        try:
            self._conn.execute("PRAGMA busy_timeout = 0")
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return bool(busy == 0)
        except sqlite3.Error as exc:
            if not _is_busy(exc):
                raise self._error(exc) from exc
            return False
        finally:
            self._conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms):d}")
