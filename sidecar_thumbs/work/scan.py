"""The one-off sweep: discover → fingerprint → upsert → render what is new, changed or missing a
sidecar → write sidecars → flag rows.

Planning is cheap by design: the ``(size, mtime_ns)`` gate decides, and only files whose gate moved
are hashed; a ``touch`` or an identical copy re-hashes but does not re-render. The process pool is
started only when something needs rendering, so a no-op rescan of 34,000 files is a walk, one query
and a comparison.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sidecar_thumbs.files.discover import FoundFile, WalkProblem, WalkRow, iter_walk_rows
from sidecar_thumbs.files.fingerprint import hash_file
from sidecar_thumbs.files.formats import EXTRA_MODULES, extra_available
from sidecar_thumbs.files.freshness import check_freshness
from sidecar_thumbs.files.pathcanon import Volumes
from sidecar_thumbs.files.roots import (
    MassMissingGuard,
    RootState,
    canonical_roots,
    check_root,
    model_is_gone,
    offline_error,
    present_by_root,
    require_online,
    root_identity,
    root_of,
)
from sidecar_thumbs.files.sidecar import SidecarInfo, move_our_sidecar, read_sidecar, sidecar_name_for, sidecar_path_for
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import FileState, ModelStatus, PlanRow, RenderDone, ThumbSource
from sidecar_thumbs.work.crashcheck import recheck_after_crash, writes_left_open

if TYPE_CHECKING:
    # The renderer, the pipeline and the executors are imported when something is rendered: a no-op rescan
    # (the CLI's `scan` of an unchanged library) never loads numpy, numba or Pillow (tests/test_scan_imports.py).
    from sidecar_thumbs.render.thumbnail import ThumbnailOptions
    from sidecar_thumbs.work.executors.local import Executor
    from sidecar_thumbs.work.pipeline import Outcome

__all__ = ["Plan", "ScanSummary", "plan_changes", "reconcile", "scan"]

log = logging.getLogger(__name__)

HASH_THREADS = 4  # hashing is I/O-bound on a share; xxh3 itself runs at several GB/s


@dataclass
class Plan:
    """What a walk found, compared with the database."""

    states: list[FileState] = field(default_factory=list)  # rows to insert/update
    adopted: list[RenderDone] = field(default_factory=list)  # new rows whose sidecar is already fresh (in states)
    missing: list[str] = field(default_factory=list)  # rows whose file is gone
    # (old, new): rows under another spelling of a found file on an insensitive volume (a rename by case)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    unchanged: int = 0
    new: int = 0
    changed: int = 0
    touched: int = 0  # gate moved, content the same
    healed: int = 0  # of unchanged + touched: rows marked missing whose model is back with a matching sidecar
    hashed: int = 0
    hash_failures: list[tuple[str, str]] = field(default_factory=list)
    extras_requeued: int = 0  # failed for a missing optional extra that is installed now: pending again
    settling: list[str] = field(default_factory=list)  # new or changed, but modified too recently: left for later


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


def _sidecar_present(model: str, listed: bool | None = None) -> bool:
    """Whether the model's sidecar name is taken; ``listed`` is what the walk already saw."""
    if listed is not None:
        return listed
    head, tail = os.path.split(model)  # plain strings: pathlib costs ~6 µs a file, 0.2 s at 34k
    return os.path.lexists(os.path.join(head, sidecar_name_for(tail)))


