"""Whose database is this? Warnings for the per-user default database used by the wrong user.

The default database lives in the user's data folder (``~/Library/Application Support/sidecar-thumbs`` on
macOS). launchd often runs the daemon as another user (a service account, or root for a LaunchDaemon) than
the one who types ``sidecar-thumbs status`` or ``scan`` in a terminal. Those then silently open (or create)
a different, empty database. What can be seen from outside:

* the database file exists but belongs to another user (an explicit path shared between users);
* the default path is used, nothing is there for this user, but another user's default path holds a
  database (and perhaps a running daemon's lock).
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["other_user_warnings"]


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _other_homes(me: int) -> Iterator[tuple[str, Path]]:
    """(user, home) of every other account with a real home folder."""
    seen: set[str] = set()
    for entry in pwd.getpwall():
        home = entry.pw_dir
        if entry.pw_uid == me or not home or home in seen or home in ("/", "/var/empty", "/nonexistent"):
            continue
        seen.add(home)
        yield entry.pw_name, Path(home)


def other_user_warnings(
    database: Path,
    *,
    default: Path | None,
    home: Path | None = None,
    uid: int | None = None,
    others: Iterable[tuple[str, Path]] | None = None,
) -> list[str]:
    """One-line warnings when ``database`` is probably not the one the daemon uses.

    Args:
        database: The database this command is about to open.
        default: This user's default database path when ``database`` is that default (not chosen with
            ``--db``/``DAM_DATABASE_PATH``), else None.
        home: This user's home folder (default: ``Path.home()``); with ``uid``, a seam for tests.
        uid: This process's effective user id (default: ``os.geteuid()``).
        others: (user, home folder) of the other accounts (default: from the password database).
    """
    uid = os.geteuid() if uid is None else uid
    warnings: list[str] = []
    try:
        owner = database.stat().st_uid
    except OSError:
        owner = None
    if owner is not None and owner != uid:
        warnings.append(
            f"database {database} belongs to {_user_name(owner)}, not to {_user_name(uid)}: if a daemon runs as "
            f"{_user_name(owner)}, run this command as that user too"
        )
    if default is None or owner is not None:
        return warnings
    home = Path.home() if home is None else home
    try:
        relative = default.relative_to(home)
    except ValueError:
        return warnings  # the default is not under the home folder (e.g. XDG_DATA_HOME elsewhere)
    for user, other_home in _other_homes(uid) if others is None else others:
        candidate = other_home / relative
        try:
            found = candidate.is_file()
        except OSError:  # another user's folder we may not look into
            found = False
        if found:
            warnings.append(
                f"no database for {_user_name(uid)} at {database}, but {user} has one at {candidate}: "
                f"if the daemon runs as {user}, pass --db {candidate} (or set DAM_DATABASE_PATH)"
            )
    return warnings
