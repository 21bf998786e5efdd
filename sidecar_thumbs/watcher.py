"""File-system events → settled paths.

A watchdog observer (FSEvents chosen explicitly on macOS, inotify on Linux, polling when asked)
only *marks* paths; it never touches the database (its callbacks run on the observer's thread).
The daemon's loop drains the marks and decides. Nothing here is trusted to be complete: FSEvents
coalesces and drops events (watchdog ignores its must-rescan flag, watchdog#124), renames arrive
unpaired on macOS (watchdog#723), and "created" fires before a copy is done (watchdog#586) — hence the
settle window here and the periodic full rescan in the daemon.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver

from sidecar_thumbs.discover import is_ignored_dir, is_model_name

__all__ = ["EventKind", "FileEvent", "Settler", "Watcher"]

log = logging.getLogger(__name__)


class EventKind(StrEnum):
    CHANGED = "changed"  # created, modified, closed: settle, then look
    DELETED = "deleted"
    MOVED = "moved"


@dataclass(frozen=True)
class FileEvent:
    kind: EventKind
    path: str
    is_dir: bool
    dest: str | None = None  # for MOVED


def _decode(p: str | bytes) -> str:
    return os.fsdecode(p)


def _relevant(path: str, is_dir: bool) -> bool:
    """Events for our own sidecars, temp files and litter are dropped at the door (our writes would
    otherwise wake the daemon for every thumbnail it makes)."""
    parts = path.split(os.sep)
    if any(is_ignored_dir(p) for p in parts[:-1]):
        return False
    return (not is_ignored_dir(parts[-1])) if is_dir else is_model_name(parts[-1])


class _Handler(FileSystemEventHandler):
    def __init__(self, sink: EventQueue) -> None:
        self.sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        src = _decode(event.src_path)
        if kind == "moved":
            dest = _decode(event.dest_path)
            src_ok, dest_ok = _relevant(src, event.is_directory), _relevant(dest, event.is_directory)
            if src_ok and dest_ok:
                self.sink.put(FileEvent(EventKind.MOVED, src, event.is_directory, dest))
            elif src_ok:  # renamed to a non-model name (e.g. .bak): gone as a model
                self.sink.put(FileEvent(EventKind.DELETED, src, event.is_directory))
            elif dest_ok:  # a temp name renamed into place (editors, slicers, rsync): a new file
                self.sink.put(FileEvent(EventKind.CHANGED, dest, event.is_directory))
        elif kind == "deleted":
            if _relevant(src, event.is_directory):
                self.sink.put(FileEvent(EventKind.DELETED, src, event.is_directory))
        # A folder that appears (copied in, or moved in from outside a root) brings files whose own
        # events may never come; the daemon walks it. Other folder events say nothing new.
        elif (
            kind in ("created", "modified", "closed", "attrib")
            and _relevant(src, event.is_directory)
            and not (event.is_directory and kind != "created")
        ):
            self.sink.put(FileEvent(EventKind.CHANGED, src, event.is_directory))


class EventQueue:
    """Thread-safe hand-over from the observer thread to the daemon loop, with a wake-up."""

    def __init__(self) -> None:
        self._items: deque[FileEvent] = deque()
        self.wake = threading.Event()

    def put(self, event: FileEvent) -> None:
        self._items.append(event)
        self.wake.set()

    def drain(self) -> list[FileEvent]:
        out = []
        while self._items:
            out.append(self._items.popleft())
        return out


def _observer_class(polling: bool) -> type[BaseObserver]:
    if polling:
        from watchdog.observers.polling import PollingObserver

        return PollingObserver
    if sys.platform == "darwin":
        # Explicitly FSEvents: watchdog's generic Observer silently falls back to kqueue, which
        # holds one descriptor per file — fatal for 34,000 files under launchd's 256-file limit.
        from watchdog.observers.fsevents import FSEventsObserver

        return FSEventsObserver
    if sys.platform.startswith("linux"):
        from watchdog.observers.inotify import InotifyObserver

        return InotifyObserver
    from watchdog.observers import Observer

    return Observer


class Watcher:
    """Watches ``roots`` recursively and puts :class:`FileEvent` s on ``queue``."""

    def __init__(self, roots: Sequence[str], queue: EventQueue, *, polling: bool = False) -> None:
        self.roots = list(roots)
        self.queue = queue
        self.polling = polling
        self.restarts = 0
        self._observer: BaseObserver | None = None

    @property
    def kind(self) -> str:
        return _observer_class(self.polling).__name__

    def start(self) -> None:
        # Each concrete observer supplies its own emitter class; only the base class takes one.
        observer = _observer_class(self.polling)()  # type: ignore[call-arg]
        handler = _Handler(self.queue)
        for root in self.roots:
            if os.path.isdir(root):
                observer.schedule(handler, root, recursive=True)
            else:
                log.warning("not watching %s: not a folder", root)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)

    def alive(self) -> bool:
        obs = self._observer
        return obs is not None and obs.is_alive() and all(e.is_alive() for e in getattr(obs, "emitters", ()))

    def ensure_alive(self) -> bool:
        """Restart a dead observer (e.g. after the share went away and came back). True if restarted."""
        if self.alive():
            return False
        log.warning("file watcher (%s) stopped; restarting it", self.kind)
        try:
            self.stop()
        except Exception:  # a dead observer may fail to stop cleanly; a new one replaces it anyway
            log.debug("stopping the dead watcher failed", exc_info=True)
        try:
            self.start()
        except OSError as exc:
            log.error("cannot restart the file watcher: %s; relying on rescans", exc)
            return False
        self.restarts += 1
        return True


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
