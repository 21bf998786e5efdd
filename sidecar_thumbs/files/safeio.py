"""Open and read model and sidecar files so that nothing but a regular file is ever read.

A library others write into holds more than models: a FIFO named ``x.stl`` blocks ``open()`` for ever,
a symlink ``y.stl`` -> ``/dev/zero`` never ends a read, a link may lead out of the library. Every
path that opens a model or a sidecar goes through :func:`open_regular`:

1. ``lstat`` first: a symlink is followed only when allowed (never for sidecars; for models only
   when its real path lies inside one of the roots, the walker's rule in :mod:`.discover`), and what
   it names must be a regular file — a FIFO, socket or device is never opened;
2. ``open`` with ``O_NONBLOCK | O_NOFOLLOW``: a FIFO swapped in after the check cannot block the
   open, a link swapped in cannot be followed;
3. ``fstat`` the descriptor: still a regular file, and the same one the ``lstat`` saw;
4. read at most the size ``fstat`` reported (plus one byte, to notice growth): a read is bounded.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence

__all__ = [
    "LinkOutsideRootsError",
    "NotRegularFileError",
    "file_kind",
    "inside_roots",
    "open_regular",
    "read_fd",
    "read_regular",
    "stat_regular",
]

StrPath = str | os.PathLike[str]

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class NotRegularFileError(OSError):
    """Not a regular file (a FIFO, socket, device or folder): never opened. An ``OSError``, so every
    caller that already treats an unreadable file as "skip it" does so for these too."""

    def __init__(self, path: StrPath, kind: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file (a {kind})", os.fspath(path))
        self.kind = kind


class LinkOutsideRootsError(OSError):
    """A symlink whose target lies outside every root: not followed (as the walker does)."""

    def __init__(self, path: StrPath, target: str) -> None:
        super().__init__(errno.EXDEV, f"symlink leads outside the library roots (to {target})", os.fspath(path))


_KIND_WORDS = (
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISDIR, "folder"),
    (stat.S_ISLNK, "symlink"),
)


def file_kind(mode: int) -> str:
    """A word for what a mode describes, for messages."""
    for is_kind, word in _KIND_WORDS:
        if is_kind(mode):
            return word
    return "regular file" if stat.S_ISREG(mode) else "special file"


def inside_roots(real: str, roots: Sequence[str]) -> bool:
    """Whether real path ``real`` is one of ``roots`` or below one (roots are resolved here)."""
    for root in roots:
        root_real = os.path.realpath(root)
        if real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep):
            return True
    return False


def stat_regular(path: StrPath, *, roots: Sequence[str] | None = None, follow: bool = True) -> os.stat_result:
    """Stat what ``path`` names without opening it, and refuse what must not be opened.

    Args:
        path: a model or sidecar path.
        roots: when given, the real path must lie inside one of them: a symlink (or a symlinked
            folder on the way) is followed only into the roots.
        follow: False refuses every symlink (sidecars: we only ever write regular files).

    Returns:
        the stat of the regular file (of the link's target for an allowed link).

    Raises:
        NotRegularFileError: a FIFO, socket, device, folder, or a symlink when ``follow`` is False.
        LinkOutsideRootsError: a symlink leading outside ``roots``.
        OSError: it cannot be stat'ed (e.g. ``FileNotFoundError``).
    """
    st = os.lstat(path)
    is_link = stat.S_ISLNK(st.st_mode)
    if is_link and not follow:
        raise NotRegularFileError(path, "symlink")
    if roots is not None:
        real = os.path.realpath(path)
        if not inside_roots(real, roots):
            raise LinkOutsideRootsError(path, real)
    if is_link:
        st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(path, file_kind(st.st_mode))
    return st


def open_regular(
    path: StrPath, *, roots: Sequence[str] | None = None, follow: bool = True
) -> tuple[int, os.stat_result]:
    """Open a regular file for reading, never blocking on the open (see the module docstring).

    Args:
        path, roots, follow: as for :func:`stat_regular`.

    Returns:
        ``(fd, fstat)``; the caller closes ``fd``.

    Raises:
        As :func:`stat_regular`; ``NotRegularFileError`` also when the file was swapped for another
        kind between the check and the open.
    """
    st = stat_regular(path, roots=roots, follow=follow)
    # An allowed link is opened through its resolved path with O_NOFOLLOW: no link is followed by
    # the open itself, so a link swapped in after the check is refused (ELOOP), not followed.
    target = os.path.realpath(path) if follow and os.path.islink(path) else path
    try:
        fd = os.open(target, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFileError(path, "symlink") from None
        raise
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):
            raise NotRegularFileError(path, file_kind(fst.st_mode))
        if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            # Replaced between the check and the open: a plain OSError, so callers retry later.
            raise OSError(errno.EAGAIN, "the file was replaced while being opened", os.fspath(path))
        # O_NONBLOCK only had to keep the open from blocking; reads of a regular file block anyway,
        # and no exotic file system gets the chance to answer EAGAIN.
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, fst


def read_fd(fd: int, limit: int) -> bytes:
    """Read up to ``limit`` bytes from ``fd`` (fewer at end of file).

    One allocation of ``limit`` bytes and, for a local file, one read: a 1 GiB model must not cost
    twice its size in chunks joined at the end. A short read (network file systems) goes on.
    """
    with open(fd, "rb", buffering=0, closefd=False) as f:
        data = f.read(limit) or b""
        if not data or len(data) >= limit:
            return data
        parts, left = [data], limit - len(data)
        while left > 0 and (chunk := f.read(min(left, 1 << 24))):
            parts.append(chunk)
            left -= len(chunk)
    return b"".join(parts) if len(parts) > 1 else data


def read_regular(
    path: StrPath, *, roots: Sequence[str] | None = None, follow: bool = True, max_bytes: int | None = None
) -> bytes:
    """Read a whole regular file, at most the size it had when opened (and at most ``max_bytes``).

    Raises:
        As :func:`open_regular`.
    """
    fd, st = open_regular(path, roots=roots, follow=follow)
    try:
        limit = st.st_size if max_bytes is None else min(st.st_size, max_bytes)
        return read_fd(fd, limit)
    finally:
        os.close(fd)
