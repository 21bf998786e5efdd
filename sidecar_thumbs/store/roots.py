"""What is recorded besides models: the state of each library root, how each root's volume compares names,
and ``st_meta`` values."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sidecar_thumbs.store.dbpath import path_from_db as _path_from_db
from sidecar_thumbs.store.dbpath import path_to_db as _path_to_db
from sidecar_thumbs.store.dbpath import under_ranges
from sidecar_thumbs.store.rows import _now
from sidecar_thumbs.store.sqlite import SQLiteDB

__all__ = ["RootsAndMeta"]


class RootsAndMeta(SQLiteDB):
    """Roots online or offline (and since when), rows present under a root, each root's volume rules (the
    probe's cache), and ``st_meta``."""

    def _count_where(self, where: str, params: Sequence[object]) -> int:
        """Rows of ``st_models`` matching ``where``; for a paths-under clause alone, a walk of the path index."""
        return int(self._read(f"SELECT count(*) FROM st_models WHERE {where}", params)[0][0])

    def present_under(self, root: str) -> int:
        """Rows at or under ``root`` that are not missing: what a walk of it should find."""
        where, params = under_ranges(root)
        # All rows under the root, counted on the path index alone, less the missing ones, found through the
        # status index: a few ms. Asking for status != 'missing' directly reads every row (40 ms on 34k rows
        # on a command's first query).
        return self._count_where(where, params) - self._count_where(f"status = 'missing' AND ({where})", params)

    def root_states(self) -> list[tuple[str, bool, str | None, float]]:
        """Each root the daemon knows: (path, online, reason when offline, since when)."""
        rows = self._read("SELECT path, online, reason, since FROM st_roots ORDER BY path")
        return [(_path_from_db(p), bool(on), reason, since) for p, on, reason, since in rows]

    def set_root_state(self, root: str, online: bool, reason: str | None, now: float | None = None) -> None:
        """Record a root's state; ``since`` moves only when the state changes."""
        now = _now(now)
        sql = (
            "INSERT INTO st_roots (path, online, reason, since) VALUES (?, ?, ?, ?) ON CONFLICT (path) DO UPDATE"
            " SET reason = excluded.reason, since = CASE WHEN online = excluded.online THEN since"
            " ELSE excluded.since END, online = excluded.online"
        )
        self._write(lambda c: c.execute(sql, (_path_to_db(root), int(online), reason, now)))

    def forget_roots_except(self, roots: Sequence[str]) -> None:
        """Drop the recorded state of roots no longer watched (the daemon's roots changed)."""
        keep = json.dumps([_path_to_db(r) for r in roots])
        sql = "DELETE FROM st_roots WHERE path NOT IN (SELECT value FROM json_each(?))"
        self._write(lambda c: c.execute(sql, (keep,)))

    def cached_volume_rules(self, root: str, identity: str) -> tuple[bool, bool] | None:
        """(case_insensitive, norm_insensitive) a probe found for ``root`` on the volume ``identity``, or None
        (see :class:`~sidecar_thumbs.files.volume_identity.RulesCache`)."""
        sql = "SELECT case_insensitive, norm_insensitive FROM st_volumes WHERE root = ? AND identity = ?"
        rows = self._read(sql, (_path_to_db(root), identity))
        return (bool(rows[0][0]), bool(rows[0][1])) if rows else None

    def remember_volume_rules(
        self, root: str, identity: str, rules: tuple[bool, bool], now: float | None = None
    ) -> None:
        """Keep what a probe of ``root`` found on the volume ``identity`` (one row per root)."""
        sql = (
            "INSERT INTO st_volumes (root, identity, case_insensitive, norm_insensitive, probed_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (root) DO UPDATE SET identity = excluded.identity,"
            " case_insensitive = excluded.case_insensitive, norm_insensitive = excluded.norm_insensitive,"
            " probed_at = excluded.probed_at"
        )
        values = (_path_to_db(root), identity, int(rules[0]), int(rules[1]), _now(now))
        self._write(lambda c: c.execute(sql, values))

    def get_meta(self, key: str) -> str | None:
        """A value from ``st_meta``, or None."""
        rows = self._read("SELECT value FROM st_meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        """Store a value in ``st_meta``."""
        sql = "INSERT INTO st_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        self._write(lambda c: c.execute(sql, (key, value)))
