"""Find model files under the library roots with one iterative ``os.scandir`` walk.

What counts as a model and what is never one lives in :mod:`sidecar_thumbs.files.modelnames` (re-exported
here, where the walker's callers look for it), so the walker, the watcher and the daemon's event intake agree.

Symlinks never lead out of a root: a symlinked file or folder is followed only when its real path
is inside the root's real path. Folders are remembered by ``(st_dev, st_ino)``, which guards
against symlink cycles and makes nested or duplicate roots yield each file once. Within a root,
symlinked folders and files are visited after the real tree, so a file reachable both ways is
reported under its real path.
"""

from __future__ import annotations

import logging
import operator
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from stat import S_ISREG

from sidecar_thumbs.files.modelnames import (
    _SIDECAR_LEN,
    _SIDECAR_SUFFIX,
    IGNORED_DIRS,
    MODEL_SUFFIXES,
    is_ignored_dir,
    is_ignored_name,
    is_model_name,
    model_suffixes,
    set_model_extensions,
)
from sidecar_thumbs.files.pathcanon import SENSITIVE, VolumeRules, Volumes
from sidecar_thumbs.files.safeio import LinkOutsideRootsError, NotRegularFileError, stat_regular

__all__ = [
    "IGNORED_DIRS",
    "MODEL_SUFFIXES",
    "FoundFile",
    "WalkProblem",
    "WalkRow",
    "find_model_files",
    "is_ignored_dir",
    "is_ignored_name",
    "is_model_name",
    "iter_model_files",
    "iter_walk_rows",
    "model_on_disk",
    "model_suffixes",
    "set_model_extensions",
]

log = logging.getLogger(__name__)

