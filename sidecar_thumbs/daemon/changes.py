"""File-system changes → database marks: the daemon's intake.

Events only mark: a changed file waits in the :class:`~sidecar_thumbs.daemon.settle.Settler` until it is
stable, then is fingerprinted here; content that is new or different becomes pending; a move takes
its row and its sidecar along (also when the move arrived as delete + create, matched by content
hash); a delete marks the row missing and removes our sidecar a little later. Nothing here renders.

Event paths are put in the volume's own spelling first (:mod:`.pathcanon`), and on a case- or
normalisation-insensitive volume a new name whose folder holds a row under another spelling of it is that
row renamed (a rename by case that arrived as delete + create): it keeps its row and its sidecar.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence

from sidecar_thumbs.daemon.events import EventKind, FileEvent
from sidecar_thumbs.daemon.settle import Settler
from sidecar_thumbs.files.discover import iter_model_files, model_on_disk
from sidecar_thumbs.files.fingerprint import FileChangedError, fingerprint
from sidecar_thumbs.files.pathcanon import Volumes
from sidecar_thumbs.files.safeio import LinkOutsideRootsError, NotRegularFileError, inside_roots, stat_regular
from sidecar_thumbs.files.sidecar import model_name_for_sidecar, move_our_sidecar, read_sidecar, sidecar_path_for
from sidecar_thumbs.reports.verify import remove_our_sidecar
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import FileState, ModelRow, ModelStatus

__all__ = ["ChangeTracker"]

log = logging.getLogger("sidecar_thumbs.daemon")


class ChangeTracker:
    """Turns watcher events and settled paths into database marks (used from the daemon's thread)."""

    def __init__(
        self,
        db: StateDB,
        settler: Settler,
        roots: Sequence[str] = (),
        *,
        max_bytes: int | None = None,
        is_gone: Callable[[str], bool] | None = None,
        volumes: Volumes | None = None,
    ) -> None:
        self.db = db
        self.settler = settler
        # The walker's rule for links: an event path is followed only into these. Events come from
        # the watched roots, so without roots (tests of the bookkeeping) any link would pass.
        self.roots: tuple[str, ...] | None = tuple(roots) or None
        self.max_bytes = max_bytes  # the size cap: a larger file is never hashed here
        # Whether an absent model was deleted, or its root is offline / its volume replaced
        # (:func:`.roots.model_is_gone`): only a deletion marks a row missing, removes a sidecar, or lets
        # a new file with the same content take the row over as a move.
        self.is_gone = is_gone or (lambda p: not os.path.lexists(p))
        self.volumes = volumes  # the roots' volumes; None: paths compare byte for byte
        self.settle = settler.settle
        self.pending_removals: dict[str, float] = {}  # sidecar → when to remove it

    def schedule_removal(self, model: str, when: float) -> None:
        """Remove the sidecar of a vanished model at ``when`` (unless a move adopts it first)."""
        self.pending_removals[str(sidecar_path_for(model))] = when

    def handle(self, events: Sequence[FileEvent], now: float) -> int:
        """Apply events; returns how many models became pending."""
        marked = 0
        vols = self.volumes
        if vols is not None and not vols.all_exact:
            vols.forget()  # listings are good for this batch only
            events = [_spelled_on_disk(ev, vols) for ev in events]
        for ev in events:
            if ev.kind is EventKind.CHANGED:
                if ev.is_dir:
                    # A folder arrived: its files may never send events of their own. A symlink to a
                    # folder outside the roots is not walked (the walker would take it as a root).
                    if self._folder_allowed(ev.path):
                        self._folder_spelled_otherwise(ev.path)
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
            gone = [p for p in self.db.rows_under([path]) if self.is_gone(p)]
        else:
            self.settler.forget(path)
            gone = [path] if self.is_gone(path) else []
        if gone:
            self.db.mark_missing(gone)
            for p in gone:
                # Removed a little later: if this "delete" is half of a rename seen as delete +
                # create (FSEvents), the new file adopts the sidecar instead of re-rendering.
                self.pending_removals[str(sidecar_path_for(p))] = now + self.settle + 2
            log.info("deleted: %s", path if len(gone) == 1 else f"{path} ({len(gone)} models)")
        return 0

    def _moved(self, src: str, dest: str, is_dir: bool, now: float) -> int:
        if is_dir:
            self.settler.forget_under(src)
            n = self.db.rename_under(src, dest)
            if n:
                log.info("folder moved: %s -> %s (%d models follow it)", src, dest, n)
            else:
                # Its models' own moves came first (and were logged one by one): nothing left to say.
                log.debug("folder moved: %s -> %s (its models already followed)", src, dest)
            # Anything in it the database did not know yet gets looked at.
            for f in iter_model_files([dest] if self._folder_allowed(dest) else []):
                if self.db.get(f.path) is None:
                    self.settler.touch(f.path, now)
            return 0
        self.settler.forget(src)
        if self.db.rename(src, dest):
            self._move_sidecar(src, dest)
            log.info("moved: %s -> %s", src, dest)
        self.settler.touch(dest, now)  # the stat gate confirms nothing else changed
        return 0

    def _folder_allowed(self, path: str) -> bool:
        return self.roots is None or inside_roots(os.path.realpath(path), self.roots)

    def _move_sidecar(self, src: str, dest: str) -> bool:
        same = self.volumes is not None and self.volumes.same(src, dest)
        if not move_our_sidecar(src, dest, same_entry=same):
            return False
        self.pending_removals.pop(str(sidecar_path_for(src)), None)
        return True

    def _folder_spelled_otherwise(self, folder: str) -> None:
        """On an insensitive volume: rows under another spelling of this new folder are its rows (a folder
        renamed by case, seen as delete + create): they follow it instead of being rendered again."""
        vols = self.volumes
        if vols is None or vols.rules_for(folder).exact:
            return
        key = vols.rules_for(folder).key
        prefix = key(folder.rstrip(os.sep)) + os.sep
        depth = folder.rstrip(os.sep).count(os.sep)
        old_folders = {
            os.sep.join(p.split(os.sep)[: depth + 1])
            for p in self.db.rows_under([os.path.dirname(folder)])
            if key(p).startswith(prefix) and not p.startswith(folder.rstrip(os.sep) + os.sep)
        }
        for old in old_folders:
            if not vols.listed(old):
                n = self.db.rename_under(old, folder)
                log.info(
                    "folder renamed: %s -> %s (same folder, another spelling; %d models follow it)", old, folder, n
                )

    def _row_spelled_otherwise(self, path: str) -> ModelRow | None:
        """On an insensitive volume: the row of this very file under another spelling, renamed to ``path``.

        The old spelling counts only when it is no longer listed in the folder (a volume keeps one spelling
        per entry), so two files that the rules cannot tell apart are never merged.
        """
        vols = self.volumes
        if vols is None or vols.rules_for(path).exact:
            return None
        key = vols.rules_for(path).key
        for other in self.db.rows_spelled_like(path, key):
            if vols.listed(other.path):
                continue
            if self.db.rename(other.path, path):
                self._move_sidecar(other.path, path)
                log.info("renamed: %s -> %s (same file, another spelling)", other.path, path)
                return self.db.get(path)
        return None

    def remove_due_sidecars(self, now: float) -> None:
        for sidecar, when in list(self.pending_removals.items()):
            if now < when:
                continue
            del self.pending_removals[sidecar]
            model = os.path.join(os.path.dirname(sidecar), model_name_for_sidecar(os.path.basename(sidecar)))
            # Deleted (its volume is there), or no longer a model we read (a link out of the roots, a
            # FIFO): the sidecar goes. A model whose root is offline is neither.
            there_but_not_ours = self.roots is not None and model_on_disk(model, self.roots) is False
            if self.is_gone(model) or there_but_not_ours:
                remove_our_sidecar(sidecar)

    def forget_under(self, root: str) -> None:
        """A root went offline: drop what was waiting under it (its sidecars are not to be removed)."""
        self.settler.forget_under(root)
        prefix = root.rstrip(os.sep) + os.sep
        for sidecar in [s for s in self.pending_removals if s.startswith(prefix)]:
            del self.pending_removals[sidecar]

    def ingest(self, paths: Sequence[str]) -> int:
        """Settled paths: fingerprint, adopt moves, mark changed content pending."""
        states: list[FileState] = []
        for path in paths:
            try:
                # Never a FIFO, device or socket (opening one blocked the daemon for ever), never a
                # link out of the roots (the walker does not follow one either): no row, no sidecar.
                st = stat_regular(path, roots=self.roots)
            except (NotRegularFileError, LinkOutsideRootsError) as exc:
                log.info("not a model file to read: %s: %s", path, exc.strerror)
                if self.db.get(path) is not None:  # it was a model (replaced by a link or a FIFO)
                    self.db.mark_missing([path])
                    self.schedule_removal(path, time.monotonic())
                continue
            except OSError:
                continue  # vanished or unreadable now; a later event or the rescan sees it again
            try:
                row = self.db.get(path) or self._row_spelled_otherwise(path)
                if row is not None and (row.size, row.mtime_ns) == (st.st_size, st.st_mtime_ns):
                    if row.status in (ModelStatus.PENDING, ModelStatus.RENDERING):
                        continue  # already queued for exactly this file (e.g. found by a rescan too)
                    if row.status is ModelStatus.FAILED and row.hash:
                        continue  # same content that failed before
                    if row.status is ModelStatus.DONE and os.path.lexists(sidecar_path_for(path)):
                        continue  # nothing changed (e.g. the event was our own metadata or a no-op)
                digest = fingerprint(path, roots=self.roots, max_bytes=self.max_bytes, first=st).hash
            except FileChangedError:
                self.settler.touch(path, time.monotonic())  # changed while hashing: not settled
                continue
            except OSError:
                continue  # vanished or unreadable now; a later event or the rescan sees it again
            if row is None:
                twin = self.db.find_missing_by_hash(digest, st.st_size)
                # A move only when the original is really gone: a copy of a model whose row an earlier
                # version marked missing (its volume was away) must not take the original's row.
                if (
                    twin is not None
                    and self.is_gone(twin.path)
                    and self.db.rename(twin.path, path)
                    and self._move_sidecar(twin.path, path)
                ):
                    log.info("moved: %s -> %s (matched by content)", twin.path, path)
                    states.append(FileState(path, st.st_size, st.st_mtime_ns, digest, needs_render=False))
                    continue
                states.append(FileState(path, st.st_size, st.st_mtime_ns, digest, needs_render=True))
            elif digest in (row.hash, row.thumb_hash):
                if row.status is ModelStatus.MISSING:
                    # Back (or renamed back into its row): its sidecar counts if it shows this content.
                    info = read_sidecar(sidecar_path_for(path))
                    has = info is not None and info.ours and info.content_hash == digest
                else:
                    has = row.has_thumbnail and os.path.lexists(sidecar_path_for(path))
                states.append(FileState(path, st.st_size, st.st_mtime_ns, digest, needs_render=not has))
            else:
                states.append(FileState(path, st.st_size, st.st_mtime_ns, digest, needs_render=True))
        if states:
            self.db.upsert_files(states)
        return sum(s.needs_render for s in states)


def _spelled_on_disk(ev: FileEvent, vols: Volumes) -> FileEvent:
    """The event with its paths as the volume spells them. An old name (a delete, a move's source) keeps
    its last component: on an insensitive volume its folder may hold the new spelling of it by now."""
    if ev.kind is EventKind.CHANGED:
        return FileEvent(ev.kind, vols.canonical(ev.path), ev.is_dir)
    dest = vols.canonical(ev.dest) if ev.dest is not None else None
    return FileEvent(ev.kind, vols.canonical_parent(ev.path), ev.is_dir, dest)
