"""The daemon's view of its roots: which are online, since when, and what changed at this sweep.

The rule (what makes a root offline) is :mod:`.roots`; this module keeps the state over time. A change is
logged once and written to the state database (``st_roots``) so ``status`` in another process shows
"offline since …"; the daemon acts on the :class:`RootChange` it gets back (detach or attach the root's
watch, rescan a root that is back).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sidecar_thumbs.errors import DatabaseLockedError
from sidecar_thumbs.files.roots import RootState, check_root, model_is_gone, root_identity, root_of
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.units import format_duration

__all__ = ["RootChange", "RootStates"]

log = logging.getLogger("sidecar_thumbs.daemon")


@dataclass(frozen=True)
class RootChange:
    """A root went offline (``back`` False) or came back online (``back`` True) — or, back with another
    identity, was replaced under a running watch (a remount faster than a sweep)."""

    state: RootState
    back: bool


class RootStates:
    """Each root's :class:`~.roots.RootState`, checked cheaply at every sweep."""

    def __init__(self, roots: Sequence[str], db: StateDB) -> None:
        self.roots = list(roots)
        self.db = db
        self._states: dict[str, RootState] = {}
        self._offline_at: dict[str, float] = {}  # monotonic, for "back after …"
        self._known_offline: dict[str, int] = {}  # rows present under an offline root when it went

    def __getitem__(self, root: str) -> RootState:
        return self._states[root]

    def __iter__(self) -> Iterator[RootState]:
        return iter(self._states[r] for r in self.roots if r in self._states)

    def online(self) -> list[str]:
        return [r for r in self.roots if r not in self._states or self._states[r].online]

    def offline(self) -> list[str]:
        return [r for r in self.roots if r in self._states and not self._states[r].online]

    def walkable(self) -> list[str]:
        """Roots a rescan walks: the online ones, and those offline by a walk's verdict (only a walk that
        is believed again brings them back)."""
        return [r for r in self.roots if r not in self._states or self._states[r].online or self[r].after_walk]

    def start(self, *, believe_empty: bool = False) -> list[RootChange]:
        """The first look at every root (the daemon's start). ``believe_empty``: --allow-mass-missing."""
        self.db.forget_roots_except(self.roots)
        changes = []
        for root in self.roots:
            known = 0 if believe_empty else self.db.present_under(root)
            change = self.set(check_root(root, known=known))
            if change is not None:
                changes.append(change)
        return changes

    def is_gone(self, path: str) -> bool:
        """Whether an absent model was deleted: its root is online and still the same volume."""
        root = root_of(path, self.roots)
        if root is None:
            return not os.path.lexists(path)
        state = self._states.get(root)
        return model_is_gone(path, {root: state.identity if state is not None and state.online else None})

    def check(self) -> list[RootChange]:
        """The per-sweep look: one stat per online root; a stat and a peek at the listing per offline one."""
        changes = []
        for root in self.roots:
            prev = self._states[root]
            if prev.online:
                if root_identity(root) == prev.identity:
                    continue
                state = check_root(root, known=self.db.present_under(root))
                if state.online:
                    log.info("root %s is another folder now (remounted?); watching it anew", root)
                    self._states[root] = state
                    changes.append(RootChange(state, back=True))
                    continue
            elif prev.after_walk:
                continue  # only the next rescan's walk can bring it back
            else:
                state = check_root(root, known=self._known_offline.get(root, 0))
                if state.overridable:  # empty: do the rows still say models were there (a scan with
                    # --allow-mass-missing may have marked them missing meanwhile)?
                    self._known_offline[root] = self.db.present_under(root)
                    state = check_root(root, known=self._known_offline[root])
                if not state.online and state.reason != prev.reason:
                    self._states[root] = state  # e.g. an empty mount point, then nothing: still away
                    self._record(state)
                    continue
            change = self.set(state)
            if change is not None:
                changes.append(change)
        return changes

    def _record(self, state: RootState) -> None:
        """Write the state for ``status``. What the daemon does follows the state in memory: a database
        another process holds locked delays the record, never the daemon's reaction."""
        try:
            self.db.set_root_state(state.root, state.online, state.reason)
        except DatabaseLockedError as exc:
            log.warning("could not record that root %s is %s: %s", state.root,
                        "online" if state.online else "offline", exc.message)  # fmt: skip

    def set(self, state: RootState) -> RootChange | None:
        """Record a root's state; a change is logged once and written for ``status``. Returns the change
        (None when the root was already in this state, or at the first look when it is online)."""
        root = state.root
        prev = self._states.get(root)
        self._states[root] = state
        if prev is not None and prev.online == state.online:
            return None
        self._record(state)
        if not state.online:
            self._offline_at[root] = time.monotonic()
            self._known_offline[root] = self.db.present_under(root)
            hint = f" (if they were really deleted: sidecar-thumbs scan --allow-mass-missing {root})"
            log.warning("root %s offline: %s; nothing under it is marked missing until it is back%s", root,
                        state.reason, hint if state.overridable else "")  # fmt: skip
            return RootChange(state, back=False)
        if prev is None:
            return None  # online at start: the start-up scan walks it, the watcher starts with it
        away = time.monotonic() - self._offline_at.pop(root, time.monotonic())
        self._known_offline.pop(root, None)
        log.info("root %s back online after %s; watching it again", root, format_duration(away))
        return RootChange(state, back=True)