def plan_changes(
    found: Sequence[FoundFile],
    rows: dict[str, PlanRow],
    *,
    force: bool = False,
    hasher: Callable[[str], str] = hash_file,
    settle: float = 0.0,
    now_ns: int | None = None,
    volumes: Volumes | None = None,
) -> Plan:
    """Compare what is on disk with the database rows under the same roots.

    Args:
        found: files the walk saw.
        rows: the database's rows under the walked roots, by path.
        force: render everything again.
        hasher: content hash of a file (a seam for tests that count hashes; callers bind the size cap).
        settle: seconds a new or changed file must have gone unmodified before it is looked at; a
            younger one is probably still being copied (parsing it would record a "truncated"
            failure), so it is left for later (``plan.settling``), neither hashed nor marked.
        now_ns: the clock for ``settle`` (tests).
        volumes: the roots' volumes: on an insensitive one, a row under another spelling of a found
            file's path (and not itself found) is that file, renamed (``Plan.renamed``).
    """
    plan = Plan()
    to_hash: list[tuple[FoundFile, PlanRow]] = []
    seen: set[str] = set()
    if now_ns is None:
        now_ns = time.time_ns()
    young_after = now_ns - int(settle * 1e9)
    # An mtime far in the future (a skewed clock on the share) must not postpone a file for ever.
    future_limit = now_ns + 86_400 * 10**9
    respell = _Respeller(found, rows, volumes) if volumes is not None and not volumes.all_exact else None
    for f in found:
        seen.add(f.path)
        row = rows.get(f.path)
        if row is None and respell is not None and (row := respell.row_for(f.path)) is not None:
            plan.renamed.append((row.path, f.path))
            seen.add(row.path)
            row = row._replace(path=f.path)
        young = settle > 0 and young_after < f.mtime_ns < future_limit
        if young and (row is None or row.size != f.size or row.mtime_ns != f.mtime_ns):
            plan.settling.append(f.path)
            continue
        if row is None:
            plan.new += 1
            adopted = None if force else _adopt_existing_sidecar(f)
            if adopted is not None:
                plan.states.append(FileState(f.path, f.size, f.mtime_ns, adopted.hash, needs_render=False))
                plan.adopted.append(adopted)
            else:
                plan.states.append(FileState(f.path, f.size, f.mtime_ns, None, True, from_snapshot=not force))
        elif row.size != f.size or row.mtime_ns != f.mtime_ns or row.hash is None:
            to_hash.append((f, row))
        elif row.status is ModelStatus.MISSING and not force:
            # Back after being marked missing: the row heals without a render when its sidecar still
            # shows this content; only a sidecar that does not is rendered again.
            heals = _sidecar_matches(f, row.hash)
            plan.states.append(FileState(f.path, f.size, f.mtime_ns, row.hash, needs_render=not heals))
            plan.healed += heals  # counted as unchanged too (healed, like touched, says more about some)
            plan.unchanged += heals
            plan.changed += not heals
        elif force or _needs_render(row, f.path, f.has_sidecar):
            plan.changed += 1
            plan.states.append(FileState(f.path, f.size, f.mtime_ns, row.hash, True, _from_snapshot(row, f, force)))
        else:
            plan.unchanged += 1
    if to_hash:
        _hash_moved(to_hash, plan, force, hasher)
    plan.missing = [p for p, r in rows.items() if p not in seen and r.status is not ModelStatus.MISSING]
    return plan


def _from_snapshot(row: PlanRow, f: FoundFile, force: bool) -> bool:
    """Whether a "needs render" may yield to a render made since the rows were read (see
    ``FileState.from_snapshot``). Not with ``force``, and not for a row that was done at this very
    stat when read: then the sidecar is gone from disk and the row must be queued whatever it says."""
    if force:
        return False
    return row.status is not ModelStatus.DONE or (row.size, row.mtime_ns) != (f.size, f.mtime_ns)


class _Respeller:
    """Finds the row of a found file stored under another spelling (keys built only when first needed)."""

    def __init__(self, found: Sequence[FoundFile], rows: dict[str, PlanRow], volumes: Volumes) -> None:
        self._found, self._rows, self._volumes = found, rows, volumes
        self._by_key: dict[str, PlanRow] | None = None

    def row_for(self, path: str) -> PlanRow | None:
        if self._by_key is None:
            on_disk = {f.path for f in self._found}
            key = self._volumes.key
            # A row whose exact path is on disk is that file's own; only the others may be renamed files.
            self._by_key = {key(p): r for p, r in self._rows.items() if p not in on_disk}
        return self._by_key.pop(self._volumes.key(path), None)


def _needs_render(row: PlanRow, path: str, listed: bool | None = None) -> bool:
    """Unchanged content: render only if the thumbnail is missing or the row is waiting anyway."""
    if row.status in (ModelStatus.PENDING, ModelStatus.RENDERING):
        return True
    if row.status is ModelStatus.FAILED:
        return False  # deterministic failures wait for a content change (or --retry-failed)
    return not (row.has_thumbnail and _sidecar_present(path, listed))


