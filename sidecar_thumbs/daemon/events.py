"""File events as plain records: watchdog's thread turns what it sees into :class:`FileEvent` s on an
:class:`EventQueue` (only marks, never the database); the daemon's loop drains them.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from watchdog.events import FileSystemEvent, FileSystemEventHandler

from sidecar_thumbs.files.discover import is_ignored_dir, is_model_name

__all__ = ["EventKind", "FileEvent"]


class EventKind(StrEnum):
    CHANGED = "changed"  # created, modified, closed: settle, then look
    DELETED = "deleted"
    MOVED = "moved"
    RESCAN = "rescan"  # events under this folder were lost: look at it again (stat gate, like a rescan)


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
