"""FSEvents' "rescan this folder" flags (watchdog#124): honoured, and turned into a rescan of that folder.

FSEvents exists only on macOS, so the emitter's part is tested with synthetic native events (watchdog's own
``NativeEvent`` where its extension is importable, a stand-in with the same fields elsewhere) and the
daemon's part with the event the emitter puts on the queue.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from test_daemon import wait_for

from sidecar_thumbs.daemon.events import EventKind, FileEvent
from sidecar_thumbs.daemon.loop import Daemon, DaemonConfig
from sidecar_thumbs.daemon.watcher import (
    FSE_KERNEL_DROPPED,
    FSE_MUST_SCAN_SUBDIRS,
    FSE_USER_DROPPED,
    RescanOnDroppedEvents,
    rescan_reason,
)
from sidecar_thumbs.files.sidecar import sidecar_path_for
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.work.executors.local import InlineExecutor

REPO = Path(__file__).resolve().parents[1]
GEAR = REPO / "examples" / "models" / "gear.stl"
ITEM_CREATED, ITEM_IS_FILE = 0x00000100, 0x00010000


@dataclass
class FakeNativeEvent:
    """The fields of ``_watchdog_fsevents.NativeEvent`` that the emitter reads."""

    path: str
    inode: int
    flags: int
    event_id: int


def native_event(path: str, flags: int, event_id: int = 1) -> object:
    try:
        from _watchdog_fsevents import NativeEvent  # type: ignore[import-not-found]
    except ImportError:
        return FakeNativeEvent(path, 0, flags, event_id)
    try:
        return NativeEvent(path, 0, flags, event_id)  # watchdog >= 2.1: (path, inode, flags, id)
    except TypeError:
        return NativeEvent(path, flags, event_id)


class RecordingEmitter:
    """Stands in for watchdog's FSEventsEmitter: records what it was asked to handle, consuming the list."""

    def __init__(self) -> None:
        self.handled: list[object] = []

    def queue_events(self, timeout: float, events: list) -> None:  # type: ignore[type-arg]
        while events:
            self.handled.append(events.pop(0))


class Emitter(RescanOnDroppedEvents, RecordingEmitter):
    def __init__(self) -> None:
        super().__init__()
        self.rescans: list[tuple[str, str]] = []

    def on_rescan(self, folder: str, why: str) -> None:
        self.rescans.append((folder, why))


def test_rescan_reason_reads_each_flag() -> None:
    assert rescan_reason(0) is None
    assert rescan_reason(ITEM_CREATED | ITEM_IS_FILE) is None
    assert rescan_reason(FSE_MUST_SCAN_SUBDIRS) == "FSEvents coalesced events below it"
    assert "dropped" in (rescan_reason(FSE_MUST_SCAN_SUBDIRS | FSE_USER_DROPPED) or "")
    assert "kernel" in (rescan_reason(FSE_MUST_SCAN_SUBDIRS | FSE_KERNEL_DROPPED) or "")


def test_must_scan_subdirs_asks_for_that_folder_and_passes_every_event_on() -> None:
    em = Emitter()
    events = [
        native_event("/lib/a/new.stl", ITEM_CREATED | ITEM_IS_FILE),
        native_event("/lib/b/", FSE_MUST_SCAN_SUBDIRS, 2),
        native_event("/lib/b", FSE_MUST_SCAN_SUBDIRS | FSE_USER_DROPPED, 3),  # same folder: asked once
        native_event("/lib", FSE_MUST_SCAN_SUBDIRS | FSE_KERNEL_DROPPED, 4),
    ]
    em.queue_events(1.0, list(events))
    assert em.rescans == [("/lib/b", "FSEvents coalesced events below it"), ("/lib", "the kernel dropped events")]
    assert em.handled == events  # watchdog still handles the batch as before


def test_ordinary_events_ask_for_no_rescan() -> None:
    em = Emitter()
    em.queue_events(1.0, [native_event("/lib/x.stl", ITEM_CREATED | ITEM_IS_FILE)])
    assert em.rescans == []


def test_rescan_request_makes_the_daemon_look_at_the_folder_at_once(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    (lib / "quiet").mkdir(parents=True)
    first = lib / "first.stl"
    shutil.copy(GEAR, first)
    db = StateDB(tmp_path / "inproc.sqlite3")
    # No periodic rescan: only the request can find a file whose events were lost.
    config = DaemonConfig(roots=(str(lib),), settle=0.2, sweep_interval=0.2, rescan_interval=0, durable=False)
    daemon = Daemon(config, db=db, make_executor=InlineExecutor, options=ThumbnailOptions())
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: sidecar_path_for(first).exists(), what="the start-up scan")
        assert daemon.watcher is not None
        daemon.watcher.stop()  # events stop arriving, as when FSEvents drops them
        target = lib / "quiet" / "gear.stl"
        shutil.copy(GEAR, target)
        daemon.queue.put(FileEvent(EventKind.RESCAN, str(lib / "quiet"), True))  # what the emitter puts there
        wait_for(lambda: sidecar_path_for(target).exists(), what="the folder rescanned and its new file rendered")
    finally:
        daemon.request_stop()
        thread.join(30)
        db.close()


