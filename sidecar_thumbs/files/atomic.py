"""Atomic file writes: the reader sees the old file or the new one, never a part.

Pattern as in borg's ``SaveFile``: write a temp file in the same folder (same file system, so the
rename is atomic), fsync it, ``os.replace`` it over the target, fsync the folder so the rename itself
is durable; remove the temp file on any error.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys

__all__ = ["TEMP_PREFIX", "TEMP_SUFFIX", "atomic_write", "fsync_dir", "temp_name_for"]

TEMP_PREFIX = ".sidecar-thumbs-"
TEMP_SUFFIX = ".tmp"


def temp_name_for(target_name: str) -> str:
    """A temp file name for writing ``target_name``: hidden, unique, 37 bytes whatever the target.

    Short on purpose: the earlier ``<target>.<8 hex>.tmp`` was 13 bytes longer than the target, so
    a model name of 228-240 bytes had a sidecar name that fit NAME_MAX (255) and a temp name that
    did not. Discovery and the watcher ignore these names; ``clean`` removes stale ones that also
    carry our content (see :mod:`.clean`).
    """
    del target_name  # the name no longer depends on it; kept so callers say what they write
    return f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"


def _full_fsync(fd: int) -> None:
    # On macOS fsync() only reaches the drive's cache; F_FULLFSYNC asks the drive to flush it
    # (python-atomicwrites #6). Fall back to fsync where the file system refuses (SMB, some FUSE).
    if sys.platform == "darwin":
        import fcntl

        try:
            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
            return
        except OSError:
            pass
    os.fsync(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename in ``path`` durable. Best effort: some file systems refuse to fsync a folder."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically.

    Args:
        path: the target file. Its folder must exist.
        data: the complete content.
        mode: permission bits for the new file (before the umask).
        durable: fsync the file and the folder (the default). Tests may turn it off.

    Raises:
        OSError: the write failed; the target is untouched and no temp file is left.
    """
    target = os.fspath(path)
    folder, name = os.path.split(target)
    tmp = os.path.join(folder, temp_name_for(name))
    # O_EXCL: never write through a file (or symlink) that appeared under our temp name.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                _full_fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        # BaseException: a KeyboardInterrupt mid-write must not leave the temp file behind either.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(folder or ".")
