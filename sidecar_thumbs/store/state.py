"""The SQLite state database: one row per model file, and the durable work queue.

One process (the coordinator) writes through :class:`StateDB`; others (``status``, ``verify``, an asset
manager) read at the same time. Connection rules (WAL, ``BEGIN IMMEDIATE``, busy retries, no read
transaction left open) live in :mod:`.sqlite`; paths are stored as described in :mod:`.dbpath`.

:class:`StateDB` is not thread-safe: use it from one thread at a time (the coordinator's loop).

The queue's writes are in :mod:`.queue`, the asset manager's table in :mod:`.damtable`, roots and meta in
:mod:`.roots`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path
from typing import Unpack

from sidecar_thumbs.dam.mapping import DamMapping
from sidecar_thumbs.errors import DatabaseError
from sidecar_thumbs.store.dbpath import path_from_db as _path_from_db
from sidecar_thumbs.store.dbpath import path_to_db as _path_to_db
from sidecar_thumbs.store.dbpath import under_ranges
from sidecar_thumbs.store.queue import RenderQueue
from sidecar_thumbs.store.roots import RootsAndMeta
from sidecar_thumbs.store.rows import _COLUMNS, _PLAN_COLUMNS, _STATUSES, _now, _roots_clause, _row
from sidecar_thumbs.store.sqlite import OpenOptions
from sidecar_thumbs.types import ModelRow, ModelStatus, PlanRow

__all__ = ["StateDB"]


class StateDB(RenderQueue, RootsAndMeta):
    """The state database of one installation (on local disk, never on the share).

    Opening creates or upgrades the schema; see :class:`~.sqlite.SQLiteDB` for the arguments
    (``path``, ``busy_timeout_ms``, ``readonly``, ``create``) and the errors opening can raise.
    Every write method is one short transaction.

    Attached to an asset manager's table (``dam``), the file is the asset manager's: it must exist
    already, our schema version lives in ``st_meta`` (its ``user_version`` is not ours), and every
    flag change of a model is written to its table in the same transaction as our own row.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, dam: DamMapping | None = None, **options: Unpack[OpenOptions]
    ) -> None:
        if dam is not None:
            if not Path(path).is_file():
                # The origin's worst bug was rendering into the wrong database: never create one here.
                raise DatabaseError(f"asset-manager database {path} does not exist (DAM_DATABASE_PATH)")
            options["create"] = False
        super().__init__(path, schema_in_meta=dam is not None, **options)
        self.dam = dam
        if dam is not None:
            try:
                dam.check(self._conn, self.path)
            except BaseException:
                self.close()
                raise

    def get(self, path: str) -> ModelRow | None:
        """The row for ``path``, or None."""
        rows = self._read(f"SELECT {_COLUMNS} FROM st_models WHERE path = ?", (_path_to_db(path),))
        return _row(rows[0]) if rows else None

    def rows_under(self, roots: Sequence[str] | None = None) -> dict[str, ModelRow]:
        """All rows at or under these folders (all rows when ``roots`` is None), keyed by path.

        ``/a/b`` matches ``/a/b`` itself and ``/a/b/…`` but never ``/a/bc``. Each root is one range
        query (on the path index unless the range holds most of the table), fetched in one go.
        """
        return {r.path: r for r in map(_row, self._rows_under(_COLUMNS, roots))}

    def plan_rows_under(self, roots: Sequence[str] | None = None) -> dict[str, PlanRow]:
        """Like :meth:`rows_under`, with only what planning a scan needs: a rescan of 34k unchanged
        files loads every row, and building full rows was a third of its time."""
        statuses = _STATUSES
        out: dict[str, PlanRow] = {}
        for path, size, mtime_ns, hash_, status, has_thumb, transient, next_at in self._rows_under(
            _PLAN_COLUMNS, roots
        ):
            p = _path_from_db(path)
            out[p] = PlanRow(p, size, mtime_ns, hash_, statuses[status], has_thumb == 1, transient == 1, next_at)
        return out

    def plan_rows_differing(
        self, roots: Sequence[str], walk: Sequence[tuple[str, int, int, int, bool | None]]
    ) -> tuple[dict[str, PlanRow], set[str]]:
        """Compare a walk with the rows under ``roots`` in SQL; only what differs comes back.

        A no-op rescan of 34k files used to load every row into Python (half its time). Here the walk goes
        into a temporary table joined with ``st_models``.

        Args:
            roots: the walked roots (disjoint, as :func:`~.files.roots.canonical_roots` gives them).
            walk: the walk's rows as it yields them, ``(path, size, mtime_ns, ctime_ns, listed)`` (the
                walk's own tuples: no per-row copy), each path once and under one of ``roots``.

        Returns:
            (rows that need a look, by path: those of walked paths that are not plainly unchanged —
            a moved stat, no hash, not done, no thumbnail, a sidecar the walk did not list — and every
            row under ``roots`` the walk did not see; the walked paths that have no row at all).
            A walked path in neither is unchanged, done, with its sidecar listed.
        """
        statuses = _STATUSES
        where, params = _roots_clause(roots)
        conn = self._conn
        try:
            # A plain rowid table: appending costs a third less than keeping a path index, and the join
            # probes st_models' own index. The walk's paths are unique (one row per path walked).
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS st_walk (path TEXT, size INTEGER, mtime_ns INTEGER,"
                " ctime_ns INTEGER, listed INTEGER)"
            )
            conn.execute("BEGIN")  # deferred: the temp table's writes take no lock on the database
            try:
                conn.execute("DELETE FROM st_walk")
                try:
                    # Nearly every path is stored verbatim; binding the walk's own tuples saves a copy of
                    # each. A path that is not valid UTF-8 cannot be bound: then every row is converted.
                    self._insert_walk(walk)
                except UnicodeEncodeError:
                    conn.execute("DELETE FROM st_walk")
                    self._insert_walk([(_path_to_db(row[0]), *row[1:]) for row in walk])
                cols = ", ".join(f"m.{c.strip()}" for c in _PLAN_COLUMNS.split(","))
                # One pass over the walk for the differing rows and the new paths (no row: m.path IS NULL).
                walked = conn.execute(
                    f"SELECT w.path, {cols} FROM st_walk w LEFT JOIN st_models m ON m.path = w.path WHERE"
                    " m.path IS NULL OR NOT (m.size IS w.size AND m.mtime_ns IS w.mtime_ns AND m.hash IS NOT NULL"
                    " AND m.status = 'done' AND m.has_thumbnail = 1 AND w.listed IS 1)"
                ).fetchall()
                new_count = sum(1 for w in walked if w[1] is None)
                # Rows under the roots the walk did not see: none when every row under them was walked,
                # which their count tells from the index alone (the walk's paths are unique and under the
                # roots, so the walked ones with a row number len(walk) - new). Otherwise look them up.
                under = conn.execute(f"SELECT count(*) FROM st_models WHERE {where}", params).fetchone()[0]
                unseen = []
                if under != len(walk) - new_count:
                    unseen = conn.execute(
                        f"SELECT {_PLAN_COLUMNS} FROM st_models m WHERE ({where})"
                        " AND m.path NOT IN (SELECT path FROM st_walk)",
                        params,
                    ).fetchall()
                conn.execute("DELETE FROM st_walk")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        new = {_path_from_db(w[0]) for w in walked if w[1] is None}
        differing = [w[1:] for w in walked if w[1] is not None]
        out: dict[str, PlanRow] = {}
        for path, size, mtime_ns, hash_, status, has_thumb, transient, next_at in (*differing, *unseen):
            p = _path_from_db(path)
            out[p] = PlanRow(p, size, mtime_ns, hash_, statuses[status], has_thumb == 1, transient == 1, next_at)
        return out, new

    def _insert_walk(self, walk: Sequence[tuple[str, int, int, int, bool | None]]) -> None:
        # Many rows per INSERT: a third less time than executemany's one statement per row (29 vs 46 ms for
        # 34k rows), within the connection's limit on parameters (999 in SQLite before 3.32).
        conn = self._conn
        per = max(1, min(500, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 5))
        for i in range(0, len(walk), per):
            chunk = walk[i : i + per]
            values = ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk))  # the same text for every full chunk: one plan
            conn.execute(f"INSERT INTO st_walk VALUES {values}", list(chain.from_iterable(chunk)))

    def _rows_under(self, columns: str, roots: Sequence[str] | None) -> list[tuple]:  # type: ignore[type-arg]
        if roots is None:
            return self._read(f"SELECT {columns} FROM st_models")
        out: list[tuple] = []  # type: ignore[type-arg]
        total = None
        for root in roots:
            where, params = under_ranges(root)
            # The index walk visits rows in path order, i.e. all over the table once inserts and
            # moves have scattered them: for most of the table a plain scan is up to 2.5x faster
            # (measured on 34k rows). Counting the range first costs only a covering-index walk.
            total = total if total is not None else self._read("SELECT count(*) FROM st_models")[0][0]
            in_range = self._count_where(where, params)
            source = "st_models NOT INDEXED" if in_range * 3 > total else "st_models"
            out.extend(self._read(f"SELECT {columns} FROM {source} WHERE {where}", params))
        return out

    def done_since(self, since: float, roots: Sequence[str]) -> list[ModelRow]:
        """Rows under ``roots`` given a sidecar at or after ``since`` (epoch seconds): the crash check."""
        where, params = _roots_clause(roots)
        sql = (
            f"SELECT {_COLUMNS} FROM st_models WHERE status = 'done' AND has_thumbnail = 1"
            f" AND rendered_at >= ? AND ({where})"
        )
        return [_row(t) for t in self._read(sql, [since, *params])]

    def counts(self) -> dict[ModelStatus, int]:
        """Number of rows in each status (every status present, zero when none)."""
        found = dict(self._read("SELECT status, count(*) FROM st_models GROUP BY status"))
        return {s: int(found.get(s.value, 0)) for s in ModelStatus}

    def counts_under(self, roots: Sequence[str]) -> dict[ModelStatus, int]:
        """Like :meth:`counts`, for the rows at or under ``roots`` (what one scan looked at)."""
        where, params = _roots_clause(roots)
        # Every status but done through the status index, done as the rest of the rows under the roots (counted
        # on the path index): grouping all rows by status reads every row, 10-15 ms on 34k of them.
        others = [s.value for s in ModelStatus if s is not ModelStatus.DONE]
        marks = ", ".join("?" * len(others))
        found = dict(
            self._read(
                f"SELECT status, count(*) FROM st_models WHERE status IN ({marks}) AND ({where}) GROUP BY status",
                [*others, *params],
            )
        )
        found[ModelStatus.DONE.value] = self._count_where(where, params) - sum(found.values())
        return {s: int(found.get(s.value, 0)) for s in ModelStatus}

    def rate(self, window_s: float = 60.0, now: float | None = None) -> float:
        """Renders per second recorded over the last ``window_s`` seconds."""
        now = _now(now)
        sql = "SELECT count(*) FROM st_models WHERE rendered_at > ? AND rendered_at <= ?"
        return int(self._read(sql, (now - window_s, now))[0][0]) / window_s

    def recent_failures(self, limit: int = 10) -> list[ModelRow]:
        """The latest failed rows, newest first."""
        sql = f"SELECT {_COLUMNS} FROM st_models WHERE status = 'failed' ORDER BY updated_at DESC, id DESC LIMIT ?"
        return [_row(t) for t in self._read(sql, (limit,))]

    def set_has_thumbnail(self, paths_flags: Sequence[tuple[str, bool]]) -> None:
        """Set ``has_thumbnail`` per path (``verify --fix``); status is left alone."""
        now = time.time()
        sql = "UPDATE st_models SET has_thumbnail = ?, updated_at = ? WHERE path = ?"
        params = [(int(flag), now, _path_to_db(p)) for p, flag in paths_flags]
        self._write(lambda c: c.executemany(sql, params))

    def rename(self, old: str, new: str) -> bool:
        """Move the row of ``old`` to ``new``, keeping its hash and thumbnail facts.

        A row already at ``new`` (e.g. inserted by a scan that saw the new name first) is replaced.

        Returns:
            False when there is no row for ``old`` (nothing changed).
        """
        old_db, new_db = _path_to_db(old), _path_to_db(new)

        def work(c: sqlite3.Connection) -> bool:
            if c.execute("SELECT 1 FROM st_models WHERE path = ?", (old_db,)).fetchone() is None:
                return False
            if old_db != new_db:
                c.execute("DELETE FROM st_models WHERE path = ?", (new_db,))
                # A row claimed for rendering under its old name goes back to pending: the render
                # in flight reports for the old path, which no longer has a row.
                c.execute(
                    "UPDATE st_models SET path = ?, updated_at = ?,"
                    " status = CASE WHEN status = 'rendering' THEN 'pending' ELSE status END,"
                    " claimed_at = NULL WHERE path = ?",
                    (new_db, time.time(), old_db),
                )
            return True

        return self._write(work)

    def find_missing_by_hash(self, content_hash: str, size: int) -> ModelRow | None:
        """The most recently missing row with this content (a move seen as delete + create)."""
        sql = (
            f"SELECT {_COLUMNS} FROM st_models WHERE status = 'missing' AND hash = ? AND size = ?"
            " ORDER BY updated_at DESC LIMIT 1"
        )
        rows = self._read(sql, (content_hash, size))
        return _row(rows[0]) if rows else None

    def rows_spelled_like(self, path: str, key: Callable[[str], str]) -> list[ModelRow]:
        """Rows in the folder of ``path`` whose name is another spelling of its name by ``key`` (a volume's
        rules, see :mod:`.pathcanon`): on a case-insensitive volume ``Gear.stl`` for ``gear.stl``.

        SQLite cannot compare by a volume's rules on the index, so this reads the folder's range (only
        when an exact lookup found nothing, on an insensitive volume).
        """
        folder, wanted = os.path.dirname(path), key(path)
        where, params = under_ranges(folder)
        out = []
        for t in self._read(f"SELECT {_COLUMNS} FROM st_models WHERE {where}", params):
            other = _path_from_db(t[1])
            if other != path and os.path.dirname(other) == folder and key(other) == wanted:
                out.append(_row(t))
        return out

    def rename_under(self, old_dir: str, new_dir: str) -> int:
        """A folder moved: every row under ``old_dir`` moves to the same place under ``new_dir``."""
        rows = self.rows_under([old_dir])
        moved = 0
        for path in rows:
            if self.rename(path, new_dir + path[len(old_dir) :]):
                moved += 1
        return moved

    def delete_rows(self, paths: Sequence[str]) -> None:
        """Forget these paths."""
        params = [(_path_to_db(p),) for p in paths]
        self._write(lambda c: c.executemany("DELETE FROM st_models WHERE path = ?", params))
