"""The one-off sweep: discover → fingerprint → upsert → render what is new, changed or missing a
sidecar → write sidecars → flag rows.

Planning (:mod:`.plan`) and recording (:mod:`.reconcile`) are cheap by design; the process pool is
started only when something needs rendering, so a no-op rescan of 34,000 files is a walk, one query
and a comparison.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sidecar_thumbs.files.discover import WalkProblem
from sidecar_thumbs.files.fingerprint import hash_file
from sidecar_thumbs.files.pathcanon import Volumes
from sidecar_thumbs.files.roots import (
    MassMissingGuard,
    canonical_roots,
    model_is_gone,
    require_online,
    root_identity,
)
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus
from sidecar_thumbs.work.crashcheck import recheck_after_crash, writes_left_open
from sidecar_thumbs.work.outcomes import Outcome
from sidecar_thumbs.work.plan import Plan
from sidecar_thumbs.work.reconcile import reconcile

if TYPE_CHECKING:
    # The renderer, the pipeline and the executors are imported when something is rendered: a no-op rescan
    # (the CLI's `scan` of an unchanged library) never loads numpy, numba or Pillow (tests/test_scan_imports.py).
    from sidecar_thumbs.render.thumbnail import ThumbnailOptions
    from sidecar_thumbs.work.executors.local import Executor

__all__ = ["ScanSummary", "scan"]

log = logging.getLogger(__name__)


@dataclass
class ScanSummary:
    """The result of one scan, as the CLI prints it.

    Every model found is in exactly one of: ``unchanged``, ``adopted``, ``rendered``, ``embedded``,
    ``failed`` (this run), ``known_failed`` (failed before, unchanged since, not tried again) and
    ``pending`` (left for a running daemon, a later retry or the next scan) — they add up to ``found``.
    ``new``, ``changed``, ``touched`` and ``hashed`` describe the walk and overlap with those.
    """

    found: int = 0
    unchanged: int = 0
    adopted: int = 0  # new to the database, its sidecar already there and fresh: recorded, not rendered
    known_failed: int = 0
    pending: int = 0
    retried: int = 0  # failed models put back to pending by --retry-failed
    new: int = 0
    changed: int = 0
    touched: int = 0
    healed: int = 0
    hashed: int = 0
    missing: int = 0
    rendered: int = 0
    embedded: int = 0
    failed: int = 0
    requeued: int = 0
    deferred: int = 0  # marked pending for a running daemon instead of rendered here
    deferred_to: str | None = None  # who renders them: "daemon (pid 12)"; None when this scan rendered
    temp_removed: int = 0  # temp files of a killed writer removed at the start
    elapsed: float = 0.0
    render_elapsed: float = 0.0
    interrupted: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)
    problems: list[WalkProblem] = field(default_factory=list)

    @property
    def renders_per_s(self) -> float:
        n = self.rendered + self.embedded + self.failed
        return n / self.render_elapsed if self.render_elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "found": self.found,
            "unchanged": self.unchanged,
            "adopted": self.adopted,
            "known_failed": self.known_failed,
            "pending": self.pending,
            "retried": self.retried,
            "new": self.new,
            "changed": self.changed,
            "touched": self.touched,
            "healed": self.healed,
            "hashed": self.hashed,
            "missing": self.missing,
            "rendered": self.rendered,
            "embedded": self.embedded,
            "failed": self.failed,
            "requeued": self.requeued,
            "deferred": self.deferred,
            "temp_removed": self.temp_removed,
            "elapsed_s": round(self.elapsed, 3),
            "renders_per_s": round(self.renders_per_s, 2),
            "interrupted": self.interrupted,
            "failures": [{"path": p, "reason": r} for p, r in self.failures],
            "problems": [{"path": p.path, "reason": p.reason} for p in self.problems],
        }


def scan(
    roots: Sequence[str],
    *,
    db: StateDB,
    make_executor: Callable[[], Executor],
    options: ThumbnailOptions | Callable[[], ThumbnailOptions],
    batch_size: int = 200,
    timeout: float | None = None,
    force: bool = False,
    retry_failed: bool = False,
    durable: bool = True,
    full_fsync: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_plan: Callable[[Plan, int], None] | None = None,
    stop: threading.Event | None = None,
    mark_only: bool = False,
    guard: MassMissingGuard | None = None,
    holds_lock: bool = False,
    volumes: Volumes | None = None,
) -> ScanSummary:
    """Scan ``roots`` once and render everything that needs it.

    Args:
        roots: absolute folders (or single model files).
        db: the state database.
        make_executor: called once, only if something needs rendering.
        options: what thumbnails look like, or a function that makes them: called once, when something is
            hashed or rendered (the options import the renderer, which a no-op rescan never needs).
        on_outcome: called for each rendered or failed model (progress).
        on_plan: called with the plan and the number of rows to render, before rendering starts.
        stop: set it (e.g. from a signal handler) to stop starting new renders.
        mark_only: only record what needs rendering (a running daemon renders it).
        guard: when a walk's losses are believed; a root found offline raises
            :class:`~.errors.RootOfflineError` and nothing is written.
        holds_lock: the caller holds the coordinator lock: temp files of a killed writer are removed
            first, whatever their age (no one else writes sidecars now), and if that writer did not stop
            cleanly, the sidecars it committed are checked (:mod:`.crashcheck`).
        full_fsync: flush the drive's cache for every sidecar (see :class:`~.pipeline.Pipeline`).
        volumes: how the roots' volumes compare names (default: probed now, see :mod:`.pathcanon`).

    Ctrl-C (KeyboardInterrupt) is safe at any moment: sidecar writes are atomic, finished results
    are committed and unfinished rows go back to pending, so the next scan continues from there.
    """
    t0 = time.monotonic()
    summary = ScanSummary()
    get_options = _options_getter(options)
    roots = canonical_roots(roots)
    # A one-off scan stops at an offline root (exit 1) before it writes anything.
    require_online(roots)
    volumes = volumes or Volumes.detect(roots, cache=db)  # probed once per volume, not per scan
    roots = list(volumes.roots)
    if not mark_only:
        # This scan is the coordinator: rows still "rendering" were claimed by one that died (a
        # killed scan or daemon). They go back to pending, as the daemon does at start; a plan
        # would not re-queue them (see FileState.from_snapshot).
        db.release_claims()
    if holds_lock and not mark_only:
        from sidecar_thumbs.reports.clean import clean

        if writes_left_open(db):  # temp files are left only by a writer killed mid-write: else no second walk
            summary.temp_removed = len(clean(roots, temp_only=True, temp_age=0.0).temp_removed)
        recheck_after_crash(db, roots)  # torn sidecars become pending rows, which the plan queues
    plan, rows, found, _ = reconcile(
        roots, db, force=force, problems=summary.problems, guard=guard, strict=True, volumes=volumes,
        hasher=lambda path: hash_file(path, max_bytes=get_options().limits.max_file_bytes),
    )  # fmt: skip
    summary.found = found
    summary.unchanged, summary.new, summary.changed = plan.unchanged, plan.new, plan.changed
    summary.touched, summary.hashed, summary.healed = plan.touched, plan.hashed, plan.healed
    summary.missing = len(plan.missing)
    summary.adopted = len(plan.adopted)
    if retry_failed:
        summary.retried = db.retry_failed(roots)
    queued_by_dam = 0
    if db.dam is not None:
        from sidecar_thumbs.work.dam_sync import sync_dam

        queued_by_dam = sync_dam(db, full=True, roots=roots, volumes=volumes).queued
    now = time.time()
    retryable = sum(
        1
        for r in rows.values()
        if r.status is ModelStatus.FAILED
        and r.error_transient
        and r.next_attempt_at is not None
        and r.next_attempt_at <= now
    )
    # --retry-failed put every failed row back to pending, the transient ones that were due included.
    todo = sum(s.needs_render for s in plan.states) + (summary.retried or retryable) + queued_by_dam
    todo += plan.extras_requeued
    if mark_only:
        # A daemon owns this database: the rows are marked pending and its sweep renders them.
        summary.deferred = todo
        return _finish(summary, db, roots, t0)
    if on_plan is not None:
        on_plan(plan, todo)
    if todo == 0 and not retry_failed:
        return _finish(summary, db, roots, t0)
    from sidecar_thumbs.render import describe_kernel
    from sidecar_thumbs.work.claims import ClaimSource
    from sidecar_thumbs.work.pipeline import Pipeline

    t_render = time.monotonic()
    options = get_options()
    log.info("renderer: %s", describe_kernel(options.render.kernel))
    executor = make_executor()
    # A model that vanishes mid-run is deleted only if its volume is still the one walked.
    identities = {r: root_identity(r) for r in roots}
    pipeline = Pipeline(
        db,
        executor,
        options,
        timeout=timeout,
        durable=durable,
        full_fsync=full_fsync,
        on_outcome=on_outcome,
        is_gone=functools.partial(model_is_gone, identities=identities),
        roots=roots,
    )
    try:
        pipeline.run(ClaimSource(db, batch_size, roots, stop), stop)
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        # On Ctrl-C: kill workers at once (their results would be thrown away), then let the
        # pipeline's own cleanup (in run's finally) have committed what finished.
        executor.shutdown(cancel=summary.interrupted or bool(stop and stop.is_set()))
        pipeline.close()
        stats = pipeline.stats
        summary.rendered, summary.embedded, summary.failed = stats.rendered, stats.embedded, stats.failed
        summary.requeued, summary.failures = stats.requeued, stats.failures
        summary.missing += stats.missing
        summary.render_elapsed = time.monotonic() - t_render
        summary.elapsed = time.monotonic() - t0
        summary.interrupted = summary.interrupted or bool(stop and stop.is_set())
    return _finish(summary, db, roots, t0)


def _options_getter(options: ThumbnailOptions | Callable[[], ThumbnailOptions]) -> Callable[[], ThumbnailOptions]:
    """The options, made at most once, on first use."""
    if callable(options):
        return functools.cache(options)
    return lambda: options


def _finish(summary: ScanSummary, db: StateDB, roots: Sequence[str], t0: float) -> ScanSummary:
    """Fill in the counts that make the summary add up to ``found``, from the rows as they are now.

    Failures still standing under the scanned roots from earlier runs are counted (``known_failed``),
    so an unchanged bad file gives the same answer, and the same exit code, on every scan.
    """
    counts = db.counts_under(roots)
    summary.known_failed = max(0, counts[ModelStatus.FAILED] - summary.failed)
    summary.pending = counts[ModelStatus.PENDING] + counts[ModelStatus.RENDERING]
    accounted = summary.adopted + summary.rendered + summary.embedded + summary.failed
    summary.unchanged = max(0, summary.found - accounted - summary.known_failed - summary.pending)
    summary.elapsed = time.monotonic() - t0
    return summary