def test_rescan_of_a_folder_above_the_roots_means_the_roots(tmp_path: Path) -> None:
    roots = (str(tmp_path / "a"), str(tmp_path / "b"))
    with StateDB(tmp_path / "db.sqlite3") as db:
        daemon = Daemon(DaemonConfig(roots=roots), db=db, make_executor=InlineExecutor, options=ThumbnailOptions())
        assert daemon._rescan_targets([str(tmp_path)]) == list(roots)
        assert daemon._rescan_targets([str(tmp_path / "a" / "x"), str(tmp_path / "a")]) == [roots[0]]
        assert daemon._rescan_targets(["/somewhere/else"]) == []


# -- watchdog's own FSEvents emitter, driven on any platform --------------------------------------------
# watchdog.observers.fsevents imports its C extension at the top; a stand-in for that extension (stream
# that never runs, native events with the C type's flag properties) lets the real emitter code run here.

_FLAG_PROPERTIES = {
    "must_scan_subdirs": FSE_MUST_SCAN_SUBDIRS,
    "is_user_dropped": FSE_USER_DROPPED,
    "is_kernel_dropped": FSE_KERNEL_DROPPED,
    "is_root_changed": 0x20,
    "is_mount": 0x40,
    "is_unmount": 0x80,
    "is_created": 0x100,
    "is_removed": 0x200,
    "is_inode_meta_mod": 0x400,
    "is_renamed": 0x800,
    "is_modified": 0x1000,
    "is_item_finder_info_modified": 0x2000,
    "is_owner_change": 0x4000,
    "is_xattr_mod": 0x8000,
    "is_file": 0x10000,
    "is_directory": 0x20000,
    "is_symlink": 0x40000,
}


class StandInNativeEvent:
    def __init__(self, path: str, inode: int, flags: int, event_id: int) -> None:
        self.path, self.inode, self.flags, self.event_id = path, inode, flags, event_id

    def __getattr__(self, name: str) -> bool:
        if name in _FLAG_PROPERTIES:
            return bool(self.flags & _FLAG_PROPERTIES[name])
        raise AttributeError(name)


class StandInStream:
    def __init__(self, paths: list[str], latency: float = 0.01) -> None:
        self.paths = paths

    def run(self, callback: object, started: object) -> None:  # pragma: no cover - never started here
        raise AssertionError("the stand-in stream is never run")

    def stop(self) -> None:
        pass


@pytest.fixture
def watchdog_fsevents(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """watchdog.observers.fsevents imported over the stand-in extension (on a Mac: the real one is kept)."""
    try:
        import _watchdog_fsevents  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        stub = ModuleType("_watchdog_fsevents")
        stub.NativeEvent = StandInNativeEvent  # type: ignore[attr-defined]
        stub.Stream = StandInStream  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "_watchdog_fsevents", stub)
        yield importlib.import_module("watchdog.observers.fsevents")
        sys.modules.pop("watchdog.observers.fsevents", None)  # built over the stand-in: not for anyone else
    else:
        yield importlib.import_module("watchdog.observers.fsevents")


def test_our_fsevents_observer_turns_a_dropped_events_flag_into_a_rescan_request(
    watchdog_fsevents: ModuleType, tmp_path: Path
) -> None:
    import _watchdog_fsevents  # type: ignore[import-not-found]
    from watchdog.events import FileCreatedEvent, FileSystemEventHandler

    from sidecar_thumbs.daemon.events import EventQueue
    from sidecar_thumbs.daemon.watcher import _fsevents_observer

    native = _watchdog_fsevents.NativeEvent
    queue = EventQueue()
    observer = _fsevents_observer(queue)
    assert isinstance(observer, watchdog_fsevents.FSEventsObserver)
    observer.schedule(FileSystemEventHandler(), str(tmp_path), recursive=True)  # type: ignore[attr-defined]
    (emitter,) = observer.emitters  # type: ignore[attr-defined]
    (tmp_path / "sub").mkdir()
    emitter.queue_events(0.1, [native(str(tmp_path / "sub"), 0, FSE_MUST_SCAN_SUBDIRS | FSE_KERNEL_DROPPED, 7)])
    assert queue.drain() == [FileEvent(EventKind.RESCAN, str(tmp_path / "sub"), True)]
    # An ordinary event still goes through watchdog's own handling, and asks for no rescan.
    model = tmp_path / "sub" / "a.stl"
    model.write_bytes(b"x")
    emitter.queue_events(0.1, [native(str(model), model.stat().st_ino, 0x100 | 0x10000, 8)])
    assert queue.drain() == []
    seen = []
    while not observer.event_queue.empty():  # type: ignore[attr-defined]
        seen.append(observer.event_queue.get_nowait()[0])  # type: ignore[attr-defined]
    assert FileCreatedEvent(str(model)) in seen
