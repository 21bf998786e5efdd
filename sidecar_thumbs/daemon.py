"""The daemon: watch + settle + 2 s reconciliation sweep + periodic rescan, feeding one pool.

The database is the queue. Events, rescans, ``scan``, ``verify --fix`` and other processes only mark
rows pending; the sweep (every ``sweep_interval`` seconds, or at once when new work is marked) is the
one place that claims rows and hands them to the workers.

Stopping: the first SIGTERM/SIGINT stops intake and lets running renders finish within the grace
period; a second signal (or the end of the grace period) stops hard. Either way no partial sidecar is
left (writes are atomic), finished results are committed, and rows caught mid-render go back to
pending — and a restart resumes there (any still marked rendering at start are released too).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

from sidecar_thumbs.clean import is_our_temp_name
from sidecar_thumbs.dam_sync import sync_dam
from sidecar_thumbs.discover import is_ignored_dir, iter_model_files
from sidecar_thumbs.errors import DatabaseLockedError
from sidecar_thumbs.executors import Executor
from sidecar_thumbs.fingerprint import hash_file
from sidecar_thumbs.lock import DaemonLock
from sidecar_thumbs.models import FileState, ModelRow, ModelStatus
from sidecar_thumbs.pipeline import Outcome, Pipeline
from sidecar_thumbs.progress import format_duration
from sidecar_thumbs.scan import reconcile
from sidecar_thumbs.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.state import StateDB
from sidecar_thumbs.thumbnail import ThumbnailOptions
from sidecar_thumbs.verify import remove_our_sidecar
from sidecar_thumbs.watcher import EventKind, EventQueue, FileEvent, Settler, Watcher

__all__ = ["Daemon", "DaemonConfig"]

log = logging.getLogger("sidecar_thumbs.daemon")

TICK = 0.1  # the loop's longest sleep while idle between deadlines (s)
LOG_EVERY = 10.0  # seconds between progress lines while busy
WATCHDOG_CHECK_EVERY = 5.0


@dataclass(frozen=True)
class DaemonConfig:
    roots: tuple[str, ...]
    settle: float = 3.0
    sweep_interval: float = 2.0
    rescan_interval: float = 600.0
    batch_size: int = 200
    grace_period: float = 30.0
    timeout: float | None = None
    polling: bool = False
    once: bool = False  # burst mode: rescan, render everything pending, exit
    durable: bool = True


@dataclass
class _Window:
    """Counts since the last progress line."""

    ok: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)


class Daemon:
    """One daemon over one database. Use :meth:`run`; call :meth:`request_stop` from anywhere."""

    def __init__(
        self,
        config: DaemonConfig,
        *,
        db: StateDB,
        make_executor: Callable[[], Executor],
        options: ThumbnailOptions,
        lock: DaemonLock | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.make_executor = make_executor
        self.options = options
        self.lock = lock
        self.queue = EventQueue()
        self.settler = Settler(config.settle)
        self.watcher: Watcher | None = None
        self.stop_requests = 0
        self._stop_at: float | None = None
        self._buffer: list[ModelRow] = []  # claimed, not yet submitted
        self._window = _Window()
        self._rates: list[tuple[float, int]] = []  # (time, cumulative finished) for the rate
        self._finished = 0
        self._pending_sidecar_removals: dict[str, float] = {}  # sidecar → when to remove
        self.pipeline: Pipeline | None = None

    # -- control ---------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """First call: graceful stop. Second: hard stop."""
        self.stop_requests += 1
        self.queue.wake.set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            self.request_stop()
            name = signal.Signals(signum).name
            if self.stop_requests == 1:
                log.info(
                    "%s: stopping after running renders (up to %.0f s; again to stop now)",
                    name,
                    self.config.grace_period,
                )
            else:
                log.info("%s: stopping now", name)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # -- main loop -------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped (or, in burst mode, until nothing is left). Returns the exit code."""
        cfg = self.config
        if self.lock is not None:
            self.lock.acquire()
        try:
            if self.db.dam is not None:
                total, unflagged = self.db.dam_counts()
                # The origin's worst bug was rendering the wrong database: say which one, loudly.
                log.info("attached to %s in %s: %d models, %d without a thumbnail",
                         self.db.dam.describe(), self.db.path, total, unflagged)  # fmt: skip
            back = self.db.release_claims()
            if back:
                log.info("resuming: %d models caught mid-render are pending again", back)
            self._remove_stale_temp_files()
            if not cfg.once:
                self.watcher = Watcher(cfg.roots, self.queue, polling=cfg.polling)
                self.watcher.start()
                log.info("watching %s with %s", ", ".join(cfg.roots), self.watcher.kind)
            self._rescan(initial=True)
            executor = self.make_executor()
            self.pipeline = Pipeline(
                self.db,
                executor,
                self.options,
                timeout=cfg.timeout,
                durable=cfg.durable,
                on_outcome=self._on_outcome,
            )
            try:
                self._loop()
            finally:
                hard = self.stop_requests > 1 or (self._stop_at is not None and time.monotonic() >= self._stop_at)
                back = self.pipeline.abandon(self._buffer)
                self._buffer = []
                executor.shutdown(cancel=hard or back > 0)
                self.pipeline.close()
                if back:
                    log.info("stopped: %d unfinished models are pending for the next start", back)
        finally:
            if self.watcher is not None:
                self.watcher.stop()
            if self.lock is not None:
                self.lock.release()
        return 0

    def _loop(self) -> None:
        cfg = self.config
        assert self.pipeline is not None
        pipeline = self.pipeline
        now = time.monotonic()
        next_sweep = now
        next_rescan = now + cfg.rescan_interval if cfg.rescan_interval > 0 else float("inf")
        next_watch_check = now + WATCHDOG_CHECK_EVERY
        next_log = now + LOG_EVERY
        while True:
            now = time.monotonic()
            if self.stop_requests:
                if self._stop_at is None:
                    self._stop_at = now + cfg.grace_period
                    self._release_buffer()  # intake stops: claimed-but-unstarted rows go back
                if self.stop_requests > 1 or now >= self._stop_at or pipeline.in_flight == 0:
                    return
                pipeline.poll(TICK)
                continue
            woke = self.queue.wake.is_set()
            self.queue.wake.clear()
            try:
                marked = self._handle_events(self.queue.drain(), now)
                marked += self._ingest(self.settler.due(now))
                self._remove_due_sidecars(now)
                if now >= next_rescan:
                    marked += self._rescan()
                    next_rescan = now + cfg.rescan_interval
                if now >= next_sweep or marked or (woke and not self._buffer):
                    self._sweep()
                    next_sweep = now + cfg.sweep_interval
                while self._buffer and pipeline.has_room():
                    pipeline.submit(self._buffer.pop())
                    if not self._buffer and now >= next_sweep - cfg.sweep_interval:
                        self._sweep()  # keep the pool fed across batch boundaries
            except DatabaseLockedError as exc:
                # Another process (the asset manager) holds the database: wait, lose nothing (events
                # not taken now are found again by the next rescan; results stay queued).
                log.warning("%s; trying again at the next sweep", exc.message)
                next_sweep = time.monotonic() + cfg.sweep_interval
            if now >= next_watch_check and self.watcher is not None:
                self.watcher.ensure_alive()
                next_watch_check = now + WATCHDOG_CHECK_EVERY
            if now >= next_log:
                self._log_progress(now)
                next_log = now + LOG_EVERY
            if cfg.once and not self._buffer and pipeline.in_flight == 0:
                pipeline.flush()  # outcomes may re-pend rows (content changed during the render)
                self._sweep()
                if not self._buffer:
                    self._log_progress(time.monotonic(), force=True)
                    return
            if pipeline.in_flight:
                pipeline.poll(TICK)
            else:
                if pipeline.pending_commits and now >= next_sweep - cfg.sweep_interval:
                    pipeline.flush()  # results held back by a lock another process had: try again
                wait = min(TICK * 5, max(0.0, next_sweep - time.monotonic()))
                due = self.settler.next_due_in(now)
                if due is not None:
                    wait = min(wait, due + 0.01)
                self.queue.wake.wait(wait)

    # -- the sweep -------------------------------------------------------------------------------

    def _sweep(self) -> None:
        """Claim the next batch of claimable rows when the local buffer ran dry."""
        if not self._buffer:
            if self.db.dam is not None:
                # The asset manager's table is a source of work too: unflagged rows are queued.
                sync_dam(self.db, full=False, roots=self.config.roots)
            # Attached, the asset manager may list models outside the watched roots: claim them too.
            roots = None if self.db.dam is not None else list(self.config.roots)
            batch = self.db.claim(self.config.batch_size, roots=roots)
            batch.reverse()  # pop() from the end keeps the claim order
            self._buffer = batch

    def _release_buffer(self) -> None:
        if self._buffer:
            self.db.release_claims([r.path for r in self._buffer])
            self._buffer = []

    # -- events ----------------------------------------------------------------------------------

    def _handle_events(self, events: Sequence[FileEvent], now: float) -> int:
        if any(ev.kind is not EventKind.CHANGED for ev in events) and self.pipeline is not None:
            # Commit finished renders before rows are renamed or marked missing under them.
            self.pipeline.flush()
        marked = 0
        for ev in events:
            if ev.kind is EventKind.CHANGED:
                if ev.is_dir:
                    # A folder arrived: its files may never send events of their own.
                    for f in iter_model_files([ev.path]):
                        self.settler.touch(f.path, now)
                else:
                    self.settler.touch(ev.path, now)
            elif ev.kind is EventKind.DELETED:
                marked += self._deleted(ev.path, ev.is_dir, now)
            elif ev.kind is EventKind.MOVED and ev.dest is not None:
                marked += self._moved(ev.path, ev.dest, ev.is_dir, now)
        return marked

    def _deleted(self, path: str, is_dir: bool, now: float) -> int:
        if is_dir:
            self.settler.forget_under(path)
            gone = [p for p in self.db.rows_under([path]) if not os.path.lexists(p)]
        else:
            self.settler.forget(path)
            gone = [path] if not os.path.lexists(path) else []
        if gone:
            self.db.mark_missing(gone)
            for p in gone:
                # Removed a little later: if this "delete" is half of a rename seen as delete +
                # create (FSEvents), the new file adopts the sidecar instead of re-rendering.
                self._pending_sidecar_removals[str(sidecar_path_for(p))] = now + self.config.settle + 2
            log.info("deleted: %s", path if len(gone) == 1 else f"{path} ({len(gone)} models)")
        return 0

    def _moved(self, src: str, dest: str, is_dir: bool, now: float) -> int:
        if is_dir:
            self.settler.forget_under(src)
            n = self.db.rename_under(src, dest)
            log.info("folder moved: %s -> %s (%d models follow it)", src, dest, n)
            # Anything in it the database did not know yet gets looked at.
            for f in iter_model_files([dest]):
                if self.db.get(f.path) is None:
                    self.settler.touch(f.path, now)
            return 0
        self.settler.forget(src)
        if self.db.rename(src, dest):
            self._move_sidecar(src, dest)
            log.info("moved: %s -> %s", src, dest)
        self.settler.touch(dest, now)  # the stat gate confirms nothing else changed
        return 0

    def _move_sidecar(self, src: str, dest: str) -> bool:
        old, new = sidecar_path_for(src), sidecar_path_for(dest)
        info = read_sidecar(old)
        if info is None or not info.ours or os.path.lexists(new):
            return False
        try:
            os.rename(old, new)
        except OSError as exc:
            log.warning("could not move sidecar %s: %s", old, exc.strerror)
            return False
        self._pending_sidecar_removals.pop(str(old), None)
        return True

    def _remove_due_sidecars(self, now: float) -> None:
        for sidecar, when in list(self._pending_sidecar_removals.items()):
            if now < when:
                continue
            del self._pending_sidecar_removals[sidecar]
            model = os.path.join(os.path.dirname(sidecar), os.path.basename(sidecar)[1 : -len(".thumbnail.png")])
            if not os.path.lexists(model):
                remove_our_sidecar(sidecar)

    def _ingest(self, paths: Sequence[str]) -> int:
        """Settled paths: fingerprint, adopt moves, mark changed content pending."""
        states: list[FileState] = []
        for path in paths:
            try:
                st = os.stat(path)
                row = self.db.get(path)
                if row is not None and row.hash and (row.size, row.mtime_ns) == (st.st_size, st.st_mtime_ns):
                    if row.status is ModelStatus.DONE and os.path.lexists(sidecar_path_for(path)):
                        continue  # nothing changed (e.g. the event was our own metadata or a no-op)
                    if row.status is ModelStatus.FAILED:
                        continue  # same content that failed before
                digest = hash_file(path)
                after = os.stat(path)
            except OSError:
                continue  # vanished or unreadable now; a later event or the rescan sees it again
            if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                self.settler.touch(path, time.monotonic())  # changed while hashing: not settled
                continue
            if row is None:
                twin = self.db.find_missing_by_hash(digest, st.st_size)
                if twin is not None and self.db.rename(twin.path, path) and self._move_sidecar(twin.path, path):
                    log.info("moved: %s -> %s (matched by content)", twin.path, path)
                    states.append(FileState(path, st.st_size, st.st_mtime_ns, digest, needs_render=False))
                    continue
                states.append(FileState(path, st.st_size, st.st_mtime_ns, digest, needs_render=True))
            elif digest == row.hash:
                has = row.has_thumbnail and os.path.lexists(sidecar_path_for(path))
                states.append(FileState(path, st.st_size, st.st_mtime_ns, digest, needs_render=not has))
            else:
                states.append(FileState(path, st.st_size, st.st_mtime_ns, digest, needs_render=True))
        if states:
            self.db.upsert_files(states)
        return sum(s.needs_render for s in states)

    # -- rescans and housekeeping -------------------------------------------------------------------

    def _rescan(self, initial: bool = False) -> int:
        t0 = time.monotonic()
        problems: list = []
        plan, _, found = reconcile(list(self.config.roots), self.db, problems=problems)
        for p in plan.missing:
            self._pending_sidecar_removals[str(sidecar_path_for(p))] = time.monotonic()
        todo = sum(s.needs_render for s in plan.states)
        log.info(
            "%s: %d models, %d new, %d changed, %d missing; %d to render (%.2f s)",
            "start-up scan" if initial else "rescan",
            found,
            plan.new,
            plan.changed,
            len(plan.missing),
            todo,
            time.monotonic() - t0,
        )
        for p in problems[:20]:
            log.warning("cannot look at %s: %s", p.path, p.reason)
        if self.db.dam is not None:
            synced = sync_dam(self.db, full=True, roots=self.config.roots)
            todo += synced.queued
            if synced.queued or synced.reflagged or synced.unresolved:
                log.info("asset manager's table: %d rows, %d queued, %d re-flagged, %d paths not resolvable",
                         synced.seen, synced.queued, synced.reflagged, synced.unresolved)  # fmt: skip
        if not initial:
            self.db.checkpoint()  # keep the WAL small (long readers may have stalled earlier ones)
        return todo

    def _remove_stale_temp_files(self) -> None:
        # We hold the lock: no other daemon writes here. A temp file of ours older than a minute
        # belongs to a write that was killed (a write takes milliseconds).
        removed = 0
        cutoff = time.time() - 60.0
        for root in self.config.roots:
            for folder, dirs, files in os.walk(root, followlinks=False):
                dirs[:] = [d for d in dirs if not is_ignored_dir(d)]
                for name in files:
                    if not is_our_temp_name(name):
                        continue
                    path = os.path.join(folder, name)
                    with contextlib.suppress(OSError):
                        st = os.lstat(path)
                        if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                            os.unlink(path)
                            removed += 1
        if removed:
            log.info("removed %d temp files left by an interrupted run", removed)

    # -- logs ------------------------------------------------------------------------------------

    def _on_outcome(self, outcome: Outcome) -> None:
        self._finished += 1
        if outcome.ok:
            self._window.ok += 1
            log.debug("rendered: %s (%s, %.0f ms)", outcome.path, outcome.source, outcome.render_ms)
        else:
            self._window.failed += 1
            log.warning("failed: %s: %s", outcome.path, outcome.error)

    def _log_progress(self, now: float, force: bool = False) -> None:
        w = self._window
        if not (w.ok or w.failed or force):
            return
        self._rates.append((now, self._finished))
        self._rates = [r for r in self._rates if now - r[0] <= 60.0] or [(now, self._finished)]
        t_first, n_first = self._rates[0]
        rate = (
            (self._finished - n_first) / (now - t_first)
            if now > t_first
            else (w.ok + w.failed) / max(now - w.started, 1e-9)
        )
        backlog = self.db.backlog()
        eta = format_duration(backlog / rate) if rate > 0 and backlog else "-"
        in_flight = self.pipeline.in_flight if self.pipeline else 0
        log.info(
            "pending %d · rendering %d · done ✓ %d ✗ %d · %.1f/s · ETA %s",
            backlog,
            in_flight,
            w.ok,
            w.failed,
            rate,
            eta,
        )
        self._window = _Window()
