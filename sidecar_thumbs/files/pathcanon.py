"""One spelling per file: paths as the volume spells them, compared by the volume's own rules.

macOS volumes (APFS, HFS+, and SMB shares of them) are case-insensitive and Unicode-normalisation-
insensitive by default: ``Gear.stl``, ``gear.stl`` and ``Gear.STL`` are one file, and so are ``café.stl``
typed as NFC (``é``) or NFD (``e`` + U+0301). FSEvents reports the on-disk spelling, an SMB client or an
asset manager may send another, and a case-only rename may arrive as delete + create. Stored and compared
byte for byte, those spellings make a second row, an extra render and a stale missing row.

So every path is turned into its on-disk spelling before it reaches the database (:meth:`Volumes.canonical`)
and two spellings are compared by :meth:`VolumeRules.key`, whose rules are probed once per volume
(:func:`probe_rules`, its answer kept by the caller's :class:`~.volume_identity.RulesCache`) rather than
guessed from the platform: an exFAT stick on Linux is case-insensitive, a case-sensitive APFS volume on a
Mac is not.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sidecar_thumbs.errors import DatabaseError
from sidecar_thumbs.files.volume_identity import RulesCache, volume_identity

__all__ = ["SENSITIVE", "VolumeRules", "Volumes", "is_probe_name", "probe_rules", "rules_from_names"]

log = logging.getLogger(__name__)

# The probe's name: hidden, not a model, not one of our sidecar or temp names (so no watcher, walk or
# `clean` ever acts on it), with a letter that has a case and a character that has two normal forms.
_PROBE_STEM = ".sidecar-thumbs-probe-"
_PROBE_TAIL = "Xé"  # NFC é (U+00E9)


@dataclass(frozen=True, slots=True)
class VolumeRules:
    """How a volume compares names. Both False: byte for byte (ext4, case-sensitive APFS)."""

    case_insensitive: bool = False
    norm_insensitive: bool = False

    @property
    def exact(self) -> bool:
        """True when two spellings are the same file only if they are the same string."""
        return not (self.case_insensitive or self.norm_insensitive)

    def key(self, path: str) -> str:
        """The form under which two spellings of one name (or path) are equal on this volume.

        ``lower()`` rather than ``casefold()``: volumes fold case one character at a time (exFAT's upcase
        table, APFS), so ``straße`` and ``STRASSE`` stay two files there, and must here.
        """
        if self.norm_insensitive:
            path = unicodedata.normalize("NFD", path)
        if self.case_insensitive:
            path = path.lower()
        return path

    def describe(self) -> str:
        if self.exact:
            return "case- and normalisation-sensitive"
        case = "case-insensitive" if self.case_insensitive else "case-sensitive"
        norm = "normalisation-insensitive" if self.norm_insensitive else "normalisation-sensitive"
        return f"{case}, {norm}"


SENSITIVE = VolumeRules()


def is_probe_name(name: str) -> bool:
    """Whether a name is one of our probe files (left behind only if we were killed mid-probe)."""
    return name.startswith(_PROBE_STEM)


def _swap_case(name: str) -> str:
    return name.swapcase()


def probe_rules(root: str, *, cache: RulesCache | None = None) -> VolumeRules | None:
    """Find out how the volume holding ``root`` compares names, by asking it.

    Creates a hidden file with a known name in ``root``, looks it up under its case-swapped and its NFD
    spelling, and removes it again. With a ``cache``, what a probe found is kept with the volume's identity
    (:mod:`.volume_identity`), and the file is written again only on another volume.

    Returns:
        The rules, or None when the probe could not run and the root's own names tell nothing either (the
        root is absent, or read-only and without a name to try): the caller then treats the volume as
        exact, which at worst repeats the old byte-for-byte behaviour.
    """
    try:
        st = os.stat(root)
    except OSError:
        return None
    identity = volume_identity(root, st) if cache is not None else None
    if cache is not None and identity is not None:
        known = cache.cached_volume_rules(root, identity.as_text())
        if known is not None:
            return VolumeRules(*known)
    if not st.st_mode & 0o222:
        # Marked read-only for everyone: root could write there anyway, but must not.
        return rules_from_names(root)
    name = f"{_PROBE_STEM}{os.urandom(4).hex()}-{_PROBE_TAIL}"
    path = os.path.join(root, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        log.debug("cannot probe how %s compares names: %s; trying its own names", root, exc.strerror or exc)
        return rules_from_names(root)
    try:
        os.close(fd)
        # Existence, not (st_dev, st_ino): FUSE volumes give each spelling its own inode number, and
        # nothing else can hold a twin of a random name created a moment ago.
        case = os.path.lexists(os.path.join(root, _swap_case(name)))
        norm = os.path.lexists(os.path.join(root, unicodedata.normalize("NFD", name)))
    except OSError as exc:
        log.debug("probing %s failed: %s", root, exc.strerror or exc)
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    if cache is not None and identity is not None:
        try:
            cache.remember_volume_rules(root, identity.as_text(), (case, norm))
        except DatabaseError as exc:  # e.g. locked by the asset manager: the next start probes again
            log.debug("could not keep what the probe of %s found: %s", root, exc.message)
    return VolumeRules(case_insensitive=case, norm_insensitive=norm)


def rules_from_names(root: str) -> VolumeRules | None:
    """The rules, read off names already in ``root`` (a read-only share): a name looked up case-swapped,
    and one with accents looked up in its other normal form. An aspect no name can test counts as exact.

    Returns:
        The rules, or None when the root cannot be listed or no name has a case or an accent.
    """
    try:
        names = os.listdir(root)
    except OSError:
        return None
    listed = set(names)

    def twin_found(spell: Callable[[str], str]) -> bool | None:
        for n in names:
            other = spell(n)
            if other != n and other not in listed:  # a twin that is not itself an entry of its own
                return os.path.lexists(os.path.join(root, other))
        return None

    case = twin_found(str.swapcase)
    norm = twin_found(lambda n: unicodedata.normalize("NFD" if unicodedata.is_normalized("NFC", n) else "NFC", n))
    if case is None and norm is None:
        return None
    return VolumeRules(case_insensitive=bool(case), norm_insensitive=bool(norm))


def _getpath(path: str) -> str | None:
    """macOS: the path the kernel holds for the file (every component as stored), via ``F_GETPATH``.

    Opened ``O_NOFOLLOW`` (a symlink is looked at itself, never its target) and ``O_NONBLOCK`` (a FIFO
    named like a model must not block us). None where unavailable or on any error.
    """
    f_getpath = getattr(__import__("fcntl"), "F_GETPATH", None) if sys.platform == "darwin" else None
    if f_getpath is None:
        return None
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        import fcntl

        raw = fcntl.fcntl(fd, f_getpath, b"\0" * 1024)
    except OSError:
        return None
    finally:
        os.close(fd)
    return os.fsdecode(raw.split(b"\0", 1)[0])


class Volumes:
    """The roots as spelled on disk, each with its volume's rules; canonicalises paths under them.

    Args:
        roots: Absolute roots as configured (any spelling).
        rules: One :class:`VolumeRules` per root (None: not known yet, treated as exact).
        getpath: The kernel's spelling of an existing path (macOS ``F_GETPATH``); a seam for tests.
        cache: Where :meth:`redetect` keeps and finds what probes found (see :func:`probe_rules`).

    Folder listings are cached until :meth:`forget` so that a pass over thousands of paths in few folders
    (the asset manager's table) lists each folder once; callers forget once per pass or batch of events.
    """

    def __init__(
        self,
        roots: Sequence[str],
        rules: Sequence[VolumeRules | None],
        *,
        getpath: Callable[[str], str | None] = _getpath,
        cache: RulesCache | None = None,
    ) -> None:
        self._getpath = getpath
        self._cache = cache
        self._listings: dict[str, tuple[frozenset[str], dict[str, list[str]]] | None] = {}
        self._rules = list(rules)
        self.typed_roots: tuple[str, ...] = tuple(os.path.abspath(r) for r in roots)
        self.roots = tuple(self._canonical_root(r, self._rules[i] or SENSITIVE) for i, r in enumerate(self.typed_roots))

    @classmethod
    def detect(cls, roots: Sequence[str], *, cache: RulesCache | None = None) -> Volumes:
        """Probe each root's volume (see :func:`probe_rules`; with a ``cache``, once per volume, not per
        run) and log what was found."""
        rules = []
        for root in roots:
            found = probe_rules(os.path.abspath(root), cache=cache)
            if found is not None and not found.exact:
                log.info("%s is on a %s volume: paths are compared by its rules", root, found.describe())
            rules.append(found)
        return cls(roots, rules, cache=cache)

    def redetect(self) -> None:
        """Probe roots whose probe could not run before (e.g. the volume was not mounted at start).

        The root keeps the spelling it has (the daemon's bookkeeping is keyed by it); paths below it are
        canonicalised from now on.
        """
        for i, root in enumerate(self.roots):
            if self._rules[i] is None:
                found = probe_rules(root, cache=self._cache)
                if found is not None:
                    self._rules[i] = found
                    if not found.exact:
                        log.info("%s is on a %s volume: paths are compared by its rules", root, found.describe())
                    if self._canonical_root(root, found) != root:
                        log.warning("root %s is spelled otherwise on disk; configure it that way", root)

    def respelled_roots(self) -> list[tuple[str, str]]:
        """(as configured, as on disk) for each root configured in another spelling than the volume's."""
        return [(t, r) for t, r in zip(self.typed_roots, self.roots, strict=True) if t != r]

    # -- rules -----------------------------------------------------------------------------------------

    def _root_of(self, path: str) -> tuple[str, VolumeRules] | None:
        """The innermost root holding ``path`` (compared by that root's rules), with its rules."""
        best: tuple[str, VolumeRules] | None = None
        for root, rules in zip(self.roots, self._rules, strict=True):
            r = rules or SENSITIVE
            kr, kp = r.key(root.rstrip(os.sep)), r.key(path)
            if (kp == kr or kp.startswith(kr + os.sep)) and (best is None or len(root) > len(best[0])):
                best = (root, r)
        return best

    def rules_for(self, path: str) -> VolumeRules:
        """The rules of the root holding ``path``; exact outside every root."""
        found = self._root_of(path)
        return found[1] if found is not None else SENSITIVE

    @property
    def all_exact(self) -> bool:
        """True when every root compares byte for byte (nothing here needs to do anything)."""
        return all(r is None or r.exact for r in self._rules)

    def key(self, path: str) -> str:
        """``path`` in the form two spellings of one file share (by the rules of its root)."""
        return self.rules_for(path).key(path)

    def same(self, a: str, b: str) -> bool:
        """Whether two paths name the same entry on their volume (by its rules; no disk access)."""
        if a == b:
            return True
        rules = self.rules_for(a)
        return not rules.exact and rules.key(a) == rules.key(b)

    # -- spellings -------------------------------------------------------------------------------------

    def forget(self) -> None:
        """Drop cached folder listings (call once per pass or per batch of events)."""
        self._listings.clear()

    def canonical(self, path: str) -> str:
        """``path`` as the volume spells it: each existing component as listed on disk.

        Components that do not exist are kept as given (a deleted file keeps the spelling it was known by).
        Paths outside every root and on exact volumes come back unchanged except for the root's spelling.
        """
        path = os.path.abspath(path)
        found = self._root_of(path)
        if found is None:
            return path
        root, rules = found
        # By components, not characters: an NFD spelling of the root is longer than its NFC one.
        parts = [p for p in path.split(os.sep)[len(root.rstrip(os.sep).split(os.sep)) :] if p]
        if not parts:
            return root
        if rules.exact:
            return os.path.join(root, *parts)
        from_kernel = self._from_getpath(path, len(parts), rules)
        if from_kernel is not None:
            return os.path.join(root, *from_kernel)
        out = root
        for i, part in enumerate(parts):
            name = self._on_disk_name(out, part, rules)
            if name is None:
                return os.path.join(out, *parts[i:])
            out = os.path.join(out, name)
        return out

    def listed(self, path: str) -> bool:
        """Whether the folder of ``path`` lists exactly this name now (not another spelling of it)."""
        head, tail = os.path.split(path)
        try:
            return tail in os.listdir(head)
        except OSError:
            return False

    def canonical_parent(self, path: str) -> str:
        """The folder canonicalised, the last name kept: for the old name of a delete or a move, whose
        folder may hold the new spelling of the same name by now."""
        head, tail = os.path.split(os.path.abspath(path))
        return os.path.join(self.canonical(head), tail)

    def _from_getpath(self, path: str, depth: int, rules: VolumeRules) -> list[str] | None:
        """The last ``depth`` components as the kernel has them (macOS), if they are spellings of ours.

        ``F_GETPATH`` resolves symlinks in the ancestors (``/tmp`` → ``/private/tmp``), so only the tail
        below the root is taken, and only when every component matches the given one by the rules.
        """
        real = self._getpath(path)
        if real is None:
            return None
        tail = real.split(os.sep)[-depth:]
        given = path.split(os.sep)[-depth:]
        if len(tail) != depth or any(rules.key(a) != rules.key(b) for a, b in zip(tail, given, strict=True)):
            return None
        return tail

    def _on_disk_name(self, folder: str, name: str, rules: VolumeRules) -> str | None:
        listing = self._listing(folder)
        if listing is None:
            return None
        names, by_key = listing
        if name in names:
            return name
        spellings = by_key.get(rules.key(name), [])
        if len(spellings) == 1:
            return spellings[0]
        return None  # absent, or ambiguous (two names the rules cannot tell apart): keep what was given

    def _listing(self, folder: str) -> tuple[frozenset[str], dict[str, list[str]]] | None:
        if folder in self._listings:
            return self._listings[folder]
        rules = self.rules_for(folder)
        try:
            names = os.listdir(folder)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                log.debug("cannot list %s to find the on-disk spelling: %s", folder, exc.strerror)
            self._listings[folder] = None
            return None
        by_key: dict[str, list[str]] = {}
        for n in names:
            by_key.setdefault(rules.key(n), []).append(n)
        entry = (frozenset(names), by_key)
        self._listings[folder] = entry
        return entry

    def _canonical_root(self, root: str, rules: VolumeRules) -> str:
        """A configured root in the volume's spelling (each component matched in its parent's listing).

        The parents of a root are on other volumes as often as not (``/Volumes``); a component whose
        parent cannot be listed, or that has no single match, is kept as typed.
        """
        if rules.exact:
            return root
        parts = root.split(os.sep)
        out = os.sep
        for part in parts[1:]:
            if not part:
                continue
            try:
                names = os.listdir(out)
            except OSError:
                names = []
            if part not in names:
                matches = [n for n in names if rules.key(n) == rules.key(part)]
                part = matches[0] if len(matches) == 1 else part
            out = os.path.join(out, part)
        if out != root:
            log.info("root %s is spelled %s on disk; using that", root, out)
        return out
