"""Change detection: the cheap ``(size, mtime_ns)`` stat gate and the streamed xxh3_128 content hash.

Pure: no database, no settings. The stat gate decides *whether* to hash; the hash decides whether a
file that moved on the gate really changed (a ``touch`` or a copy keeps its hash, so no re-render).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import xxhash

from sidecar_thumbs.errors import TransientModelError
from sidecar_thumbs.files.safeio import open_regular, stat_regular
from sidecar_thumbs.types import Fingerprint

__all__ = [
    "FileChangedError",
    "fingerprint",
    "gate_moved",
    "hash_bytes",
    "hash_file",
    "oversize_key",
    "stat_key",
]

StrPath = str | os.PathLike[str]

# 1 MiB chunks: large enough that Python overhead per chunk is noise, small enough that a
# 1 GiB model never needs more than one chunk of memory.
DEFAULT_CHUNK_SIZE = 1 << 20


class FileChangedError(TransientModelError):
    """the file changed while it was being read; will retry once it settles"""


def stat_key(path: StrPath) -> tuple[int, int]:
    """Return the cheap change gate ``(size, mtime_ns)`` of a file.

    Args:
        path: The file to stat (symlinks are followed, like opening the file would).

    Returns:
        ``(st_size, st_mtime_ns)``.

    Raises:
        OSError: The file cannot be stat'ed (e.g. it vanished).
    """
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """Return the xxh3_128 hex digest of in-memory bytes.

    Args:
        data: The content; gives the same digest as :func:`hash_file` on a file holding it.

    Returns:
        32 lowercase hex characters.
    """
    return xxhash.xxh3_128_hexdigest(data)


def oversize_key(size: int, mtime_ns: int) -> str:
    """What stands for the content hash of a file over the size cap, which is never read.

    Recorded with the failure, it keeps an unchanged oversized file from being looked at again
    (a 200 GB sparse file took the coordinator minutes to hash); a new size or mtime is a new key.
    """
    return f"over-cap:{size}:{mtime_ns}"


def hash_file(
    path: StrPath,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_bytes: int | None = None,
    roots: Sequence[str] | None = None,
) -> str:
    """Return the xxh3_128 hex digest of a regular file's content, read in chunks.

    Only a regular file is opened, never blocking (:func:`~.safeio.open_regular`), and at most the
    size it had when opened is read: a FIFO, a device or a link to ``/dev/zero`` cannot hang it.

    Args:
        path: The file to hash.
        chunk_size: Bytes per read; any positive value gives the same digest.
        max_bytes: The size cap: a larger file is not read and :func:`oversize_key` is returned.
        roots: A symlink is followed only into these (see :func:`~.safeio.stat_regular`).

    Returns:
        32 lowercase hex characters, equal to ``hash_bytes(content)`` (or the over-cap key).

    Raises:
        ValueError: ``chunk_size`` is not positive.
        OSError: The file cannot be opened or read, or is not a regular file
            (:class:`~.safeio.NotRegularFileError`); propagated for the caller to classify.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    fd, st = open_regular(path, roots=roots)
    try:
        if max_bytes is not None and st.st_size > max_bytes:
            return oversize_key(st.st_size, st.st_mtime_ns)
        h = xxhash.xxh3_128()
        # readinto one reusable buffer: no allocation per chunk.
        buf = bytearray(chunk_size)
        view = memoryview(buf)
        left = st.st_size
        with open(fd, "rb", buffering=0, closefd=False) as f:
            while left > 0 and (n := f.readinto(view[: min(chunk_size, left)])):
                h.update(view[:n])
                left -= n
        return h.hexdigest()
    finally:
        os.close(fd)


def fingerprint(
    path: StrPath,
    *,
    roots: Sequence[str] | None = None,
    max_bytes: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    first: os.stat_result | None = None,
) -> Fingerprint:
    """Hash a file if it is stable: stat, hash and re-stat it, so the hash provably belongs to the
    recorded size and mtime. The one place that does this (the daemon's ingest, the pipeline's hash
    of a file whose worker died).

    Only a regular file is stat'ed and read (:func:`~.safeio.stat_regular`, :func:`hash_file`): a
    FIFO, device or link out of the roots is refused, never opened.

    Args:
        path: The model file.
        roots: A symlink is followed only into these (see :func:`~.safeio.stat_regular`).
        max_bytes: The size cap: a larger file is not read, its hash is :func:`oversize_key`.
        chunk_size: Passed to :func:`hash_file`.
        first: The stat the caller already took (and decided on); the hash is proven against it
            instead of a fresh one.

    Returns:
        The file's :class:`Fingerprint` (size and mtime of ``first`` or of the first stat).

    Raises:
        FileChangedError: Size or mtime moved while hashing (a copy still in progress).
        OSError: The file cannot be stat'ed or read, or is not a regular file
            (:class:`~.safeio.NotRegularFileError`, :class:`~.safeio.LinkOutsideRootsError`).
    """
    before = first if first is not None else stat_regular(path, roots=roots)
    digest = hash_file(path, chunk_size=chunk_size, max_bytes=max_bytes, roots=roots)
    after = stat_regular(path, roots=roots)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise FileChangedError(
            f"{os.fspath(path)} changed while hashing (size {before.st_size} -> {after.st_size}, "
            f"mtime_ns {before.st_mtime_ns} -> {after.st_mtime_ns}); will retry once it settles"
        )
    return Fingerprint(size=before.st_size, mtime_ns=before.st_mtime_ns, hash=digest)


def gate_moved(old_size: int | None, old_mtime_ns: int | None, size: int, mtime_ns: int) -> bool:
    """Tell whether the stat gate moved, i.e. whether the file must be hashed again.

    Args:
        old_size: Size last recorded, or None if the file was never seen.
        old_mtime_ns: mtime_ns last recorded, or None if the file was never seen.
        size: Size now.
        mtime_ns: mtime_ns now.

    Returns:
        True when nothing was recorded or either value differs.
    """
    if old_size is None or old_mtime_ns is None:
        return True
    return old_size != size or old_mtime_ns != mtime_ns
