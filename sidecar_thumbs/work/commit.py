"""Committing one render (in a writer thread): the sidecar is written only for the content that is on
disk now, and the database records to make are returned, never written here."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from sidecar_thumbs.errors import ModelError
from sidecar_thumbs.files.fingerprint import FileChangedError, fingerprint
from sidecar_thumbs.files.safeio import LinkOutsideRootsError, NotRegularFileError, stat_regular
from sidecar_thumbs.files.sidecar import write_sidecar
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.types import FileState, Fingerprint, ModelRow, RenderDone, RenderFailed, ThumbSource
from sidecar_thumbs.work.jobs import RenderResult
from sidecar_thumbs.work.outcomes import Outcome, OutcomeKind

__all__ = ["SidecarCommitter"]

log = logging.getLogger(__name__)


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


class SidecarCommitter:
    """The :class:`~sidecar_thumbs.work.pipeline.Pipeline`'s writer-thread work (a part of it, not used alone)."""

    options: ThumbnailOptions
    roots: list[str] | None
    durable: bool
    full_fsync: bool
    _folders: set[str]
    _folders_lock: threading.Lock
    is_gone: Callable[[str], bool]

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
