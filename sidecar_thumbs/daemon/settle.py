"""The settle window: a path that had events is looked at only once it has been quiet, and its stat still,
for a while ("created" fires before a copy is done, watchdog#586).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Settler"]


@dataclass
class _Entry:
    last_event: float
    stat: tuple[int, int, int] | None
    stat_since: float


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Settler:
    """Debounce: a path is due once it has had no event for ``settle`` seconds *and* its
    ``(size, mtime_ns, ctime_ns)`` is unchanged across two looks ``settle`` seconds apart.

    One look right after a "created" event is not enough: a 50 MB copy over SMB fires dozens of
    events and a one-shot size check takes half a file (namer#300); Windows clients set the final
    size up front and only mtime moves (snowfs#176).
    """

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def touch(self, path: str, now: float) -> None:
        e = self._entries.get(path)
        st = _stat(path)
        if e is None:
            self._entries[path] = _Entry(now, st, now)
        else:
            e.last_event = now
            if st != e.stat:
                e.stat, e.stat_since = st, now

    def forget(self, path: str) -> None:
        self._entries.pop(path, None)

    def forget_under(self, folder: str) -> None:
        prefix = folder.rstrip(os.sep) + os.sep
        for p in [p for p in self._entries if p.startswith(prefix)]:
            del self._entries[p]

    def next_due_in(self, now: float) -> float | None:
        """Seconds until the earliest entry may become due (for the loop's sleep)."""
        if not self._entries:
            return None
        return max(0.0, min(max(e.last_event, e.stat_since) + self.settle for e in self._entries.values()) - now)

    def due(self, now: float) -> list[str]:
        """Paths that have settled; they are forgotten here. Vanished paths are dropped too."""
        out = []
        for path, e in list(self._entries.items()):
            if now - e.last_event < self.settle or now - e.stat_since < self.settle:
                continue
            st = _stat(path)
            if st is None:
                del self._entries[path]  # gone; its delete event (or the rescan) deals with it
            elif st != e.stat:
                e.stat, e.stat_since = st, now  # still changing: look again one window later
            else:
                del self._entries[path]
                out.append(path)
        return out
