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

import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

from sidecar_thumbs.daemon.changes import ChangeTracker
from sidecar_thumbs.daemon.events import EventKind, EventQueue, FileEvent
from sidecar_thumbs.daemon.hardstop import HARD_STOP_MARGIN, HardStop
from sidecar_thumbs.daemon.progress import ProgressLog, _Window
from sidecar_thumbs.daemon.rescans import RootHandling
from sidecar_thumbs.daemon.root_states import RootStates
from sidecar_thumbs.daemon.settle import Settler
from sidecar_thumbs.daemon.watcher import Watcher
from sidecar_thumbs.errors import EXIT_PROBLEMS, DatabaseLockedError, SidecarError
from sidecar_thumbs.files.pathcanon import Volumes
from sidecar_thumbs.files.roots import MassMissingGuard, canonical_roots, offline_error
from sidecar_thumbs.render import describe_kernel
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.lock import DaemonLock
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelRow
from sidecar_thumbs.work.dam_sync import sync_dam
from sidecar_thumbs.work.executors.local import Executor
from sidecar_thumbs.work.pipeline import Pipeline

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
    poll_interval: float = 60.0  # seconds between polls when polling
    once: bool = False  # burst mode: rescan, render everything pending, exit
    durable: bool = True
    full_fsync: bool = False
    # When a walk's losses are believed; ``allowed`` (--allow-mass-missing) counts for the start-up scan only.
    guard: MassMissingGuard = field(default_factory=MassMissingGuard)


