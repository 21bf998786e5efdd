"""Atomic file writes: the reader sees the old file or the new one, never a part.

Pattern as in borg's ``SaveFile``: write a temp file in the same folder (same file system, so the
rename is atomic), order its data before the rename, ``os.replace`` it over the target, fsync the folder
so the rename itself is durable; remove the temp file on any error.

What the order costs (issue 17): a reader must never see a half-written file, so the data must reach
the disk before the rename does. ``fsync`` guarantees that on Linux; on macOS ``fsync`` only reaches the
drive's cache and its order is not kept, so there ``F_BARRIERFSYNC`` (an I/O barrier, microseconds)
orders it. ``F_FULLFSYNC`` (flush the whole drive cache: milliseconds to tens of milliseconds, and
flushes do not overlap) is only used when ``full=True`` (the ``full_fsync`` setting). A thumbnail can be
rebuilt: the database commit is the durability point, and a sidecar lost or torn by a power cut is
found and redrawn by the next scan (:mod:`sidecar_thumbs.work.crashcheck`). The folder fsync may be left to the caller
(``sync_folder=False``) so that a batch pays one per folder (the pipeline's writer does).
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["TEMP_PREFIX", "TEMP_SUFFIX", "atomic_write", "fsync_dir", "order_fsync", "temp_name_for"]

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
    return f"{TEMP_PREFIX}{os.urandom(8).hex()}{TEMP_SUFFIX}"


# <sys/fcntl.h>: F_BARRIERFSYNC is 85 (Python exposes it from 3.12 on, not in 3.11).
_F_BARRIERFSYNC = 85


def order_fsync(fd: int, *, full: bool = False) -> None:
    """Make ``fd``'s data reach the disk before anything written after it (a rename).

    macOS: ``F_BARRIERFSYNC`` (or ``F_FULLFSYNC`` with ``full``: the drive flushes its cache; see
    python-atomicwrites #6); falls back to ``fsync`` where the file system refuses (SMB, some FUSE).
    Elsewhere ``fsync``, which already orders and flushes.
    """
    if sys.platform == "darwin":
        import fcntl

        op = fcntl.F_FULLFSYNC if full else getattr(fcntl, "F_BARRIERFSYNC", _F_BARRIERFSYNC)
        try:
            fcntl.fcntl(fd, op)
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


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int = 0o644,
    durable: bool = True,
    full: bool = False,
    sync_folder: bool = True,
) -> None:
    """Write ``data`` to ``path`` atomically.

    Args:
        path: the target file. Its folder must exist.
        data: the complete content.
        mode: permission bits for the new file (before the umask).
        durable: order the data before the rename and fsync the folder (the default). Tests may turn it off.
        full: flush the drive's cache for the data too (macOS ``F_FULLFSYNC``; see :func:`order_fsync`).
        sync_folder: fsync the folder here; False when the caller fsyncs it once for a batch.

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
                order_fsync(fd, full=full)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        # BaseException: a KeyboardInterrupt mid-write must not leave the temp file behind either.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable and sync_folder:
        fsync_dir(folder or ".")
