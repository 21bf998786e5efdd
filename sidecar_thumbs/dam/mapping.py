"""Attach to an asset manager's own table of models: read its rows, set its thumbnail flag.

The asset manager (DAM) owns the table; we only read it, and write the columns the user named (the
flag, optionally a sidecar path and a render time). Its schema is never altered — no index, no
trigger, no column. Every identifier comes from a fixed grammar (checked when settings load) and is
double-quoted in SQL, so a value in a settings file can never become SQL.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from sidecar_thumbs.errors import ConfigError
from sidecar_thumbs.settings.checks import IDENTIFIER_RE

__all__ = ["DamMapping", "DamRow", "quote_identifier"]


def quote_identifier(name: str) -> str:
    if not IDENTIFIER_RE.fullmatch(name):
        raise ConfigError(f"{name!r} is not a plain SQL name (letters, digits and _ only)")
    return f'"{name}"'


def _has_entries(folder: str) -> bool:
    try:
        with os.scandir(folder) as it:
            return next(it, None) is not None
    except OSError:
        return False


@dataclass(frozen=True)
class DamRow:
    id: int | str
    path: str  # absolute, as we use it
    flag: bool


@dataclass(frozen=True)
class DamMapping:
    """Where the asset manager keeps its models, and which columns are ours to write."""

    table: str
    id_column: str = "id"
    path_column: str = "path"
    flag_column: str = "has_thumbnail"
    path_base: str = ""  # relative paths in path_column start here; "" = paths are absolute
    sidecar_column: str = ""
    rendered_at_column: str = ""

    def __post_init__(self) -> None:
        for name in (self.table, self.id_column, self.path_column, self.flag_column):
            quote_identifier(name)
        for name in (self.sidecar_column, self.rendered_at_column):
            if name:
                quote_identifier(name)

    @classmethod
    def from_settings(cls, settings: object) -> DamMapping | None:
        table = getattr(settings, "dam_table", "")
        if not table:
            return None
        return cls(
            table=table,
            id_column=settings.dam_id_column,  # type: ignore[attr-defined]
            path_column=settings.dam_path_column,  # type: ignore[attr-defined]
            flag_column=settings.dam_flag_column,  # type: ignore[attr-defined]
            # Real path, as the roots are (roots.canonical_roots): one spelling for every model path.
            path_base=os.path.realpath(settings.dam_path_base) if settings.dam_path_base else "",  # type: ignore[attr-defined]
            sidecar_column=settings.dam_sidecar_column,  # type: ignore[attr-defined]
            rendered_at_column=settings.dam_rendered_at_column,  # type: ignore[attr-defined]
        )

    # -- identifiers ------------------------------------------------------------------------------

    @property
    def t(self) -> str:
        return quote_identifier(self.table)

    def q(self, column: str) -> str:
        return quote_identifier(column)

    def describe(self) -> str:
        return f"table {self.table} (id {self.id_column}, path {self.path_column}, flag {self.flag_column})"

    # -- paths ------------------------------------------------------------------------------------

    def to_abs(self, value: str) -> str | None:
        """The absolute path of a DAM row's path value (None for a relative one with no base)."""
        if not isinstance(value, str) or not value:
            return None
        if os.path.isabs(value):
            return os.path.normpath(value)
        if not self.path_base:
            return None
        return os.path.normpath(os.path.join(self.path_base, value))

    def to_value(self, path: str) -> str:
        """The path as the DAM stores it."""
        if self.path_base:
            rel = os.path.relpath(path, self.path_base)
            if not rel.startswith(".." + os.sep) and rel != "..":
                return rel
        return path

    # -- checks -----------------------------------------------------------------------------------

    def check(self, conn: sqlite3.Connection, where: object) -> None:
        """Refuse at start, with a clear message, a mapping that does not fit the database."""
        cols = {row[1] for row in conn.execute(f"PRAGMA table_info({self.t})")}
        if not cols:
            raise ConfigError(f"{where} has no table {self.table!r} (SIDECAR_THUMBS_DAM_TABLE)")
        wanted = {
            "SIDECAR_THUMBS_DAM_ID_COLUMN": self.id_column,
            "SIDECAR_THUMBS_DAM_PATH_COLUMN": self.path_column,
            "SIDECAR_THUMBS_DAM_FLAG_COLUMN": self.flag_column,
            "SIDECAR_THUMBS_DAM_SIDECAR_COLUMN": self.sidecar_column,
            "SIDECAR_THUMBS_DAM_RENDERED_AT_COLUMN": self.rendered_at_column,
        }
        for env, col in wanted.items():
            if col and col not in cols:
                raise ConfigError(f"table {self.table!r} in {where} has no column {col!r} ({env})")

    def check_paths(self, values: Sequence[object], roots: Sequence[str]) -> None:
        """Refuse a path column that holds no paths (mapped onto ``title``, say), from a sample of values.

        Only a sample where not one value names an existing file is refused. An empty table is not a
        wrong mapping, nor is a library that is offline (no root, or the path base, is a folder with
        anything in it now — an unmounted share's mount point is an empty folder on Linux): then
        nothing can be told, and the daemon waits for the share like it always does.
        """
        values = [v for v in values if v is not None and v != ""]
        if not values or not any(_has_entries(r) for r in roots):
            return
        if self.path_base and not _has_entries(self.path_base):
            return
        for value in values:
            path = self.to_abs(value) if isinstance(value, str) else None
            if path is not None and os.path.isfile(path):
                return
        shown = str(values[0])
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        where = f" (relative to SIDECAR_THUMBS_DAM_PATH_BASE={self.path_base})" if self.path_base else ""
        raise ConfigError(
            f"SIDECAR_THUMBS_DAM_PATH_COLUMN={self.path_column}: none of {len(values)} sampled rows of table "
            f"{self.table!r} names an existing model file{where}, e.g. {shown!r}; is {self.path_column!r} "
            "the column with the model's path?"
        )

    # -- SQL --------------------------------------------------------------------------------------

    def sample_paths_sql(self, limit: int) -> str:
        """A random sample of path values (random: the oldest rows may all be long-deleted models)."""
        col = self.q(self.path_column)
        return f"SELECT {col} FROM {self.t} WHERE {col} IS NOT NULL ORDER BY random() LIMIT {int(limit):d}"

    def select_rows(self, *, unflagged_only: bool) -> str:
        where = f" WHERE coalesce({self.q(self.flag_column)}, 0) = 0" if unflagged_only else ""
        return (
            f"SELECT {self.q(self.id_column)}, {self.q(self.path_column)}, {self.q(self.flag_column)}"
            f" FROM {self.t}{where}"
        )

    def set_flag_sql(self) -> str:
        """Params: flag, sidecar, rendered_at, id. Optional columns are written only when mapped."""
        sets = [f"{self.q(self.flag_column)} = :flag"]
        if self.sidecar_column:
            sets.append(f"{self.q(self.sidecar_column)} = :sidecar")
        if self.rendered_at_column:
            sets.append(f"{self.q(self.rendered_at_column)} = :rendered_at")
        return f"UPDATE {self.t} SET {', '.join(sets)} WHERE {self.q(self.id_column)} = :id"

    def set_flag_by_path_sql(self) -> str:
        sql = self.set_flag_sql()
        return sql[: sql.rindex(" WHERE ")] + f" WHERE {self.q(self.path_column)} = :value"

    def count_sql(self) -> str:
        return f"SELECT count(*), coalesce(sum(coalesce({self.q(self.flag_column)}, 0) = 0), 0) FROM {self.t}"
