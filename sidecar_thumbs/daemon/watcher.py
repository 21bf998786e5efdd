"""Watching the library roots: file events are *marked*, never acted on here.

A watchdog observer (FSEvents chosen explicitly on macOS, inotify on Linux, polling when asked)
only *marks* paths (:mod:`.events`); it never touches the database (its callbacks run on the observer's
thread). The daemon's loop drains the marks and decides. Nothing here is trusted to be complete: FSEvents
coalesces and drops events (and says so with its must-scan-subdirs / dropped flags, which watchdog's
observer ignores, watchdog#124: :class:`RescanOnDroppedEvents` turns them into a rescan of that folder),
renames arrive unpaired on macOS (watchdog#723), and "created" fires before a copy is done (watchdog#586) —
hence the settle window (:mod:`.settle`) and the periodic full rescan in the daemon.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from watchdog.observers.api import BaseObserver

from sidecar_thumbs.daemon.events import EventKind, EventQueue, FileEvent, _decode, _Handler

__all__ = ["RescanOnDroppedEvents", "Watcher", "rescan_reason"]

log = logging.getLogger(__name__)


# FSEventStreamEventFlags (CoreServices/FSEvents.h). Read from the raw mask rather than NativeEvent's
# properties, whose names differ between watchdog versions (`must_scan_subdirs`, `is_user_dropped`, ...).
FSE_MUST_SCAN_SUBDIRS = 0x00000001
FSE_USER_DROPPED = 0x00000002
FSE_KERNEL_DROPPED = 0x00000004


def rescan_reason(flags: int) -> str | None:
    """Why FSEvents asks for a folder to be looked at again, or None when the event is an ordinary one.

    MustScanSubDirs: events under the path were coalesced away (e.g. too many at once); with UserDropped
    or KernelDropped the loss happened in our process's buffer or in the kernel's.
    """
    if flags & FSE_KERNEL_DROPPED:
        return "the kernel dropped events"
    if flags & FSE_USER_DROPPED:
        return "events were dropped before they reached us"
    if flags & FSE_MUST_SCAN_SUBDIRS:
        return "FSEvents coalesced events below it"
    return None


class RescanOnDroppedEvents:
    """Mixin for watchdog's ``FSEventsEmitter``: a "rescan this folder" flag becomes a call to
    :attr:`on_rescan` (the daemon rescans that folder at once), then the batch is handled as before.

    Kept apart from the emitter class so that it is tested on any platform with synthetic native events.
    """

    on_rescan: Callable[[str, str], None]  # (folder, reason); set by the factory below

    def queue_events(self, timeout: float, events: list) -> None:  # type: ignore[type-arg]
        # Before the base class: it consumes the list.
        for folder, why in _rescan_requests(events):
            log.warning("file events lost under %s (%s): rescanning it now", folder, why)
            self.on_rescan(folder, why)
        super().queue_events(timeout, events)  # type: ignore[misc]


def _rescan_requests(events: Iterable[object]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for ev in events:
        why = rescan_reason(int(getattr(ev, "flags", 0) or 0))
        if why is not None:
            folder = _decode(getattr(ev, "path", "")).rstrip(os.sep) or os.sep
            if all(folder != f for f, _ in out):
                out.append((folder, why))
    return out


def _fsevents_observer(sink: EventQueue) -> BaseObserver:
    """watchdog's FSEvents observer with an emitter that honours the rescan flags (see above)."""
    from watchdog.observers.fsevents import FSEventsEmitter, FSEventsObserver

    # FSEventsEmitter.queue_events already differs from EventEmitter's (watchdog marks it ignore[override]).
    class Emitter(RescanOnDroppedEvents, FSEventsEmitter):  # type: ignore[misc]
        def on_rescan(self, folder: str, why: str) -> None:
            sink.put(FileEvent(EventKind.RESCAN, folder, True))

    class Observer(FSEventsObserver):
        def __init__(self) -> None:
            # FSEventsObserver's own __init__ only names its emitter class (and a latency default).
            BaseObserver.__init__(self, Emitter)

    return Observer()


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
    """Watches roots recursively and puts :class:`FileEvent` s on ``queue``.

    One observer, one watch per root. A root can be attached and detached while the observer runs: the
    daemon detaches a root that went offline and attaches it anew when it is back (a remounted volume is
    a new folder; the old watch is blind to it — inotify drops it with IN_UNMOUNT/IN_IGNORED, an FSEvents
    stream ends).
    """

    def __init__(
        self, roots: Sequence[str], queue: EventQueue, *, polling: bool = False, poll_interval: float = 60.0
    ) -> None:
        self.roots = list(roots)  # the roots to watch: attach adds one, detach removes it
        self.queue = queue
        self.polling = polling
        self.poll_interval = poll_interval
        self.restarts = 0
        self._observer: BaseObserver | None = None
        self._handler = _Handler(queue)
        self._watches: dict[str, Any] = {}  # root -> ObservedWatch

    @property
    def kind(self) -> str:
        return _observer_class(self.polling).__name__

    @property
    def attached(self) -> list[str]:
        """Roots being watched now."""
        return list(self._watches)

    def start(self) -> None:
        cls = _observer_class(self.polling)
        observer: BaseObserver
        if self.polling:
            observer = cls(timeout=self.poll_interval)  # type: ignore[call-arg]  # the polling period
        elif cls.__name__ == "FSEventsObserver":
            observer = _fsevents_observer(self.queue)  # honours FSEvents' rescan flags
        else:
            # Each concrete observer supplies its own emitter class; only the base class takes one.
            observer = cls()  # type: ignore[call-arg]
        observer.daemon = True
        observer.start()
        self._observer = observer
        for root in self.roots:
            self.attach(root)

    def attach(self, root: str) -> bool:
        """Start watching ``root`` (again). False when it is not a folder now."""
        if root not in self.roots:
            self.roots.append(root)
        if root in self._watches:
            return True
        if self._observer is None:
            return False
        if not os.path.isdir(root):
            log.warning("not watching %s: not a folder", root)
            return False
        try:
            self._watches[root] = self._observer.schedule(self._handler, root, recursive=True)
        except OSError as exc:
            log.warning("cannot watch %s: %s", root, exc.strerror or exc)
            return False
        return True

    def detach(self, root: str) -> None:
        """Stop watching ``root`` (it went offline); :meth:`attach` resumes."""
        if root in self.roots:
            self.roots.remove(root)
        watch = self._watches.pop(root, None)
        if watch is not None and self._observer is not None:
            try:
                self._observer.unschedule(watch)
            except (KeyError, OSError):  # its emitter died with the volume; nothing left to stop
                log.debug("unscheduling the watch of %s failed", root, exc_info=True)

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        self._watches.clear()
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)

    def _dead_roots(self) -> list[str]:
        """Attached roots whose emitter is gone or stopped (e.g. inotify stopped it on IN_DELETE_SELF), or
        runs on blind (its root's own inotify watch was dropped: IN_UNMOUNT, then IN_IGNORED)."""
        live = {e.watch for e in getattr(self._observer, "emitters", ()) if e.is_alive() and not _blind(e)}
        return [root for root, watch in self._watches.items() if watch not in live]

    def alive(self) -> bool:
        obs = self._observer
        return obs is not None and obs.is_alive() and not self._dead_roots()

    def ensure_alive(self) -> list[str]:
        """Restart a dead observer, or re-attach a root whose watch died or went blind (its volume went
        away and came back). Returns the roots watched anew: events there may have been lost."""
        obs = self._observer
        if obs is not None and obs.is_alive():
            dead = self._dead_roots()
            for root in dead:
                log.warning("file watcher (%s) of %s stopped; restarting it", self.kind, root)
                self.detach(root)
                self.attach(root)
            self.restarts += len(dead)
            return dead
        log.warning("file watcher (%s) stopped; restarting it", self.kind)
        try:
            self.stop()
        except Exception:  # a dead observer may fail to stop cleanly; a new one replaces it anyway
            log.debug("stopping the dead watcher failed", exc_info=True)
        try:
            self.start()
        except OSError as exc:
            log.error("cannot restart the file watcher: %s; relying on rescans", exc)
            return []
        self.restarts += 1
        return self.attached


def _blind(emitter: Any) -> bool:
    """Whether an inotify emitter lost the watch on its own root while its thread runs on.

    A volume unmounted under a watch sends IN_UNMOUNT and IN_IGNORED; watchdog drops the watch and the
    emitter runs on, watching nothing — and a volume mounted again within one sweep may show the same
    identity, so the root check would not notice. This reads watchdog's private bookkeeping
    (``InotifyWatchGroup._active_callbacks_by_path``, watchdog 6–7); anything unexpected counts as not
    blind, so another watchdog only loses this check, never the watcher.
    """
    group = getattr(emitter, "_inotify", None)
    by_path = getattr(group, "_active_callbacks_by_path", None)
    path = getattr(group, "path", None)
    if not isinstance(by_path, dict) or not isinstance(path, bytes) or not getattr(group, "is_active", False):
        return False
    return path not in by_path