def _listed_sidecar(f: FoundFile) -> SidecarInfo | None:
    """What the model's sidecar says of itself, or None when there is none (the walk's listing saves
    the lstat when it saw none)."""
    if f.has_sidecar is False:
        return None
    sidecar = sidecar_path_for(f.path)
    return read_sidecar(sidecar) if os.path.lexists(sidecar) else None


def _sidecar_matches(f: FoundFile, content_hash: str | None) -> bool:
    """Whether the model's sidecar is ours and shows this content (for a row marked missing that is
    back: a volume that was away, or a row an earlier version marked missing while it was offline)."""
    info = _listed_sidecar(f)
    # The house's one freshness rule; no hashing here: the row's hash stands for the content it saw.
    return check_freshness(f.path, f.size, f.mtime_ns, info, known_hash=content_hash, hasher=None).fresh


def _adopt_existing_sidecar(f: FoundFile) -> RenderDone | None:
    """A model new to the database may already have a fresh sidecar of ours (the database was
    lost, or another machine made it): record it instead of rendering again."""
    info = _listed_sidecar(f)
    # Any settings, and no hashing: only a sidecar made from exactly this size and mtime is adopted.
    fresh = check_freshness(f.path, f.size, f.mtime_ns, info, hasher=None).fresh
    if info is None or info.content_hash is None or not fresh:
        return None
    return RenderDone(f.path, info.content_hash, f.size, f.mtime_ns, ThumbSource.of(info.source), None, 0.0)


def _hash_moved(items: list[tuple[FoundFile, PlanRow]], plan: Plan, force: bool, hasher: Callable[[str], str]) -> None:
    def work(item: tuple[FoundFile, PlanRow]) -> tuple[FoundFile, PlanRow, str | None, str | None]:
        f, row = item
        try:
            return f, row, hasher(f.path), None
        except OSError as exc:
            return f, row, None, exc.strerror or str(exc)

    with cf.ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="hash") as pool:
        for f, row, digest, err in pool.map(work, items):
            if digest is None:
                # Vanished or unreadable right now: leave the row as it was; the next sweep retries.
                plan.hash_failures.append((f.path, err or "unreadable"))
                continue
            plan.hashed += 1
            if digest == row.hash and not force:
                plan.touched += 1
                if row.status is ModelStatus.MISSING:
                    needs = not _sidecar_matches(f, digest)
                    plan.healed += not needs
                else:
                    needs = _needs_render(row, f.path, f.has_sidecar) if row.status is not ModelStatus.FAILED else False
                plan.states.append(FileState(f.path, f.size, f.mtime_ns, digest, needs, _from_snapshot(row, f, force)))
            else:
                plan.changed += 1
                plan.states.append(FileState(f.path, f.size, f.mtime_ns, digest, True, _from_snapshot(row, f, force)))


