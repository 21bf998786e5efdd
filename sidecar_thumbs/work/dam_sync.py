"""Bring the asset manager's table and our queue together.

Rows the asset manager lists without a thumbnail are queued like any other model (unless we already
work on them or they failed for good); rows whose fresh sidecar exists but whose flag is 0 are simply
flagged. A full sync also records the asset manager's id of every model (flags are then written by
id).

The asset manager's table is input we do not control: a path is taken only when it lies under one of
the roots and has a model extension, and it is looked at only when it is a regular file (a symlink
only into the roots, the walker's rule). A row naming ``/dev/zero`` or a FIFO once hung the
coordinator; now it is counted as ``refused`` and never opened.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from sidecar_thumbs.files.discover import is_model_name
from sidecar_thumbs.files.pathcanon import Volumes
from sidecar_thumbs.files.safeio import LinkOutsideRootsError, NotRegularFileError, stat_regular
from sidecar_thumbs.files.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import FileState, ModelRow, ModelStatus, PlanRow

__all__ = ["DamSync", "sync_dam"]

log = logging.getLogger(__name__)


@dataclass
class DamSync:
    seen: int = 0
    queued: int = 0
    reflagged: int = 0
    unresolved: int = 0  # path values we cannot turn into a file path
    absent: int = 0  # listed, but no file there
    refused: int = 0  # outside the roots, not a model name, or not a regular file: never opened


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def sync_dam(db: StateDB, *, full: bool, roots: Sequence[str] = (), volumes: Volumes | None = None) -> DamSync:
    """One pass over the asset manager's table (all rows when ``full``, else only unflagged ones).

    Only rows under ``roots`` are taken (none without roots). With ``volumes``, each path is first put in
    its volume's spelling: an asset manager may have stored ``Gear.stl`` for the file a case-insensitive
    volume lists as ``gear.stl`` (one row, one flag, one sidecar).
    """
    respell = volumes is not None and not volumes.all_exact
    if respell:
        assert volumes is not None
        volumes.forget()  # each folder listed once per pass
    dam = db.dam
    assert dam is not None
    result = DamSync()
    states: list[FileState] = []
    ids: list[tuple[str, object]] = []
    reflag: list[tuple[str, bool]] = []
    # A full pass looks at every model: one query for all our rows, not one per row.
    ours = db.plan_rows_under() if full else None
    for dam_id, value, flag, status, _transient in db.dam_rows(unflagged_only=not full):
        result.seen += 1
        path = dam.to_abs(value) if isinstance(value, str) else None
        if path is None:
            result.unresolved += 1
            continue
        if respell:
            path = volumes.canonical(path)  # type: ignore[union-attr]
        if not (_under(path, roots) and is_model_name(os.path.basename(path))):
            result.refused += 1
            continue
        # Either kind of row: planning reads the same fields from both.
        row: PlanRow | ModelRow | None = ours.get(path) if ours is not None else None
        if ours is None and status is None:
            row = db.get(path)
        if status is None and row is not None:
            ids.append((path, dam_id))  # we know the model, not yet its dam id
        if flag:
            continue  # under a root: the rescan looks at its file
        if row is not None and row.status in (ModelStatus.PENDING, ModelStatus.RENDERING, ModelStatus.FAILED):
            continue  # queued already, or a known failure (its flag stays 0)
        if row is not None and row.status is ModelStatus.DONE and row.has_thumbnail:
            info = read_sidecar(sidecar_path_for(path))
            if info is not None and info.ours and info.readable and info.content_hash == row.hash:
                reflag.append((path, True))
                continue
        try:
            st = stat_regular(path, roots=roots)
        except (NotRegularFileError, LinkOutsideRootsError):
            result.refused += 1
            continue
        except OSError:
            result.absent += 1
            continue
        states.append(FileState(path, st.st_size, st.st_mtime_ns, None, needs_render=True))
        if row is None:
            ids.append((path, dam_id))
    if states:
        db.upsert_files(states)
        result.queued = sum(s.needs_render for s in states)
    if ids:
        db.set_dam_ids(ids)
    if reflag:
        db.set_dam_flags(reflag)
        result.reflagged = len(reflag)
    if result.seen:
        log.debug("asset manager sync (%s): %s", "full" if full else "unflagged", result)
    return result