class Daemon(RootHandling, ProgressLog):
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
        # Roots are volumes (see roots.py): each is online or offline, checked with a stat every sweep.
        # How each root's volume compares names (case, Unicode form), asked once; the roots in its spelling,
        # before anything is keyed by them (root states, the watcher, rows found by walks).
        self.volumes = Volumes.detect(canonical_roots(config.roots), cache=db)  # probed once per volume
        self.roots = list(self.volumes.roots)
        self.root_states = RootStates(self.roots, db)
        self._due_rescans: set[str] = set()  # roots back online (or watched anew) to rescan
        self.stop_requests = 0
        self._stop_at: float | None = None
        self._buffer: list[ModelRow] = []  # claimed, not yet submitted
        self._window = _Window()
        self._rates: list[tuple[float, int]] = []  # (time, cumulative finished) for the rate
        self._finished = 0
        self.failed_total = 0  # distinct models that failed during this run
        self._failing: set[str] = set()
        self._hard_stop = HardStop()
        self.changes = ChangeTracker(
            db,
            self.settler,
            self.roots,  # as the volume spells them: the link rule compares paths under them
            max_bytes=options.limits.max_file_bytes,
            is_gone=self.root_states.is_gone,
            volumes=self.volumes,
        )
        self.pipeline: Pipeline | None = None

    # -- control ---------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """First call: graceful stop. Second: hard stop."""
        self.stop_requests += 1
        self.queue.wake.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop the daemon: the first gracefully, the second at once.

        The handlers only set a flag the loop reads; if the loop cannot get there (the main thread
        is stuck in the kernel, e.g. a read from a share that stopped answering: Python retries an
        interrupted read, PEP 475), a timer ends the process anyway (:class:`HardStop`), so a stop
        always ends the process within the grace period plus a few seconds.
        """

        def handler(signum: int, frame: FrameType | None) -> None:
            self.request_stop()
            name = signal.Signals(signum).name
            if self.stop_requests == 1:
                log.info(
                    "%s: stopping after running renders (up to %.0f s; again to stop now)",
                    name,
                    self.config.grace_period,
                )
                self._hard_stop.arm(self.config.grace_period + HARD_STOP_MARGIN)
            else:
                log.info("%s: stopping now", name)
                self._hard_stop.arm(HARD_STOP_MARGIN)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # -- main loop -------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped (or, in burst mode, until nothing is left). Returns the exit code."""
        cfg = self.config
        unfinished = 0
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
            self.root_states.start(believe_empty=cfg.guard.allowed)
            if cfg.once and self.root_states.offline():
                raise offline_error(self.root_states)
            self._remove_stale_temp_files()
            if not cfg.once:
                self.watcher = Watcher(
                    self.root_states.online(), self.queue, polling=cfg.polling, poll_interval=cfg.poll_interval
                )
                self.watcher.start()
                watched = ", ".join(self.watcher.attached) or "nothing yet (every root is offline)"
                log.info("watching %s with %s", watched, self.watcher.kind)
            # Workers start (and warm numba) while the start-up scan walks the library.
            executor = self.make_executor()
            renderer = describe_kernel(self.options.render.kernel)
            log.info("renderer: %s", renderer)
            self.db.set_meta("renderer", renderer)  # for `status`
            self.pipeline = Pipeline(
                self.db,
                executor,
                self.options,
                timeout=cfg.timeout,
                durable=cfg.durable,
                full_fsync=cfg.full_fsync,
                on_outcome=self._on_outcome,
                is_gone=self.root_states.is_gone,
                roots=self.roots,
            )
            try:
                self._rescan(initial=True)
                self._loop()
            finally:
                hard = self.stop_requests > 1 or (self._stop_at is not None and time.monotonic() >= self._stop_at)
                back = 0
                try:
                    back = self.pipeline.abandon(self._buffer)
                except SidecarError as exc:  # the database itself failed: still stop the workers
                    log.error("could not record the last results: %s", exc.message)
                    hard = True
                finally:
                    self._buffer = []
                    executor.shutdown(cancel=hard or back > 0)
                    self.pipeline.close()
                unfinished = back
        finally:
            if self.watcher is not None:
                self.watcher.stop()
            if self.lock is not None:
                self.lock.release()
            self._hard_stop.disarm()  # stopped in time
        if self.stop_requests:
            # The last line of a stopped daemon: the service manager's log shows it ended well.
            left = f"; {unfinished} unfinished models are pending for the next start" if unfinished else ""
            log.info("stopped cleanly: no partial sidecar left, finished renders saved%s", left)
        # Burst mode is a run like scan: exit 3 when some files failed (cron mails it).
        return EXIT_PROBLEMS if cfg.once and self.failed_total else 0

    def _loop(self) -> None:
        cfg = self.config
        assert self.pipeline is not None
        pipeline = self.pipeline
        now = time.monotonic()
        next_sweep = now
        next_rescan = now + cfg.rescan_interval if cfg.rescan_interval > 0 else float("inf")
        next_watch_check = now + WATCHDOG_CHECK_EVERY
        next_root_check = now + cfg.sweep_interval
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
                if now >= next_root_check and not cfg.once:
                    self._check_roots()
                    next_root_check = now + cfg.sweep_interval
                marked += self._rescan_due()
                marked += self.changes.ingest(self.settler.due(now))
                self.changes.remove_due_sidecars(now)
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
                # A watch that died or went blind with its volume: what changed meanwhile sent no events.
                self._due_rescans.update(self.watcher.ensure_alive())
                next_watch_check = now + WATCHDOG_CHECK_EVERY
            if now >= next_log:
                self._log_progress(now)
                next_log = now + LOG_EVERY
            # Burst mode ends when nothing is queued, rendering or still settling (a file the start-up
            # scan found mid-copy is looked at once its settle window has passed).
            if cfg.once and not self._buffer and pipeline.in_flight == 0 and not len(self.settler):
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
        self.db.check_file()  # removed or overwritten under us: stop with a clear error, lose nothing more
        if not self._buffer:
            if self.db.dam is not None:
                # The asset manager's table is a source of work too: unflagged rows are queued.
                sync_dam(self.db, full=False, roots=self.roots, volumes=self.volumes)
            # Only models under the roots: an asset manager's row elsewhere is never taken (issue 11);
            # never under an offline root: those rows wait for their volume, untouched.
            online = self.root_states.online()
            offline = self.root_states.offline()
            batch = self.db.claim(self.config.batch_size, roots=online, exclude=offline) if online else []
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
        lost = [ev.path for ev in events if ev.kind is EventKind.RESCAN]
        marked = self.changes.handle([ev for ev in events if ev.kind is not EventKind.RESCAN], now)
        if lost:
            folders = self._rescan_targets(lost)
            if folders:
                marked += self._rescan(folders=folders)
        return marked
