"""A library root is a volume: present, or offline — a state of the root, never a deletion of its models.

The library lives on a volume that is ejected, sleeps, and mounts after the service starts. A root that
does not exist, is not a folder, cannot be read, is an empty folder where a volume should be mounted, or
suddenly lists no models (or loses more than a set share of them in one walk) is *offline*: nothing under
it is marked missing, no asset-manager flag is cleared, no sidecar is deleted and no move is matched
against it. One-off commands stop with :class:`~.errors.RootOfflineError` (exit 1); the daemon waits.

Two kinds of check, both here so every command applies the same rule:

* :func:`check_root` — cheap (a stat, one folder listing's first entries, a mount-point test): run at
  every daemon sweep and before every one-off walk.
* :meth:`MassMissingGuard.verdict` — after a walk: a root that lists nothing, or lost too many models at
  once, is taken for a volume that is half there (an SMB hiccup, a wrong mount), not for a mass deletion,
  unless the user says so (``--allow-mass-missing``).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sidecar_thumbs.errors import RootOfflineError
from sidecar_thumbs.files.discover import is_ignored_dir, is_ignored_name, is_model_name
from sidecar_thumbs.types import ModelRow, ModelStatus, PlanRow

__all__ = [
    "MassMissingGuard",
    "RootState",
    "canonical_roots",
    "check_root",
    "model_is_gone",
    "offline_error",
    "present_by_root",
    "require_online",
    "root_identity",
    "root_of",
]

# How many entries of a root's listing are looked at to tell "empty" (or only litter such as
# .DS_Store) from "has content": one getdents call, whatever the size of the folder.
_EMPTY_PEEK = 16
# Where macOS mounts volumes: a root below /Volumes/NAME is offline while NAME is not a mount point.
_MAC_VOLUMES = "/Volumes"


@dataclass(frozen=True)
class RootState:
    """What is known about one root.

    Attributes:
        root: The root (canonical path).
        online: Whether its models may be looked at, and their absence believed.
        reason: Why it is offline (one line), else None.
        identity: ``(st_dev, st_ino)`` of the root folder when online: a different identity later means
            the volume was replaced (remounted, or a folder moved in its place) and the watcher must be
            attached anew.
        after_walk: Offline by the verdict of a walk (nothing listed, too many gone), not by a stat: only
            another walk can bring it back.
        overridable: Offline only because models the database knows are not listed: the user may say
            they were really deleted (``--allow-mass-missing``).
    """

    root: str
    online: bool
    reason: str | None = None
    identity: tuple[int, int] | None = None
    after_walk: bool = False
    overridable: bool = False


@dataclass(frozen=True)
class MassMissingGuard:
    """When a walk's losses say "the volume is half there" rather than "the user deleted models".

    Attributes:
        share: Offline when more than this share of a root's known models are gone in one walk …
        minimum: … and at least this many (small libraries change by large shares legitimately).
        allowed: The user confirmed a real mass deletion: let it through.
    """

    share: float = 0.5
    minimum: int = 100
    allowed: bool = False

    def verdict(self, root: str, *, found: int, known: int, missing: int) -> RootState | None:
        """The offline state a walk of ``root`` implies, or None when its result can be believed.

        Args:
            root: The walked root.
            found: Model files the walk listed.
            known: Rows under the root the database held as present before the walk.
            missing: Of those, how many the walk did not find.
        """
        if self.allowed or known == 0:
            return None
        if found == 0:
            reason = f"lists no models while the database holds {known} under it"
        elif missing >= self.minimum and missing > self.share * known:
            reason = (
                f"would lose {missing} of its {known} known models in one walk (more than "
                f"{self.share:.0%}; a volume half there?)"
            )
        else:
            return None
        return RootState(root, False, reason, after_walk=True, overridable=True)


def canonical_roots(roots: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Roots as real paths, each once, without roots inside other roots (order kept).

    ``lib`` and ``libl -> lib`` are one root; a root inside another adds nothing the outer walk does not
    see. Without this, the same model had two rows and was rendered twice under ``watch``.
    """
    out: list[str] = []
    for r in roots:
        real = os.path.realpath(os.path.abspath(os.fsdecode(os.fspath(r))))
        if real not in out:
            out.append(real)
    return [r for r in out if not any(o != r and _is_under(r, o) for o in out)]


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def root_of(path: str, roots: Sequence[str]) -> str | None:
    """The root holding ``path`` (the longest one), or None."""
    best = None
    for r in roots:
        if _is_under(path, r) and (best is None or len(r) > len(best)):
            best = r
    return best


def present_by_root(rows: Mapping[str, PlanRow | ModelRow], roots: Sequence[str]) -> dict[str, int]:
    """How many of ``rows`` (by path) are present (not missing) under each root: what a walk should find."""
    out: dict[str, int] = {}
    for path, row in rows.items():
        if row.status is not ModelStatus.MISSING:
            r = root_of(path, roots) or ""
            out[r] = out.get(r, 0) + 1
    return out


