"""Run claimed rows through the executor and commit the results.

The coordinator is the only writer: workers return PNG bytes; here a small thread pool writes the
sidecars atomically (an fsync of the file costs 0.3 ms on a quiet disk and far more on a busy share,
so it must not stall the hand-out of the next job), and the outcomes are recorded in the state
database in batches (one short ``BEGIN IMMEDIATE`` transaction per batch). Each folder written to is
fsynced once per batch, just before the batch is committed: the commit is the durability point
(:mod:`.crashcheck` redraws what a crash lost).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sidecar_thumbs.errors import DatabaseLockedError
from sidecar_thumbs.files.atomic import fsync_dir
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import FileState, ModelRow, RenderDone, RenderFailed, ThumbSource
from sidecar_thumbs.work.commit import SidecarCommitter, _Record
from sidecar_thumbs.work.crashcheck import close_writes, open_writes
from sidecar_thumbs.work.executors.local import Executor, result_of
from sidecar_thumbs.work.jobs import RenderJob, RenderResult
from sidecar_thumbs.work.outcomes import Outcome, OutcomeKind, RunStats

__all__ = ["Pipeline"]

log = logging.getLogger(__name__)

# How often (s) and after how many outcomes results are committed to the database.
FLUSH_INTERVAL = 0.5
FLUSH_COUNT = 200
# On stop, how long to keep trying to commit results while another process holds the database.
ABANDON_COMMIT_WAIT = 30.0


class Pipeline(SidecarCommitter):
    """Renders claimed rows and commits their outcomes.

    Args:
        db: the state database (used from the calling thread only).
        executor: where jobs run.
        options: what the thumbnails look like.
        timeout: the per-file limit, for messages (the executor enforces it).
        durable: order sidecar writes and fsync their folders (tests may switch it off).
        full_fsync: flush the drive's cache for every sidecar (macOS ``F_FULLFSYNC``; the
            ``full_fsync`` setting), instead of ordering the write only.
        on_outcome: called in the calling thread for every finished model.
        roots: the library roots: a model that became a symlink out of them (or a FIFO) after its
            worker read it gets no sidecar; its row is marked missing (the walker's rule).
    """

    def __init__(
        self,
        db: StateDB,
        executor: Executor,
        options: ThumbnailOptions,
        *,
        timeout: float | None = None,
        durable: bool = True,
        full_fsync: bool = False,
        writer_threads: int = 4,
        on_outcome: Callable[[Outcome], None] | None = None,
        map_path: Callable[[str], str] | None = None,
        is_gone: Callable[[str], bool] | None = None,
        roots: Sequence[str] | None = None,
    ) -> None:
        self.roots = list(roots) if roots else None
        self.db = db
        self.executor = executor
        self.options = options
        self.timeout = timeout
        self.durable = durable
        self.full_fsync = full_fsync
        # Folders given a sidecar since the last commit: fsynced once each before it (writer threads add).
        self._folders: set[str] = set()
        self._folders_lock = threading.Lock()
        self._writes_noted = False
        self.on_outcome = on_outcome
        self.map_path = map_path or (lambda p: p)
        # Whether a model that cannot be found was deleted (its row becomes missing) or only cannot be
        # reached now — its volume went away mid-run (:func:`.roots.model_is_gone`): then the row is held
        # and goes back to pending, its flags untouched.
        self.is_gone = is_gone or (lambda p: not os.path.lexists(p))
        self.unreachable: list[str] = []
        self._writers = cf.ThreadPoolExecutor(max_workers=writer_threads, thread_name_prefix="sidecar-writer")
        self._done: list[RenderDone] = []
        self._failed: list[RenderFailed] = []
        self._requeue: list[FileState] = []
        self._missing: list[str] = []
        self._last_flush = time.monotonic()
        self._lock_warned = False
        self.stats = RunStats()  # of the current or last run; readable after an interruption
        # In flight: render futures, then sidecar-write futures; claimed = rows not yet committed.
        self._renders: dict[cf.Future[RenderResult], tuple[ModelRow, RenderJob]] = {}
        self._writes: dict[cf.Future[tuple[Outcome, list[_Record]]], ModelRow] = {}
        self._claimed: dict[str, ModelRow] = {}
        # Futures of both kinds as they finish (their done-callbacks put them here): a poll takes what
        # finished without walking every future in flight, as ``cf.wait`` does on each call (the window
        # holds dozens of files since the local pool sends them in chunks).
        self._finished: queue.SimpleQueue[cf.Future[Any]] = queue.SimpleQueue()

    def close(self) -> None:
        """Wait for sidecar writes in progress and stop the writer threads; when every result is
        committed, clear the crash note (:mod:`.crashcheck`)."""
        self._writers.shutdown(wait=True)
        if self._writes_noted and not self.pending_commits and not self._claimed:
            self._sync_folders()
            try:
                close_writes(self.db)
                self._writes_noted = False
            except DatabaseLockedError:
                pass  # the note stays: the next coordinator checks the recent sidecars, no harm done

    def _sync_folders(self) -> None:
        with self._folders_lock:
            folders, self._folders = self._folders, set()
        for folder in folders:
            fsync_dir(folder)

    # -- incremental interface (the daemon's loop) -----------------------------------------------

    @property
    def window(self) -> int:
        """How many jobs to keep submitted: enough queued work to keep every worker busy (a running and a
        queued task each; a task of the local pool carries up to ``chunk_files`` small files)."""
        return max(2, self.executor.workers * 2 * getattr(self.executor, "chunk_files", 1))

    @property
    def in_flight(self) -> int:
        """Rows handed out and not yet committed (rendering or being written)."""
        return len(self._claimed)

    def has_room(self) -> bool:
        return len(self._renders) < self.window

    def submit(self, row: ModelRow) -> None:
        """Start rendering one claimed row."""
        if not self._writes_noted:
            open_writes(self.db)
            self._writes_noted = True
        self._claimed[row.path] = row
        job = RenderJob(self.map_path(row.path), self.options, row.size)
        fut = self.executor.submit(job)
        self._renders[fut] = (row, job)
        fut.add_done_callback(self._finished.put)

    def poll(self, timeout: float = FLUSH_INTERVAL) -> None:
        """Wait up to ``timeout`` for work to finish; commit what finished (batched)."""
        if self._renders or self._writes:
            for fut in self._take_finished(timeout):
                if fut in self._renders:
                    row, job = self._renders.pop(fut)
                    result = result_of(job, fut, self.timeout)
                    wfut = self._writers.submit(self._commit_file, row, result)
                    self._writes[wfut] = row
                    wfut.add_done_callback(self._finished.put)
                elif fut in self._writes:
                    row = self._writes.pop(fut)
                    self._claimed.pop(row.path, None)
                    self._take(fut.result(), self.stats)  # never raises
                # else: given up on by abandon() (cancelled, or a write it already took)
        elif timeout > 0:
            time.sleep(timeout)
        if self._renders or self._writes:
            self._maybe_flush()
        else:
            self._flush()  # nothing left in flight: commit the tail now, not when the next job comes

    def _take_finished(self, timeout: float) -> list[cf.Future[Any]]:
        """What finished: waits up to ``timeout`` for the first one, then takes the rest without waiting."""
        try:
            out = [self._finished.get(timeout=timeout) if timeout > 0 else self._finished.get_nowait()]
        except queue.Empty:
            return []
        while True:
            try:
                out.append(self._finished.get_nowait())
            except queue.Empty:
                return out

    def abandon(self, extra: Sequence[ModelRow] = ()) -> int:
        """Stop waiting for renders: cancel them, let sidecar writes in progress complete (they are
        atomic), commit every finished outcome, and put every row still claimed (plus ``extra``,
        rows claimed but never submitted) back to pending. Returns how many went back."""
        for fut in self._renders:
            fut.cancel()
        self._renders.clear()
        for wfut in cf.as_completed(list(self._writes)):
            self._claimed.pop(self._writes[wfut].path, None)
            self._take(wfut.result(), self.stats)
        self._writes.clear()
        self._flush()
        deadline = time.monotonic() + ABANDON_COMMIT_WAIT
        while self.pending_commits and time.monotonic() < deadline:
            time.sleep(0.5)  # the database is locked by another process: wait a little for it
            self._flush()
        back = [*self._claimed, *(r.path for r in extra)]
        held = self.take_unreachable()  # counted as requeued when they came back
        self._claimed.clear()
        if back or held:
            self.db.release_claims(back + held)
        self.stats.requeued += len(back)
        return len(back)

    # -- one-shot interface (scan, verify --fix) --------------------------------------------------

    def run(self, rows: Iterable[ModelRow], stop: threading.Event | None = None) -> RunStats:
        """Render every row of ``rows`` (already claimed: status rendering) and commit the outcomes.

        ``rows`` may be a lazy iterator (e.g. claiming the next batch only when the pool has room), so
        the workers never idle between batches. When ``stop`` is set, no new job is started; jobs in
        flight finish and are committed. Rows that were claimed but not finished (stop, Ctrl-C, an
        error) go back to pending, so the next run continues where this one stopped.
        """
        self.stats = RunStats()
        source: Iterator[ModelRow] = iter(rows)
        exhausted = False
        try:
            while True:
                while not exhausted and self.has_room() and not (stop and stop.is_set()):
                    row = next(source, None)
                    if row is None:
                        exhausted = True
                        break
                    self.submit(row)
                if not self._renders and not self._writes:
                    break
                self.poll()
        finally:
            # Whatever happens (stop, Ctrl-C, a database error), never leave a partial state.
            self.abandon(getattr(source, "unconsumed", list)())
        return self.stats

    def _take(self, committed: tuple[Outcome, list[_Record]], stats: RunStats) -> None:
        outcome, records = committed
        if outcome.kind is OutcomeKind.UNREACHABLE:
            self.unreachable.append(outcome.path)
        for rec in records:
            if isinstance(rec, RenderDone):
                self._done.append(rec)
            elif isinstance(rec, RenderFailed):
                self._failed.append(rec)
            elif isinstance(rec, FileState):
                self._requeue.append(rec)
            else:
                self._missing.append(rec)
        self._count(outcome, stats)

    def _count(self, outcome: Outcome, stats: RunStats) -> None:
        if outcome.kind is OutcomeKind.DONE:
            if outcome.source == ThumbSource.EMBEDDED:
                stats.embedded += 1
            else:
                stats.rendered += 1
        elif outcome.kind in (OutcomeKind.REQUEUED, OutcomeKind.UNREACHABLE):
            stats.requeued += 1
        elif outcome.kind is OutcomeKind.MISSING:
            stats.missing += 1
        else:
            stats.failed += 1
            stats.failures.append((outcome.path, outcome.error or ""))
        if self.on_outcome is not None and outcome.kind in (OutcomeKind.DONE, OutcomeKind.FAILED):
            self.on_outcome(outcome)

    def take_unreachable(self) -> list[str]:
        """Rows whose model could not be reached (its root went offline): still claimed; the caller
        releases them (to pending) once it knows the root's state, so they are not claimed in a loop."""
        out, self.unreachable = self.unreachable, []
        return out

    # -- database ---------------------------------------------------------------------------------

    def _maybe_flush(self) -> None:
        pending = len(self._done) + len(self._failed) + len(self._requeue) + len(self._missing)
        if pending >= FLUSH_COUNT or (pending and time.monotonic() - self._last_flush >= FLUSH_INTERVAL):
            self._flush()

    def flush(self) -> None:
        """Commit every finished outcome now."""
        self._flush()

    def _flush(self) -> None:
        """Commit the batched outcomes, in order. When another process (the asset manager) holds the
        database locked beyond every retry, the outcomes stay queued here and the next flush tries
        again: a long lock delays results, it never loses them (the sidecars are already on disk)."""
        self._last_flush = time.monotonic()
        if self._done:
            self._sync_folders()  # the renames reach the disk before the rows that promise them
        steps: list[tuple[str, Callable[[list[Any]], object]]] = [
            ("_requeue", self.db.upsert_files),
            ("_done", self.db.record_done),
            ("_failed", self.db.record_failed),
            ("_missing", self.db.mark_missing),
        ]
        for attr, write in steps:
            items = getattr(self, attr)
            if not items:
                continue
            setattr(self, attr, [])
            try:
                write(items)
            except DatabaseLockedError as exc:
                setattr(self, attr, items + getattr(self, attr))
                if not self._lock_warned:
                    log.warning("%s; keeping %d results to commit later", exc.message, self.pending_commits)
                    self._lock_warned = True
                return
        self._lock_warned = False

    @property
    def pending_commits(self) -> int:
        return len(self._done) + len(self._failed) + len(self._requeue) + len(self._missing)
