"""The asset manager's table (attached mode): its rows, its counts, and its thumbnail flags, written in the
same transaction as our own row."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from sidecar_thumbs.dam.mapping import DamMapping
from sidecar_thumbs.files.sidecar import sidecar_path_for
from sidecar_thumbs.store.dbpath import path_to_db as _path_to_db
from sidecar_thumbs.store.sqlite import SQLiteDB

__all__ = ["AssetManagerTable"]


class AssetManagerTable(SQLiteDB):
    """Reads and writes of the asset manager's table; ``dam`` is None when not attached."""

    dam: DamMapping | None

    def _dam_flag(self, c: sqlite3.Connection, path: str, flag: bool, now: float) -> None:
        """Set the asset manager's flag for ``path`` (inside the caller's transaction)."""
        dam = self.dam
        if dam is None:
            return
        params = {"flag": int(flag), "sidecar": str(sidecar_path_for(path)) if flag else None,
                  "rendered_at": now if flag else None}  # fmt: skip
        (dam_id,) = c.execute("SELECT dam_id FROM st_models WHERE path = ?", (_path_to_db(path),)).fetchone() or (None,)
        if dam_id is not None:
            c.execute(dam.set_flag_sql(), {**params, "id": dam_id})
        else:
            c.execute(dam.set_flag_by_path_sql(), {**params, "value": dam.to_value(path)})

    def dam_rows(self, *, unflagged_only: bool) -> list[tuple[object, object, object, str | None, str | None]]:
        """The asset manager's rows: (id, path value, flag, our status, our error_transient) — our columns
        NULL where we have no row with that dam id. Unflagged-only skips rows we are already working on or
        that failed for good (their flag stays 0 on purpose)."""
        assert self.dam is not None
        d = self.dam
        sql = (
            f"SELECT d.{d.q(d.id_column)}, d.{d.q(d.path_column)}, d.{d.q(d.flag_column)}, s.status,"
            f" s.error_transient FROM {d.t} AS d LEFT JOIN st_models AS s ON s.dam_id = d.{d.q(d.id_column)}"
        )
        if unflagged_only:
            sql += (
                f" WHERE coalesce(d.{d.q(d.flag_column)}, 0) = 0 AND (s.status IS NULL OR s.status"
                " NOT IN ('pending', 'rendering', 'failed', 'missing'))"
            )
        return self._read(sql)

    def check_dam_paths(self, roots: Sequence[str], sample: int = 50) -> None:
        """Refuse at start a path column that holds no paths (see :meth:`DamMapping.check_paths`)."""
        assert self.dam is not None
        self.dam.check_paths([r[0] for r in self._read(self.dam.sample_paths_sql(sample))], roots)

    def dam_counts(self) -> tuple[int, int]:
        """(models in the asset manager's table, of which without thumbnail)."""
        assert self.dam is not None
        total, unflagged = self._read(self.dam.count_sql())[0]
        return int(total), int(unflagged)

    def set_dam_ids(self, pairs: Sequence[tuple[str, object]]) -> None:
        """Remember the asset manager's id of each path (so flags are set by id)."""
        params = [(dam_id, _path_to_db(p)) for p, dam_id in pairs]
        self._write(lambda c: c.executemany("UPDATE st_models SET dam_id = ? WHERE path = ?", params))

    def set_dam_flags(self, paths_flags: Sequence[tuple[str, bool]]) -> None:
        """Set the asset manager's flag for these models (repairs; renders set it themselves)."""
        now = time.time()

        def work(c: sqlite3.Connection) -> None:
            for p, flag in paths_flags:
                self._dam_flag(c, p, flag, now)

        self._write(work)
