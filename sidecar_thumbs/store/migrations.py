"""Schema of the state database, as an ordered list of migration steps keyed by ``PRAGMA user_version``.

Step *n* (1-based) upgrades a database from schema ``n - 1`` to ``n``. A database is upgraded by
running every missing step and then setting ``user_version`` — all inside the caller's one
``BEGIN IMMEDIATE`` transaction, so a crash mid-upgrade leaves the old schema intact and two processes
opening the same old file cannot both upgrade it. Never edit a released step; append a new one.

Our tables carry the prefix ``st_`` so the file can later be shared with an asset manager's own tables.
"""

from __future__ import annotations

import sqlite3

from sidecar_thumbs.errors import DatabaseError

__all__ = ["SCHEMA_VERSION", "STEPS", "apply_migrations", "check_version", "read_version"]

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

_V3 = (
    # The asset manager's row id for a model, when attached to a DAM table (issue #5): flags are set by
    # id in the same transaction as our row, without an index on the DAM's path column.
    "ALTER TABLE st_models ADD COLUMN dam_id",
)

_V4 = (
    # Whether each root of the daemon is online (issue #11): `status` from another process shows
    # "offline since …". Written only when a root changes state, never per sweep.
    """
    CREATE TABLE st_roots (
        path TEXT PRIMARY KEY,
        online INTEGER NOT NULL,
        reason TEXT,
        since REAL NOT NULL
    )
    """,
)

_V5 = (
    # "The daemon cannot read this root" has one record, the root's state in st_roots (offline, with the
    # reason: permission denied, on macOS the missing Full Disk Access). Versions before it also kept the
    # daemon's last listing check as JSON in st_meta; nothing reads that any more.
    "DELETE FROM st_meta WHERE key = 'root_access'",
)

_V6 = (
    # How each root's volume compares names (case, Unicode form), as a probe file in the root found it, with
    # the volume's identity then (files/volume_identity.py): a restart does not write into the share again;
    # another volume at the root (another identity) is probed anew. One row per root.
    """
    CREATE TABLE st_volumes (
        root TEXT PRIMARY KEY,
        identity TEXT NOT NULL,
        case_insensitive INTEGER NOT NULL,
        norm_insensitive INTEGER NOT NULL,
        probed_at REAL NOT NULL
    )
    """,
)

STEPS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5, _V6)
"""Migration steps; ``STEPS[n - 1]`` takes schema ``n - 1`` to ``n``."""

SCHEMA_VERSION = len(STEPS)


def read_version(conn: sqlite3.Connection, *, in_meta: bool = False) -> int:
    """The stored schema version: ``PRAGMA user_version``, or — in a database file that belongs to an
    asset manager, whose own ``user_version`` we must never touch — ``st_meta.schema_version``."""
    if not in_meta:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'st_meta'").fetchone()
    if not has_meta:
        return 0
    row = conn.execute("SELECT value FROM st_meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def check_version(conn: sqlite3.Connection, where: object, *, in_meta: bool = False) -> int:
    """Read the schema version and refuse one newer than this code knows.

    Args:
        conn: Open connection.
        where: The database path, for the message.
        in_meta: Keep the version in ``st_meta`` instead of ``PRAGMA user_version``.

    Returns:
        The stored version.

    Raises:
        DatabaseError: The file was written by a newer sidecar-thumbs.
    """
    version = read_version(conn, in_meta=in_meta)
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"database was written by a newer sidecar-thumbs (schema {version}); this version reads "
            f"schema {SCHEMA_VERSION} — upgrade sidecar-thumbs or point it at another database ({where})"
        )
    return version


def apply_migrations(conn: sqlite3.Connection, where: object, *, in_meta: bool = False) -> int:
    """Upgrade the schema to :data:`SCHEMA_VERSION`; call inside a ``BEGIN IMMEDIATE`` transaction.

    The version is read again inside the transaction because another process may have upgraded the
    file between our first look and taking the write lock.

    Args:
        conn: Connection with an open write transaction.
        where: The database path, for messages.

    Returns:
        The schema version the database had before.
    """
    before = check_version(conn, where, in_meta=in_meta)
    for statements in STEPS[before:]:
        for sql in statements:
            conn.execute(sql)
    if before != SCHEMA_VERSION:
        if in_meta:
            conn.execute(
                "INSERT INTO st_meta (key, value) VALUES ('schema_version', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
        else:
            # PRAGMA takes no parameters; the value is our own integer.
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
    return before
