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
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sidecar_thumbs.errors import DatabaseLockedError, ModelError
from sidecar_thumbs.files.atomic import fsync_dir
from sidecar_thumbs.files.fingerprint import FileChangedError, fingerprint
from sidecar_thumbs.files.safeio import LinkOutsideRootsError, NotRegularFileError, stat_regular
from sidecar_thumbs.files.sidecar import write_sidecar
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import FileState, Fingerprint, ModelRow, RenderDone, RenderFailed, ThumbSource
from sidecar_thumbs.work.crashcheck import close_writes, open_writes
from sidecar_thumbs.work.executors.local import Executor, result_of
from sidecar_thumbs.work.jobs import RenderJob, RenderResult

__all__ = ["Outcome", "OutcomeKind", "Pipeline", "RunStats"]

log = logging.getLogger(__name__)

# How often (s) and after how many outcomes results are committed to the database.
FLUSH_INTERVAL = 0.5
FLUSH_COUNT = 200
# On stop, how long to keep trying to commit results while another process holds the database.
ABANDON_COMMIT_WAIT = 30.0


class OutcomeKind(StrEnum):
    """How one claimed model ended."""

    DONE = "done"  # its sidecar is written
    FAILED = "failed"  # with a reason (``Outcome.error``)
    REQUEUED = "requeued"  # it changed during the render: pending again, not a failure
    MISSING = "missing"  # deleted after it was found
    UNREACHABLE = "unreachable"  # its volume went away: still claimed, released once the root's state is known


@dataclass(frozen=True)
class Outcome:
    """What happened to one model, for progress displays and logs."""

    path: str
    kind: OutcomeKind
    source: ThumbSource | None = None
    error: str | None = None
    transient: bool = False
    render_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.DONE


@dataclass
class RunStats:
    """Counts for one pipeline run."""

    rendered: int = 0
    embedded: int = 0
    failed: int = 0
    requeued: int = 0  # changed or interrupted: back to pending, not a failure
    missing: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.rendered + self.embedded + self.failed


