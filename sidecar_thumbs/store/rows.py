"""Reading rows of ``st_models``: the columns, a row tuple made a :class:`~sidecar_thumbs.types.ModelRow`, the
clause for the rows under some roots, and the clock every write uses."""

from __future__ import annotations

import time
from collections.abc import Sequence

from sidecar_thumbs.store.dbpath import path_from_db as _path_from_db
from sidecar_thumbs.store.dbpath import under_ranges
from sidecar_thumbs.types import ModelRow, ModelStatus

__all__: list[str] = []

_STATUSES = {s.value: s for s in ModelStatus}

_COLUMNS = (
    "id, path, size, mtime_ns, hash, status, has_thumbnail, thumb_hash, thumb_source, triangles, "
    "error, error_transient, attempts, next_attempt_at, render_ms, created_at, updated_at, rendered_at"
)
_PLAN_COLUMNS = "path, size, mtime_ns, hash, status, has_thumbnail, error_transient, next_attempt_at"


def _now(now: float | None) -> float:
    # Callers (and tests) pass now= to control time; store floats whatever they pass.
    return time.time() if now is None else float(now)


_new_row = object.__new__
_set_attr = object.__setattr__


def _row(t: tuple) -> ModelRow:  # type: ignore[type-arg]
    """A ModelRow from a ``_COLUMNS`` tuple.

    Fills ``__dict__`` in one step instead of calling the frozen ``__init__`` (18 guarded setattrs):
    measured 0.056 s instead of 0.088 s for 34k rows, which is what a full rescan loads.
    """
    row = _new_row(ModelRow)
    (id_, path, size, mtime_ns, hash_, status, has_thumb, thumb_hash, thumb_source, triangles,
     error, transient, attempts, next_at, render_ms, created_at, updated_at, rendered_at) = t  # fmt: skip
    _set_attr(row, "__dict__", {
        "id": id_, "path": _path_from_db(path), "size": size, "mtime_ns": mtime_ns, "hash": hash_,
        "status": _STATUSES[status], "has_thumbnail": has_thumb == 1, "thumb_hash": thumb_hash,
        "thumb_source": thumb_source, "triangles": triangles, "error": error,
        "error_transient": transient == 1, "attempts": attempts, "next_attempt_at": next_at,
        "render_ms": render_ms, "created_at": created_at, "updated_at": updated_at,
        "rendered_at": rendered_at,
    })  # fmt: skip
    return row


def _roots_clause(roots: Sequence[str]) -> tuple[str, list[object]]:
    parts, params = [], []
    for root in roots:
        where, p = under_ranges(root)
        parts.append(f"({where})")
        params.extend(p)
    return (" OR ".join(parts) or "0"), params