def root_identity(root: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the root now, or None when it cannot be stat'ed."""
    try:
        st = os.stat(root)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def model_is_gone(path: str, identities: Mapping[str, tuple[int, int] | None]) -> bool:
    """Whether a model that cannot be found was deleted, not merely out of reach.

    Absent, and its root is online and still the same volume (``identities``: each root's identity when
    it was last seen online, None while offline). Under an offline root, or a root whose volume was
    replaced (an empty mount point now stands there), nothing is gone.
    """
    if os.path.lexists(path):
        return False
    root = root_of(path, list(identities))
    if root is None:
        return True  # not under a known root: its absence is all there is to see
    ident = identities[root]
    return ident is not None and root_identity(root) == ident


def _unmounted_volume(root: str) -> str | None:
    """The volume a root under ``/Volumes/NAME`` needs, when that volume is not mounted."""
    if sys.platform != "darwin" and not os.path.isdir(_MAC_VOLUMES):
        return None
    base = _MAC_VOLUMES.rstrip(os.sep) + os.sep
    if not root.startswith(base) or len(root) == len(base):
        return None
    volume = base + root[len(base) :].split(os.sep, 1)[0]
    return None if os.path.ismount(volume) else volume


def _lists_nothing(root: str) -> bool:
    """Whether the folder holds nothing but litter (looks at its first few entries only)."""
    with os.scandir(root) as it:
        for i, entry in enumerate(it):
            name = entry.name
            if not (is_ignored_name(name) or is_ignored_dir(name)):
                return False
            if i >= _EMPTY_PEEK:
                return False  # a long listing of litter only is still not an empty mount point
    return True


# A launchd job reads a volume under /Volumes only with Full Disk Access, granted to the real interpreter
# binary (README: Full Disk Access); without it listing the root fails with EPERM, which is the usual case.
_PERMISSION_HINT = (
    "; grant Full Disk Access to the Python binary that runs the daemon (README)" if sys.platform == "darwin" else ""
)


def check_root(root: str, *, known: int = 0) -> RootState:
    """Tell whether ``root`` is online, cheaply: a stat, a mount-point test, its listing's first entries.

    Args:
        root: A canonical root (folder, or a single model file).
        known: Rows the database holds as present under it: an empty folder is offline only when the
            database says models were there (a new, empty library is simply empty).
    """
    volume = _unmounted_volume(root)
    try:
        st = os.stat(root)
    except FileNotFoundError:
        why = f"volume {volume} is not mounted" if volume else "does not exist"
        return RootState(root, False, why)
    except PermissionError:
        return RootState(root, False, "cannot be read: permission denied" + _PERMISSION_HINT)
    except OSError as exc:
        return RootState(root, False, f"cannot be read: {exc.strerror or exc}")
    identity = (st.st_dev, st.st_ino)
    if stat.S_ISREG(st.st_mode) and is_model_name(os.path.basename(root)):
        return RootState(root, True, identity=identity)  # a single model given as a root
    if not stat.S_ISDIR(st.st_mode):
        return RootState(root, False, "is not a folder")
    if volume is not None:
        return RootState(root, False, f"volume {volume} is not mounted (a folder stands in its place)")
    try:
        empty = _lists_nothing(root)
    except PermissionError:
        return RootState(root, False, "cannot be read: permission denied (cannot list the folder)" + _PERMISSION_HINT)
    except OSError as exc:
        return RootState(root, False, f"cannot be read: {exc.strerror or exc}")
    if empty and known > 0:
        if _on_parents_device(root, st):
            why = f"is an empty folder where a volume should be mounted (the database holds {known} models under it)"
        else:
            why = f"is empty while the database holds {known} models under it"
        return RootState(root, False, why, overridable=True)
    return RootState(root, True, identity=identity)


def _on_parents_device(root: str, st: os.stat_result) -> bool:
    """True when ``root`` is on its parent's device: not a mount point (an unmounted mount point)."""
    try:
        parent = os.stat(os.path.dirname(root.rstrip(os.sep)) or os.sep)
    except OSError:
        return False
    return parent.st_dev == st.st_dev and not os.path.ismount(root)


def require_online(
    roots: Sequence[str], *, known: Mapping[str, int] | None = None, allow_mass_missing: bool = False
) -> None:
    """Raise :class:`~.errors.RootOfflineError` naming every offline root (one-off commands, before a walk).

    Args:
        roots: Canonical roots.
        known: Rows present under each root in the database (an empty root is offline only when > 0).
        allow_mass_missing: The user confirmed that an emptied root was really emptied.
    """
    counts = {} if known is None or allow_mass_missing else known
    states = [check_root(r, known=counts.get(r, 0)) for r in roots]
    if not all(s.online for s in states):
        raise offline_error(states)


def offline_error(states: Iterable[RootState]) -> RootOfflineError:
    """The one-line error a one-off command stops with, naming each offline root and its reason."""
    offline = [s for s in states if not s.online]
    said = "; ".join(f"root {s.root} offline: {s.reason}" for s in offline)
    hint = ""
    if any(s.overridable for s in offline):
        hint = " — if those models were really deleted, run again with --allow-mass-missing"
    return RootOfflineError(f"{said}; nothing was marked missing{hint}")