class Pipeline:
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
        """How many jobs to keep submitted: enough queued work to keep every worker busy."""
        return max(2, self.executor.workers * 2)

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
        job = RenderJob(self.map_path(row.path), self.options)
        self._renders[self.executor.submit(job)] = (row, job)

    def poll(self, timeout: float = FLUSH_INTERVAL) -> None:
        """Wait up to ``timeout`` for work to finish; commit what finished (batched)."""
        waiting: list[cf.Future[Any]] = [*self._renders, *self._writes]
        if waiting:
            done, _ = cf.wait(waiting, timeout=timeout, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                if fut in self._renders:
                    row, job = self._renders.pop(fut)
                    result = result_of(job, fut, self.timeout)
                    self._writes[self._writers.submit(self._commit_file, row, result)] = row
                else:
                    row = self._writes.pop(fut)
                    self._claimed.pop(row.path, None)
                    self._take(fut.result(), self.stats)  # never raises
        elif timeout > 0:
            time.sleep(timeout)
        if self._renders or self._writes:
            self._maybe_flush()
        else:
            self._flush()  # nothing left in flight: commit the tail now, not when the next job comes

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

    # -- committing (writer threads) --------------------------------------------------------------

    def _commit_file(self, row: ModelRow, result: RenderResult) -> tuple[Outcome, list[_Record]]:
        """Write one sidecar (in a writer thread); return the outcome and the database records to
        make. Touches no shared state (the calling thread batches the records). Never raises."""
        try:
            return self._commit_file_unsafe(row, result)
        except Exception as exc:  # a bug here must not stop the run; the row is retried later
            log.exception("committing %s failed", row.path)
            reason = f"internal error: {exc}"
            return Outcome(row.path, OutcomeKind.FAILED, error=reason, transient=True), [
                RenderFailed(row.path, reason, transient=True)
            ]

    def _commit_file_unsafe(self, row: ModelRow, result: RenderResult) -> tuple[Outcome, list[_Record]]:
        path = row.path
        if not result.ok:
            if result.transient and not os.path.lexists(path):
                return self._vanished(path)  # deleted after discovery, or its volume went away
            reason = result.error or "failed"
            records: list[_Record] = []
            failed_hash = row.hash
            seen = result.fingerprint
            died = not result.transient or result.max_attempts is not None  # crash, timeout
            if seen is None and died and row.hash is None:
                # The worker died (crash, timeout) before saying which content it read: hash it here
                # (in a writer thread), or every scan would see "changed" content and hand it out again.
                seen = _hash_unchanged(path, row, self.options.limits.max_file_bytes)
            if seen is not None and row.hash is None and (seen.size, seen.mtime_ns) == (row.size, row.mtime_ns):
                # Remember which content failed, so an unchanged bad file is not re-read every scan.
                records.append(FileState(path, seen.size, seen.mtime_ns, seen.hash, False))
                failed_hash = seen.hash
            records.append(RenderFailed(path, reason, result.transient, failed_hash, result.max_attempts))
            outcome = Outcome(
                path, OutcomeKind.FAILED, error=reason, transient=result.transient, render_ms=result.render_ms
            )
            return outcome, records
        made_from = result.fingerprint
        assert result.png is not None and made_from is not None
        # The sidecar must show the content that is on disk now: if the model was replaced after
        # the worker read it, do not write a picture of the old content; render it again instead.
        try:
            st = stat_regular(path, roots=self.roots)
        except FileNotFoundError:
            return self._vanished(path)  # deleted, or its volume went away
        except (NotRegularFileError, LinkOutsideRootsError):
            # No longer a model we read (replaced by a link out of the roots, a FIFO): no picture of it
            # is written into the library.
            return Outcome(path, OutcomeKind.MISSING), [path]
        except OSError as exc:
            reason = f"cannot stat: {exc.strerror}"
            return Outcome(path, OutcomeKind.FAILED, error=reason, transient=True), [
                RenderFailed(path, reason, True, row.hash)
            ]
        if (st.st_size, st.st_mtime_ns) != (made_from.size, made_from.mtime_ns):
            return Outcome(path, OutcomeKind.REQUEUED), [
                FileState(path, st.st_size, st.st_mtime_ns, None, needs_render=True)
            ]
        try:
            written = write_sidecar(path, result.png, durable=self.durable, full=self.full_fsync, sync_folder=False)
        except ModelError as exc:
            failed: list[_Record] = []
            if row.hash is None:
                # Record which content this is (the stat matches, checked above), or the next scan
                # sees an unhashed row, calls it changed and renders it again, failing again (a
                # model name too long for a sidecar was rendered on every scan).
                failed.append(FileState(path, made_from.size, made_from.mtime_ns, made_from.hash, False))
            failed.append(RenderFailed(path, exc.message, exc.transient, made_from.hash))
            return Outcome(path, OutcomeKind.FAILED, error=exc.message, transient=exc.transient), failed
        records = []
        if row.hash is not None and row.hash != made_from.hash:
            # The content changed between discovery and render (and is stable now): record the
            # new facts first so the done-record's hash guard accepts this sidecar.
            records.append(FileState(path, made_from.size, made_from.mtime_ns, made_from.hash, True))
        records.append(
            RenderDone(
                path,
                made_from.hash,
                made_from.size,
                made_from.mtime_ns,
                result.source or ThumbSource.RENDERED,
                result.triangles,
                result.render_ms,
            )
        )
        if self.durable:
            with self._folders_lock:
                self._folders.add(os.fspath(written.parent))
        return Outcome(path, OutcomeKind.DONE, source=result.source, render_ms=result.render_ms), records

    def _vanished(self, path: str) -> tuple[Outcome, list[_Record]]:
        if self.is_gone(path):
            return Outcome(path, OutcomeKind.MISSING), [path]
        return Outcome(path, OutcomeKind.UNREACHABLE), []

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


def _hash_unchanged(path: str, row: ModelRow, max_bytes: int) -> Fingerprint | None:
    """The fingerprint of ``path`` if it is stable and its stat still matches ``row``, else None.

    Only a regular file is read (a FIFO swapped in after the worker died cannot block the
    coordinator), and never one over the size cap: its stat key is recorded instead (hashing a
    200 GB sparse file stalled every other model for minutes).
    """
    try:
        got = fingerprint(path, max_bytes=max_bytes)
    except (OSError, FileChangedError):
        return None
    return got if (got.size, got.mtime_ns) == (row.size, row.mtime_ns) else None


_Record = RenderDone | RenderFailed | FileState | str  # str: a path found missing


class ClaimSource:
    """Claims rows batch by batch, lazily: the next batch is claimed only when the pipeline has
    taken the previous one, so at most one batch sits in 'rendering' without a worker. What was
    claimed but not handed out is returned by :meth:`unconsumed` so it can be released."""

    def __init__(
        self,
        db: StateDB,
        batch_size: int,
        roots: Sequence[str] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.db, self.batch_size, self.roots, self.stop = db, batch_size, roots, stop
        self._buffer: list[ModelRow] = []

    def __iter__(self) -> ClaimSource:
        return self

    def __next__(self) -> ModelRow:
        if not self._buffer:
            if self.stop is not None and self.stop.is_set():
                raise StopIteration
            self._buffer = self.db.claim(self.batch_size, roots=self.roots)
            self._buffer.reverse()  # pop() from the end keeps the claim order
            if not self._buffer:
                raise StopIteration
        return self._buffer.pop()

    def unconsumed(self) -> list[ModelRow]:
        rows, self._buffer = self._buffer, []
        return rows


def run_pending(
    pipeline: Pipeline,
    batch_size: int,
    roots: Sequence[str] | None = None,
    stop: threading.Event | None = None,
) -> RunStats:
    """Render everything claimable now (under ``roots``), then return."""
    return pipeline.run(ClaimSource(pipeline.db, batch_size, roots, stop), stop)


__all__ += ["ClaimSource", "run_pending"]