StrPath = str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A model file seen by the walk, with the stat values the change gate needs."""

    path: str  # absolute, normalised, not symlink-resolved
    size: int
    mtime_ns: int
    ctime_ns: int
    # Whether the folder listing holds a sidecar-named entry for it (None: not known, e.g. a file
    # reached through a symlink). Saves the planner one lstat per file on a rescan.
    has_sidecar: bool | None = field(default=None, compare=False)


WalkRow = tuple[str, int, int, int, bool | None]
"""A :class:`FoundFile`'s fields as a plain tuple, ``(path, size, mtime_ns, ctime_ns, has_sidecar)``: what the
walk makes per model (a tuple costs a tenth of a frozen dataclass; 34k of them are a no-op rescan's walk)."""


@dataclass(frozen=True)
class WalkProblem:
    """Something the walk could not look at; reported, never fatal."""

    path: str
    reason: str  # one line, e.g. "permission denied: cannot list folder"


_entry_name = operator.attrgetter("name")

# Whether a folder can be listed through a descriptor (Linux and macOS can), and how it is opened for that.
_SCANDIR_FD = os.scandir in os.supports_fd
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def model_on_disk(path: str, roots: Sequence[str]) -> bool | None:
    """Whether a model path names a file the walker accepts, for deciding about its sidecar and row.

    Returns:
        True: a regular file, or a symlink into the roots to one (or something that cannot be told
        right now, e.g. a dangling link inside a root: kept, as the walker keeps it). False: it is
        there but never a model to read: a FIFO, socket, device or folder, or a symlink out of the
        roots. None: nothing is there.
    """
    try:
        stat_regular(path, roots=roots)
    except (NotRegularFileError, LinkOutsideRootsError):
        return False
    except OSError:
        return True if os.path.lexists(path) else None
    return True


def _is_inside(path: str, root: str) -> bool:
    """True when real path ``path`` is ``root`` or below it (both already realpath'ed)."""
    if path == root:
        return True
    prefix = root if root.endswith(os.sep) else root + os.sep
    return path.startswith(prefix)


def _crosses_ignored_dir(real: str, root_real: str) -> bool:
    """True when a symlink target lies in a skipped folder of the root (e.g. ``__MACOSX``)."""
    rel = os.path.relpath(real, root_real)
    return any(is_ignored_dir(part) for part in rel.split(os.sep))


def _oserror_reason(exc: OSError, what: str) -> str:
    if isinstance(exc, PermissionError):
        return f"permission denied: cannot {what}"
    if isinstance(exc, FileNotFoundError):
        return f"vanished during the walk: cannot {what}"
    if isinstance(exc, NotADirectoryError):
        return f"no longer a folder: cannot {what}"
    return f"cannot {what}: {exc.strerror or exc}"


class _Walker:
    """One walk over several roots; holds the state that must be shared between roots."""

    def __init__(self, on_problem: Callable[[WalkProblem], None] | None, volumes: Volumes | None = None) -> None:
        self._on_problem = on_problem
        self._volumes = volumes
        self._rules = SENSITIVE  # the rules of the root being walked (how names compare on its volume)
        # (st_dev, st_ino) of every folder listed so far, across all roots.
        self._seen_dirs: set[tuple[int, int]] = set()
        # (st_dev, st_ino) of files yielded through their real path; a symlink to one of them is
        # a duplicate. Hard links are deliberately not deduplicated: each is a path a user sees.
        self._seen_files: set[tuple[int, int]] = set()

    def problem(self, path: str, reason: str) -> None:
        log.debug("walk problem: %s: %s", path, reason)
        if self._on_problem is not None:
            self._on_problem(WalkProblem(path, reason))

    def walk_root(self, root: StrPath) -> Iterator[WalkRow]:
        root_path = os.path.abspath(os.fsdecode(os.fspath(root)))
        try:
            st = os.stat(root_path)  # follows: a root given as a symlink is fine
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                self.problem(root_path, "root does not exist")
            else:
                self.problem(root_path, _oserror_reason(exc, "open root"))
            return
        if not stat.S_ISDIR(st.st_mode):
            if stat.S_ISREG(st.st_mode) and is_model_name(os.path.basename(root_path)):
                # A single model given as a root (e.g. `render part.stl`) is simply itself.
                yield (root_path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, None)
            else:
                self.problem(root_path, "root is not a folder")
            return
        root_real = os.path.realpath(root_path)
        self._rules = self._volumes.rules_for(root_path) if self._volumes is not None else SENSITIVE
        if not self._claim_dir(st):
            return  # duplicate or nested root, already walked

        deferred_dirs: list[str] = []
        deferred_files: list[str] = []
        yield from self._walk_tree([root_path], root_real, deferred_dirs, deferred_files)
        # Second phase: what symlinks lead to, once the real tree has claimed its files.
        while deferred_dirs or deferred_files:
            links, deferred_files = deferred_files, []
            for link in links:
                found = self._follow_file_link(link, root_real)
                if found is not None:
                    yield found
            pending, deferred_dirs = deferred_dirs, []
            for link in pending:
                if self._claim_dir_link(link, root_real):
                    yield from self._walk_tree([link], root_real, deferred_dirs, deferred_files)

    def _walk_tree(
        self, stack: list[str], root_real: str, deferred_dirs: list[str], deferred_files: list[str]
    ) -> Iterator[WalkRow]:
        # Iterative depth-first walk: deep trees never hit the recursion limit.
        while stack:
            folder = stack.pop()
            files, subdirs = self._list_folder(folder, deferred_dirs, deferred_files)
            yield from files
            stack.extend(reversed(subdirs))  # reversed so folders are visited in name order

    def _list_folder(
        self, folder: str, deferred_dirs: list[str], deferred_files: list[str]
    ) -> tuple[list[WalkRow], list[str]]:
        # The hot loop of a rescan (34k models: most of a no-op scan's time). Per entry it asks the
        # DirEntry's cached d_type, never stat, except once per model and once per folder; names are
        # checked with str methods on the whole name; rows are plain tuples; only what is yielded is sorted.
        rows: list[WalkRow] = []
        subdirs: list[str] = []
        # Listed through a descriptor of the folder, each entry's stat is an fstatat of its name in that
        # folder rather than a lookup of its whole path from "/" (a tenth of the listing-and-stat time here,
        # more on a deep share). Entries' own .path is then only their name: paths are prefix + name.
        prefix = folder if folder.endswith(os.sep) else folder + os.sep
        try:
            fd = os.open(folder, _DIR_FLAGS) if _SCANDIR_FD else None
        except OSError as exc:
            self.problem(folder, _oserror_reason(exc, "list folder"))
            return rows, subdirs
        try:
            try:
                # Read the whole listing before yielding anything: one open file descriptor at a
                # time, and none held while the consumer works on what we yield.
                with os.scandir(folder if fd is None else fd) as it:
                    entries = list(it)
            except OSError as exc:
                self.problem(folder, _oserror_reason(exc, "list folder"))
                return rows, subdirs
            return self._sort_listing(entries, prefix, deferred_dirs, deferred_files)  # stats need fd open
        finally:
            if fd is not None:
                os.close(fd)

    def _sort_listing(
        self, entries: list[os.DirEntry[str]], prefix: str, deferred_dirs: list[str], deferred_files: list[str]
    ) -> tuple[list[WalkRow], list[str]]:
        rows: list[WalkRow] = []
        subdirs: list[str] = []
        rules: VolumeRules = self._rules
        exact = rules.exact
        suffixes = model_suffixes()
        models: list[os.DirEntry[str]] = []
        dirs: list[os.DirEntry[str]] = []
        links: list[os.DirEntry[str]] = []
        # Names that may be a model's sidecar (any kind of entry: the planner's test is lexists). On a case-
        # or normalisation-insensitive volume `.gear.stl.thumbnail.png` is the sidecar of `Gear.stl` too (the
        # file system says so; a rename by case leaves the sidecar's spelling behind); the suffix is ASCII
        # without a "k" or "s", so lower() of the last 14 characters finds every name whose key ends with it.
        sidecars: list[str] = []
        for entry in entries:
            name = entry.name
            try:
                if name[0] == "." and (
                    name.endswith(_SIDECAR_SUFFIX) or (not exact and name[-_SIDECAR_LEN:].lower() == _SIDECAR_SUFFIX)
                ):
                    sidecars.append(name)
                    if entry.is_file(follow_symlinks=False):
                        continue  # a sidecar (never a model); a folder or link so named is handled below
                if entry.is_file(follow_symlinks=False):
                    if name.lower().endswith(suffixes) and not (name[0] in ".~" and is_ignored_name(name)):
                        models.append(entry)
                elif entry.is_dir(follow_symlinks=False):
                    if not is_ignored_dir(name):
                        dirs.append(entry)
                elif entry.is_symlink():
                    links.append(entry)  # decided after the real tree (see module docstring)
                # else a FIFO, socket or device: a reader would block or fail on it
            except OSError as exc:
                self.problem(prefix + entry.name, _oserror_reason(exc, "stat file"))
        if models:
            if exact:
                listed = set(sidecars)
            else:
                key = rules.key
                listed = {key(n) for n in sidecars}
            seen_files = self._seen_files
            for entry in models:
                name = entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    self.problem(prefix + name, _oserror_reason(exc, "stat file"))
                    continue
                if not S_ISREG(st.st_mode):
                    continue  # replaced since the listing by something a reader would block or fail on
                seen_files.add((st.st_dev, st.st_ino))
                sidecar_name = f".{name}{_SIDECAR_SUFFIX}"
                has_sidecar = (sidecar_name if exact else rules.key(sidecar_name)) in listed
                rows.append((prefix + name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, has_sidecar))
            rows.sort()  # by path, i.e. by name within the folder: paths are unique, so no tie reaches a bool
        if dirs:
            dirs.sort(key=_entry_name)  # claimed in name order: of two names for one folder, the first is walked
            for entry in dirs:
                try:
                    if self._claim_dir(entry.stat(follow_symlinks=False)):
                        subdirs.append(prefix + entry.name)
                except OSError as exc:
                    self.problem(prefix + entry.name, _oserror_reason(exc, "stat file"))
        if links:
            links.sort(key=_entry_name)
            for entry in links:
                name = entry.name
                if not is_ignored_dir(name):  # cheap to skip litter now
                    (deferred_files if is_model_name(name) else deferred_dirs).append(prefix + name)
        return rows, subdirs

    def _claim_dir(self, st: os.stat_result) -> bool:
        """Record a folder as walked; False if it already was (cycle, bind mount, nested root)."""
        key = (st.st_dev, st.st_ino)
        if key in self._seen_dirs:
            return False
        self._seen_dirs.add(key)
        return True

    def _link_target(self, link: str, root_real: str, *, is_model: bool) -> os.stat_result | None:
        """Stat a symlink's target if it is allowed to be followed, else None."""
        real = os.path.realpath(link)
        if not _is_inside(real, root_real) or _crosses_ignored_dir(real, root_real):
            log.debug("not following %s: it leads to %s, outside the root or into a skipped folder", link, real)
            return None
        try:
            return os.stat(link)
        except FileNotFoundError:
            # Only a model-named link is worth a report; a dangling link to anything else is
            # none of our business.
            if is_model:
                self.problem(link, "broken symlink: its target does not exist")
        except OSError as exc:
            self.problem(link, _oserror_reason(exc, "follow symlink"))
        return None

    def _follow_file_link(self, link: str, root_real: str) -> WalkRow | None:
        st = self._link_target(link, root_real, is_model=True)
        if st is None:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        key = (st.st_dev, st.st_ino)
        if key in self._seen_files:
            return None  # the real file was already found; one thumbnail per content file
        self._seen_files.add(key)
        return (link, st.st_size, st.st_mtime_ns, st.st_ctime_ns, None)

    def _claim_dir_link(self, link: str, root_real: str) -> bool:
        st = self._link_target(link, root_real, is_model=False)
        if st is None:
            return False
        # Not a folder (a link to a non-model file), a cycle, or a folder already walked
        # through its real path: nothing to follow.
        return stat.S_ISDIR(st.st_mode) and self._claim_dir(st)


def iter_model_files(
    roots: Sequence[StrPath],
    *,
    on_problem: Callable[[WalkProblem], None] | None = None,
    volumes: Volumes | None = None,
) -> Iterator[FoundFile]:
    """Yield every model file under the roots, each once.

    Args:
        roots: Folders to walk (a single model file is accepted as a root too). Nested or repeated
            roots are fine.
        on_problem: Called with each :class:`WalkProblem` (missing root, unreadable or vanished
            folder, file vanished before stat, broken symlink). Without it, problems are only
            logged at debug level.
        volumes: The roots' volumes (:class:`~.pathcanon.Volumes`): whether a model has its sidecar is
            then decided by the volume's rules for names. Without it, names compare byte for byte.

    Yields:
        :class:`FoundFile` with an absolute, normalised (not symlink-resolved) path and the file's
        size, ``mtime_ns`` and ``ctime_ns``. Order: roots in the order given, then depth-first in
        name order, symlinked entries after the real tree.
    """
    for row in iter_walk_rows(roots, on_problem=on_problem, volumes=volumes):
        yield FoundFile(*row)


def iter_walk_rows(
    roots: Sequence[StrPath],
    *,
    on_problem: Callable[[WalkProblem], None] | None = None,
    volumes: Volumes | None = None,
) -> Iterator[WalkRow]:
    """:func:`iter_model_files` yielding plain :data:`WalkRow` tuples: for a caller that looks at most
    rows once and in bulk (the rescan's comparison in SQL), and makes a :class:`FoundFile` of the few
    that need more (``FoundFile(*row)``). Same files, same order, same problems."""
    walker = _Walker(on_problem, volumes)
    for root in roots:
        yield from walker.walk_root(root)


def find_model_files(roots: Sequence[StrPath]) -> tuple[list[FoundFile], list[WalkProblem]]:
    """Walk the roots completely and return what was found and what could not be looked at.

    Args:
        roots: As for :func:`iter_model_files`.

    Returns:
        ``(files, problems)``.
    """
    problems: list[WalkProblem] = []
    files = list(iter_model_files(roots, on_problem=problems.append))
    return files, problems
