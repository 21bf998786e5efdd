"""Where the database lives: a best-effort guess whether a path is on a network or external volume,
where SQLite's locking and WAL cannot be trusted."""

from __future__ import annotations

import os
import re
import sys

__all__ = ["database_on_network_share"]


StrPath = str | os.PathLike[str]


# Filesystem types (Linux /proc/mounts names) where SQLite's locking and WAL cannot be trusted.
_NETWORK_FS = frozenset(
    [
        "cifs",
        "smb3",
        "smbfs",
        "nfs",
        "nfs4",
        "afpfs",
        "webdav",
        "davfs",
        "fuse.sshfs",
        "9p",
        "ceph",
        "glusterfs",
    ]
)
_MOUNT_ESCAPE = re.compile(r"\\([0-7]{3})")


def _mount_fstype(path: str, mounts_text: str) -> str | None:
    """Filesystem type of the mount holding ``path`` (a realpath), from /proc/mounts text."""
    best, fstype = "", None
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        # /proc/mounts escapes space, tab, newline and backslash as octal (\040 ...).
        point = _MOUNT_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), parts[1])
        prefix = point if point.endswith("/") else point + "/"
        if (path == point or path.startswith(prefix)) and len(point) >= len(best):
            best, fstype = point, parts[2]
    return fstype


def database_on_network_share(path: StrPath) -> bool:
    """Best-effort guess whether ``path`` is on a network (or, on macOS, any non-boot) volume.

    SQLite's WAL mode does not work over network filesystems, and the share's host must own the
    database, so the CLI warns when this returns True.

    Args:
        path: The database path; it need not exist yet.

    Returns:
        True on macOS for paths under ``/Volumes/`` other than the boot volume; on Linux when the
        mount holding the path is cifs/smb/nfs/sshfs-like. False when unsure.
    """
    real = os.path.realpath(os.path.abspath(os.fspath(path)))
    if sys.platform == "darwin":
        # /Volumes/Macintosh HD is a symlink to /, so realpath already maps the boot volume away.
        return real.startswith("/Volumes/")
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
            mounts = f.read()
    except OSError:
        return False
    fstype = _mount_fstype(real, mounts)
    return fstype is not None and (fstype in _NETWORK_FS or fstype.startswith("nfs"))
