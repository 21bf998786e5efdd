"""Schema of the state database, as an ordered list of migration steps keyed by ``PRAGMA user_version``.

Step *n* (1-based) upgrades a database from schema ``n - 1`` to ``n``. A database is upgraded by
running every missing step and then setting ``user_version`` — all inside the caller's one
``BEGIN IMMEDIATE`` transaction, so a crash mid-upgrade leaves the old schema intact and two processes
opening the same old file cannot both upgrade it. Never edit a released step; append a new one.

Our tables carry the prefix ``st_`` so the file can later be shared with an asset manager's own tables.
"""

from __future__ import annotations

import sqlite3

from .errors import DatabaseError

__all__ = ["SCHEMA_VERSION", "STEPS", "apply_migrations", "check_version"]

_V1 = (
    """
    CREATE TABLE st_models (
        id INTEGER PRIMARY KEY,
        path TEXT UNIQUE NOT NULL,
        size INTEGER,
        mtime_ns INTEGER,
        hash TEXT,
        status TEXT NOT NULL
            CHECK (status IN ('pending', 'rendering', 'done', 'failed', 'missing')),
        has_thumbnail INTEGER NOT NULL DEFAULT 0,
        thumb_hash TEXT,
        thumb_source TEXT CHECK (thumb_source IN ('rendered', 'embedded')),
        triangles INTEGER,
        error TEXT,
        error_transient INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL,
        render_ms REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        rendered_at REAL,
        claimed_at REAL
    )
    """,
    # The sweep: "pending/failed rows whose next_attempt_at has come".
    "CREATE INDEX st_models_sweep ON st_models (status, next_attempt_at)",
    # The render rate over the last minute; rows never rendered need no entry.
    "CREATE INDEX st_models_rendered_at ON st_models (rendered_at) WHERE rendered_at IS NOT NULL",
    # Folder queries use a range on the UNIQUE(path) index, so path needs no index of its own.
    "CREATE TABLE st_meta (key TEXT PRIMARY KEY, value TEXT)",
)

_V2 = (
    # Moves seen as delete + create (FSEvents does not pair renames, watchdog#723): a new file whose
    # content matches a just-missing row takes over that row and its sidecar instead of re-rendering.
    "CREATE INDEX st_models_missing_hash ON st_models (hash) WHERE status = 'missing'",
)

STEPS: tuple[tuple[str, ...], ...] = (_V1, _V2)
"""Migration steps; ``STEPS[n - 1]`` takes schema ``n - 1`` to ``n``."""

SCHEMA_VERSION = len(STEPS)


def check_version(conn: sqlite3.Connection, where: object) -> int:
    """Read the schema version and refuse one newer than this code knows.

    Args:
        conn: Open connection.
        where: The database path, for the message.

    Returns:
        The stored ``user_version``.

    Raises:
        DatabaseError: The file was written by a newer sidecar-thumbs.
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"database was written by a newer sidecar-thumbs (schema {version}); this version reads "
            f"schema {SCHEMA_VERSION} — upgrade sidecar-thumbs or point it at another database ({where})"
        )
    return version


def apply_migrations(conn: sqlite3.Connection, where: object) -> int:
    """Upgrade the schema to :data:`SCHEMA_VERSION`; call inside a ``BEGIN IMMEDIATE`` transaction.

    The version is read again inside the transaction because another process may have upgraded the
    file between our first look and taking the write lock.

    Args:
        conn: Connection with an open write transaction.
        where: The database path, for messages.

    Returns:
        The schema version the database had before.
    """
    before = check_version(conn, where)
    for statements in STEPS[before:]:
        for sql in statements:
            conn.execute(sql)
    if before != SCHEMA_VERSION:
        # PRAGMA takes no parameters; the value is our own integer.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
    return before
