"""Sidecars written just before a crash: found and redrawn by the next coordinator.

Sidecar data is only ordered before its rename (:mod:`..files.atomic`), not flushed from the drive's cache,
and folders are fsynced once per commit batch: the database commit is the durability point. A power
cut can therefore leave a row committed as done whose sidecar is missing (the walk sees that) or torn
(the walk does not: it only lists names). So a coordinator notes in ``st_meta`` when it starts writing
and clears the note when it stops cleanly; the next coordinator that finds a note left behind reads
the header of every sidecar committed since then (microseconds each, see ``read_sidecar(decode=False)``)
and puts the rows whose sidecar is not a whole one of ours back to pending.

Only a holder of the coordinator lock (:mod:`..store.lock`) calls :func:`recheck_after_crash`: a note then
cannot belong to a live writer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from sidecar_thumbs.files.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import FileState

__all__ = ["WRITES_OPEN_KEY", "close_writes", "open_writes", "recheck_after_crash", "writes_left_open"]

log = logging.getLogger(__name__)

WRITES_OPEN_KEY = "sidecar_writes_open_since"
# Clocks of rendered_at and of the note are the same machine's; the margin covers a row committed in
# the same second the note was taken.
_MARGIN_S = 2.0


def _since(db: StateDB) -> float | None:
    value = db.get_meta(WRITES_OPEN_KEY)
    try:
        return float(value) if value else None
    except ValueError:
        return 0.0  # unreadable note: check everything rather than nothing


def open_writes(db: StateDB, now: float | None = None) -> None:
    """Note that sidecar writes start (keeps an older note whose check has not run yet)."""
    if _since(db) is None:
        db.set_meta(WRITES_OPEN_KEY, repr(time.time() if now is None else now))


def close_writes(db: StateDB) -> None:
    """Every sidecar written is committed and its folder fsynced: clear the note."""
    if db.get_meta(WRITES_OPEN_KEY):
        db.set_meta(WRITES_OPEN_KEY, "")


def writes_left_open(db: StateDB) -> bool:
    """Whether a writer may have been killed mid-write (so temp files may be left): a note is there,
    or this database was never checked by a version that keeps the note."""
    return db.get_meta(WRITES_OPEN_KEY) != ""


def recheck_after_crash(db: StateDB, roots: Sequence[str]) -> list[str]:
    """If the last writer did not stop cleanly, re-queue rows under ``roots`` whose sidecar, committed
    since it started, is torn, foreign or gone. Returns their paths; clears the note."""
    since = _since(db)
    if since is None:
        if db.get_meta(WRITES_OPEN_KEY) is None:
            db.set_meta(WRITES_OPEN_KEY, "")  # checked by this version: from now on the note tells
        return []
    rows = db.done_since(since - _MARGIN_S, roots)
    bad: list[FileState] = []
    for row in rows:
        info = read_sidecar(sidecar_path_for(row.path), decode=False)
        if info is None or not info.ours or not info.readable:
            bad.append(FileState(row.path, row.size or 0, row.mtime_ns or 0, row.hash, needs_render=True))
    if bad:
        log.warning("%d sidecars written before an unclean stop are missing or torn: rendering them again", len(bad))
        db.upsert_files(bad)
    db.set_meta(WRITES_OPEN_KEY, "")
    return [f.path for f in bad]
