"""The rescan: walk the roots that are online, compare with the database and record the differences
(no rendering). The daemon runs it at start and every rescan interval; a scan runs it first.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence

from sidecar_thumbs.files.discover import FoundFile, WalkProblem, WalkRow, iter_walk_rows
from sidecar_thumbs.files.fingerprint import hash_file
from sidecar_thumbs.files.formats import EXTRA_MODULES, extra_available
from sidecar_thumbs.files.pathcanon import Volumes
from sidecar_thumbs.files.roots import (
    MassMissingGuard,
    RootState,
    canonical_roots,
    check_root,
    offline_error,
    present_by_root,
    root_of,
)
from sidecar_thumbs.files.sidecar import move_our_sidecar
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import PlanRow
from sidecar_thumbs.work.plan import Plan, plan_changes

__all__ = ["reconcile"]

log = logging.getLogger(__name__)


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
        rows, new_paths = db.plan_rows_differing([w[0] for w in walked], found)
        look = [FoundFile(*f) for f in found if f[0] in rows or f[0] in new_paths] if rows or new_paths else []
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