def reconcile(
    roots: Sequence[str],
    db: StateDB,
    *,
    force: bool = False,
    problems: list[WalkProblem] | None = None,
    guard: MassMissingGuard | None = None,
    strict: bool = False,
    settle: float = 0.0,
    max_bytes: int | None = None,
    volumes: Volumes | None = None,
    hasher: Callable[[str], str] | None = None,
) -> tuple[Plan, dict[str, PlanRow], int, list[RootState]]:
    """Walk ``roots``, compare with the database and record the differences (no rendering).

    New and changed files become pending; vanished ones missing — but only under a root that is online
    (:mod:`.roots`): an offline root is not walked, and a walk that lists nothing or loses too many models
    at once marks nothing missing. This is the whole of a rescan: the daemon runs it at start and every
    rescan interval as the safety net for events that never came.

    Args:
        guard: when a walk's losses are believed.
        strict: raise :class:`~.errors.RootOfflineError` when a root is offline, before writing anything
            (one-off commands); otherwise record what the online roots hold and report the rest.
        settle, max_bytes: as for :func:`plan_changes` (``max_bytes``, the size cap: a larger file is
            never hashed).
        volumes: the roots' volumes (see :mod:`.pathcanon`): names compare by each volume's rules;
            ``roots`` should then be in their on-disk spelling (``volumes.roots``, or folders below them).
        hasher: the content hash of a moved file (default :func:`~.fingerprint.hash_file` capped at
            ``max_bytes``); the one-off scan passes one that makes its render options only if it is called.

    Returns:
        (the plan, the rows as they were before that needed a look — with ``force`` every row under the
        walked roots; otherwise those :meth:`~.state.StateDB.plan_rows_differing` returns, which include
        every row not done —, how many model files were found, the offline roots).
    """
    problems = problems if problems is not None else []
    guard = guard or MassMissingGuard()
    for typed, on_disk in volumes.respelled_roots() if volumes is not None else ():
        # Rows recorded under the root as it was typed before (events, an older version) join the disk's.
        moved = db.rename_under(typed, on_disk)
        if moved:
            log.info("%d rows recorded under %s follow the root's spelling on disk, %s", moved, typed, on_disk)
    rows: dict[str, PlanRow] = {}
    found: list[WalkRow] = []  # plain tuples: a FoundFile is made only for those that need a look
    walked: list[tuple[str, int, int]] = []  # (root, models found, rows present before)
    offline: list[RootState] = []
    for root in canonical_roots(roots):
        under = db.plan_rows_under([root]) if force else None
        known = present_by_root(under, [root]).get(root, 0) if under is not None else db.present_under(root)
        state = check_root(root, known=0 if guard.allowed else known)
        if not state.online:
            offline.append(state)
            continue
        before = len(found)
        found.extend(iter_walk_rows([root], on_problem=problems.append, volumes=volumes))
        if under is not None:
            rows.update(under)
        walked.append((root, len(found) - before, known))
    if strict and offline:
        raise offline_error(offline)
    unchanged = 0
    if not force and walked:
        # The comparison in SQL (issue 17): only rows that differ from the walk come back; a found file
        # with neither a differing row nor none at all is unchanged, done, its sidecar listed.
        walk = [(path, size, mtime_ns, listed) for path, size, mtime_ns, _, listed in found]
        rows, new_paths = db.plan_rows_differing([w[0] for w in walked], walk)
        look = [FoundFile(*f) for f in found if f[0] in rows or f[0] in new_paths]
        unchanged = len(found) - len(look)
    else:
        look = [FoundFile(*f) for f in found]
    plan = plan_changes(
        look,
        rows,
        force=force,
        settle=settle,
        hasher=hasher or functools.partial(hash_file, max_bytes=max_bytes),
        volumes=volumes,
    )
    plan.unchanged += unchanged
    gone: dict[str, list[str]] = {}
    for p in plan.missing:
        gone.setdefault(root_of(p, [w[0] for w in walked]) or "", []).append(p)
    for root, n_found, known in walked:
        verdict = guard.verdict(root, found=n_found, known=known, missing=len(gone.get(root, ())))
        if verdict is not None:
            offline.append(verdict)
            gone.pop(root, None)  # a volume half there: its absent models are not deleted ones
    plan.missing = [p for paths in gone.values() for p in paths]
    if strict and offline:
        raise offline_error(offline)
    problems.extend(WalkProblem(p, f"cannot hash: {r}") for p, r in plan.hash_failures)
    for old, new in plan.renamed:
        # Before the upsert, which would otherwise add the new spelling as a second row.
        db.rename(old, new)
        move_our_sidecar(old, new, same_entry=True)
    if plan.states:
        db.upsert_files(plan.states)
    if plan.missing:
        db.mark_missing(plan.missing)
    installed = [extra for extra in EXTRA_MODULES if extra_available(extra)]
    if walked:  # only under roots that are online: an offline volume's files cannot be read now
        plan.extras_requeued = db.requeue_missing_extras(installed, [w[0] for w in walked])
    return plan, rows, len(found), offline


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
    volumes = volumes or Volumes.detect(roots)
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
    from sidecar_thumbs.work.pipeline import ClaimSource, Pipeline

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
