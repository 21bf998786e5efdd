"""The watcher: the settle window (with a fake clock: every call takes ``now``), the translation of
watchdog's events into ours, the hand-over queue, and a real observer on a real folder."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from watchdog.events import (
    DirCreatedEvent,
    DirModifiedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from sidecar_thumbs.daemon.events import EventKind, EventQueue, FileEvent, _Handler
from sidecar_thumbs.daemon.settle import Settler
from sidecar_thumbs.daemon.watcher import Watcher

SETTLE = 3.0


@pytest.fixture
def model(tmp_path: Path) -> str:
    p = tmp_path / "part.stl"
    p.write_bytes(b"x" * 100)
    return str(p)


def _grow(path: str, extra: bytes = b"y" * 10) -> None:
    with open(path, "ab") as f:
        f.write(extra)


# -- Settler ---------------------------------------------------------------------------------------


def test_a_quiet_unchanged_file_is_due_after_the_window(model: str) -> None:
    s = Settler(SETTLE)
    s.touch(model, now=100.0)
    assert s.due(100.0 + SETTLE - 0.01) == []
    assert s.due(100.0 + SETTLE) == [model]
    assert len(s) == 0  # handed out once, then forgotten
    assert s.due(200.0) == []


def test_each_event_restarts_the_window(model: str) -> None:
    s = Settler(SETTLE)
    s.touch(model, now=0.0)
    s.touch(model, now=2.0)
    assert s.due(SETTLE + 1.0) == []
    assert s.due(2.0 + SETTLE) == [model]


def test_a_file_still_growing_without_events_waits_one_more_window(model: str) -> None:
    # An SMB copy may stop sending events while bytes keep arriving: the second look catches it.
    s = Settler(SETTLE)
    s.touch(model, now=0.0)
    _grow(model)
    assert s.due(SETTLE) == []  # the stat moved since the first look: look again one window later
    assert s.due(2 * SETTLE - 0.01) == []
    assert s.due(2 * SETTLE) == [model]


def test_a_stat_change_seen_by_an_event_restarts_the_stable_clock(model: str) -> None:
    s = Settler(SETTLE)
    s.touch(model, now=0.0)
    _grow(model)
    s.touch(model, now=1.0)
    assert s.due(1.0 + SETTLE) == [model]


def test_a_file_that_vanished_is_dropped_not_due(model: str) -> None:
    s = Settler(SETTLE)
    s.touch(model, now=0.0)
    os.unlink(model)
    assert s.due(SETTLE) == []
    assert len(s) == 0


def test_forget_and_forget_under(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.stl", tmp_path / "sub" / "b.stl", tmp_path / "subway.stl"
    b.parent.mkdir()
    for p in (a, b, c):
        p.write_bytes(b"1")
    s = Settler(SETTLE)
    for p in (a, b, c):
        s.touch(str(p), now=0.0)
    s.forget(str(a))
    s.forget_under(str(tmp_path / "sub"))  # a sibling whose name starts the same stays
    assert s.due(SETTLE) == [str(c)]


def test_next_due_in_tells_the_loop_how_long_to_sleep(model: str, tmp_path: Path) -> None:
    s = Settler(SETTLE)
    assert s.next_due_in(0.0) is None
    s.touch(model, now=10.0)
    other = tmp_path / "late.stl"
    other.write_bytes(b"2")
    s.touch(str(other), now=11.0)
    assert s.next_due_in(10.5) == pytest.approx(SETTLE - 0.5)
    assert s.next_due_in(99.0) == 0.0


def test_a_zero_window_makes_a_file_due_at_once(model: str) -> None:
    s = Settler(0.0)
    s.touch(model, now=5.0)
    assert s.due(5.0) == [model]


# -- events from watchdog --------------------------------------------------------------------------


def _handle(*events: FileSystemEvent) -> list[FileEvent]:
    q = EventQueue()
    handler = _Handler(q)
    for ev in events:
        handler.on_any_event(ev)
    return q.drain()


def test_model_events_become_changed_deleted_and_moved() -> None:
    got = _handle(
        FileCreatedEvent("/lib/a.stl"),
        FileModifiedEvent("/lib/a.stl"),
        FileClosedEvent("/lib/a.stl"),
        FileDeletedEvent("/lib/b.3mf"),
        FileMovedEvent("/lib/c.stl", "/lib/d.stl"),
    )
    assert [(e.kind, e.path, e.dest) for e in got] == [
        (EventKind.CHANGED, "/lib/a.stl", None),
        (EventKind.CHANGED, "/lib/a.stl", None),
        (EventKind.CHANGED, "/lib/a.stl", None),
        (EventKind.DELETED, "/lib/b.3mf", None),
        (EventKind.MOVED, "/lib/c.stl", "/lib/d.stl"),
    ]


def test_our_own_sidecars_temp_files_and_other_files_are_dropped() -> None:
    assert (
        _handle(
            FileCreatedEvent("/lib/.a.stl.thumbnail.png"),
            FileCreatedEvent("/lib/.a.stl.thumbnail.png.0123abcd.tmp"),
            FileModifiedEvent("/lib/notes.txt"),
            FileCreatedEvent("/lib/@eaDir/x.stl"),  # a NAS's thumbnail folder
            FileCreatedEvent("/lib/.Trashes/501/x.stl"),
            DirModifiedEvent("/lib/sub"),
        )
        == []
    )


def test_renames_across_the_model_name_boundary() -> None:
    got = _handle(
        FileMovedEvent("/lib/part.stl", "/lib/part.stl.bak"),  # no longer a model: gone
        FileMovedEvent("/lib/.part.stl.partial", "/lib/part.stl"),  # a temp name renamed into place: new
    )
    assert [(e.kind, e.path) for e in got] == [
        (EventKind.DELETED, "/lib/part.stl"),
        (EventKind.CHANGED, "/lib/part.stl"),
    ]


def test_a_folder_that_appears_is_one_changed_folder_event() -> None:
    got = _handle(DirCreatedEvent("/lib/new"))
    assert got == [FileEvent(EventKind.CHANGED, "/lib/new", True)]


def test_the_queue_wakes_the_loop_and_drains_in_order() -> None:
    q = EventQueue()
    assert not q.wake.is_set()
    events = [FileEvent(EventKind.CHANGED, f"/lib/{i}.stl", False) for i in range(3)]
    threads = [threading.Thread(target=q.put, args=(e,)) for e in events]
    for t in threads:
        t.start()
        t.join()
    assert q.wake.is_set()
    assert q.drain() == events and q.drain() == []


# -- a real observer -------------------------------------------------------------------------------


@pytest.mark.parametrize("polling", [False, True], ids=["native", "polling"])
def test_a_real_observer_reports_a_new_model_and_stops(tmp_path: Path, polling: bool) -> None:
    q = EventQueue()
    w = Watcher([str(tmp_path), str(tmp_path / "not-there")], q, polling=polling, poll_interval=0.5)
    w.start()
    try:
        assert w.alive()
        (tmp_path / "new.stl").write_bytes(b"solid x\nendsolid x\n")
        (tmp_path / "ignored.txt").write_text("no")
        deadline = time.monotonic() + 10
        seen: list[FileEvent] = []
        while time.monotonic() < deadline and not seen:
            q.wake.wait(0.2)
            seen += q.drain()
        assert seen and {e.path for e in seen} == {str(tmp_path / "new.stl")}
    finally:
        w.stop()
    assert not w.alive()
    assert w.ensure_alive() and w.restarts == 1  # a dead observer is started again
    w.stop()
