"""The daemon's rescans and its roots: walk what is online (or only the folders whose events were lost)
and record what changed; follow each root going offline and coming back (detach, re-watch, rescan);
the housekeeping that goes with a walk (temp files of a killed write, the asset manager's table).
A root the daemon cannot list (permission denied: on macOS, no Full Disk Access) is offline like an
absent one, with that reason (:mod:`.root_states`), which ``status`` shows."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from sidecar_thumbs import logs
from sidecar_thumbs.daemon.changes import ChangeTracker
from sidecar_thumbs.daemon.root_states import RootChange, RootStates
from sidecar_thumbs.daemon.settle import Settler
from sidecar_thumbs.daemon.watcher import Watcher
from sidecar_thumbs.errors import RootOfflineError
from sidecar_thumbs.files.discover import WalkProblem
from sidecar_thumbs.files.pathcanon import Volumes
from sidecar_thumbs.files.roots import check_root, root_of
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.reports.clean import clean
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.work.crashcheck import recheck_after_crash
from sidecar_thumbs.work.dam_sync import sync_dam
from sidecar_thumbs.work.pipeline import Pipeline
from sidecar_thumbs.work.reconcile import reconcile

if TYPE_CHECKING:
    from sidecar_thumbs.daemon.loop import DaemonConfig

__all__ = ["RootHandling"]

log = logging.getLogger("sidecar_thumbs.daemon")


class RootHandling:
    """The :class:`~sidecar_thumbs.daemon.loop.Daemon`'s rescans and root handling (a part of it, not used alone)."""

    config: DaemonConfig
    db: StateDB
    options: ThumbnailOptions
    volumes: Volumes
    roots: list[str]
    root_states: RootStates
    settler: Settler
    changes: ChangeTracker
    watcher: Watcher | None
    pipeline: Pipeline | None
    _due_rescans: set[str]

    def _rescan_targets(self, folders: Sequence[str]) -> list[str]:
        """The parts of the roots to look at again when events under ``folders`` were lost: a folder in a
        root is rescanned itself; one above the roots (FSEvents may name the volume) means those roots."""
        out: list[str] = []
        vols = self.volumes
        for folder in folders:
            inside = [r for r in self.roots if vols.same(folder, r) or vols.key(folder).startswith(vols.key(r) + "/")]
            if inside:
                out.append(vols.canonical(folder))
            else:
                above = folder.rstrip("/") + "/"
                out.extend(r for r in self.roots if vols.key(r).startswith(vols.key(above)))
        # Nested targets once: the outer walk covers the inner one.
        out = sorted(set(out))
        return [f for i, f in enumerate(out) if not any(f.startswith(o.rstrip("/") + "/") for o in out[:i])]

    # -- rescans and housekeeping -------------------------------------------------------------------

    def _rescan(
        self, initial: bool = False, roots: Sequence[str] | None = None, folders: Sequence[str] | None = None
    ) -> int:
        """Walk the online roots (or ``roots``, or only ``folders`` in them when events there were lost)
        and record what changed; returns how many to render."""
        t0 = time.monotonic()
        self.db.check_file(deep=not initial and folders is None)
        self.volumes.redetect()  # a root that was not mounted at start is probed once it is
        problems: list[WalkProblem] = []
        if folders:
            what = f"rescan of {', '.join(folders)}"
            online = self.root_states.online()
            targets = [f for f in folders if root_of(f, online) is not None]
            guard = replace(self.config.guard, allowed=False)
        else:
            what = "start-up scan" if initial else "rescan" if roots is None else f"rescan of {', '.join(roots)}"
            # Roots offline by a walk's verdict are walked again: only a walk can bring them back.
            targets = list(roots) if roots is not None else self.root_states.walkable()
            guard = self.config.guard if initial else replace(self.config.guard, allowed=False)
        if not targets:
            return 0
        plan, _, found, offline = reconcile(
            targets, self.db, problems=problems, guard=guard, strict=self.config.once and not folders,
            settle=self.config.settle, max_bytes=self.options.limits.max_file_bytes, volumes=self.volumes,
        )  # fmt: skip
        if not folders:  # a folder's walk says nothing of its root's state
            went = {s.root for s in offline}
            for state in offline:
                self._apply(self.root_states.set(state))
            for root in targets:
                if root not in went and not self.root_states[root].online:  # a walk believed again: back
                    self._apply(self.root_states.set(check_root(root)), rescan=False)
        for p in plan.missing:
            self.changes.schedule_removal(p, time.monotonic())
        for p in plan.settling:
            # Still being written: the settler looks at it once it has been quiet for the window.
            self.settler.touch(p, time.monotonic())
        todo = sum(s.needs_render for s in plan.states) + plan.extras_requeued
        log.info(
            "%s: %d models, %d new, %d changed, %d healed, %d missing; %d to render (%.2f s)",
            what,
            found,
            plan.new,
            plan.changed,
            plan.healed,
            len(plan.missing),
            todo,
            time.monotonic() - t0,
        )
        for problem in problems[:20]:
            logs.log_problem(problem.path, problem.reason)
        if self.db.dam is not None and folders is None:
            synced = sync_dam(self.db, full=True, roots=self.roots, volumes=self.volumes)
            todo += synced.queued
            if synced.queued or synced.reflagged or synced.unresolved or synced.refused:
                log.info("asset manager's table: %d rows, %d queued, %d re-flagged, %d paths not resolvable, "
                         "%d refused (outside the roots, not a model name or not a regular file)",
                         synced.seen, synced.queued, synced.reflagged, synced.unresolved, synced.refused)  # fmt: skip
        if not initial and folders is None:
            self.db.checkpoint()  # keep the WAL small (long readers may have stalled earlier ones)
        return todo

    def _remove_stale_temp_files(self) -> None:
        # We hold the lock: no other coordinator writes here, so every temp file of ours belongs to a
        # write that was killed; no age wait (clean still checks the content is ours).
        online = self.root_states.online()
        try:
            removed = len(clean(online, temp_only=True, temp_age=0.0).temp_removed) if online else 0
        except RootOfflineError as exc:  # went offline since it was checked: the next start cleans
            log.info("temp-file cleanup skipped: %s", exc.message)
            return
        if removed:
            log.info("removed %d temp files left by an interrupted run", removed)
        if online:
            recheck_after_crash(self.db, online)  # we hold the lock: a crash note is a dead writer's

    # -- roots: online / offline ----------------------------------------------------------------------

    def _check_roots(self) -> None:
        """The per-sweep look at the roots."""
        for change in self.root_states.check():
            self._apply(change)
        if self.pipeline is not None:
            held = self.pipeline.take_unreachable()
            if held:  # renders whose volume went away mid-render: pending again, claimed once it is back
                self.db.release_claims(held)

    def _apply(self, change: RootChange | None, *, rescan: bool = True) -> None:
        """Act on a root's change: detach the watch of a root that went; watch a root that is back anew (a
        remounted volume is a new folder, the old watch is blind) and have it rescanned by stat."""
        if change is None:
            return
        root = change.state.root
        if self.watcher is not None:
            self.watcher.detach(root)
        if not change.back:
            self.changes.forget_under(root)
            self._due_rescans.discard(root)
            return
        if self.watcher is not None:
            self.watcher.attach(root)
        if rescan:
            self._due_rescans.add(root)

    def _rescan_due(self) -> int:
        """Rescan the roots that came back or were watched anew (kept due until a rescan went through,
        e.g. past a lock the asset manager held). Returns how many rows were marked for rendering."""
        marked = 0
        for root in list(self._due_rescans):
            if self.root_states[root].online:
                marked += self._rescan(roots=[root])
            self._due_rescans.discard(root)
        return marked
