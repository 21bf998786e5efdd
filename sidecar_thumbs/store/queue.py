"""The durable work queue in ``st_models``: what discovery saw goes in, the coordinator claims rows and
records what came of them.

Row life cycle (``status``)::

    upsert_files ──> pending ──claim──> rendering ──record_done───> done
                        ^                 │    │
                        └─release_claims──┘    └──record_failed──> failed
                                                     (transient: claimed again after its back-off)
    upsert_files(needs_render=True): any status ──> pending (claimable now)
    retry_failed: failed ──> pending;  mark_missing: any ──> missing
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence

from sidecar_thumbs.errors import missing_extra_reason
from sidecar_thumbs.store.damtable import AssetManagerTable
from sidecar_thumbs.store.dbpath import path_to_db as _path_to_db
from sidecar_thumbs.store.rows import _COLUMNS, _now, _roots_clause, _row
from sidecar_thumbs.store.sqlite import one_line
from sidecar_thumbs.types import FileState, ModelRow, RenderDone, RenderFailed

__all__ = ["RenderQueue"]

# Claimable now: pending and not deferred, or a transient failure whose back-off has passed.
_CLAIMABLE = (
    "((status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?))"
    " OR (status = 'failed' AND error_transient = 1 AND next_attempt_at <= ?))"
)

# A plan made from rows read earlier must not queue again what another coordinator has rendered, or
# is rendering, since: same size and mtime, and done with a thumbnail or claimed (two scans started
# together rendered 80 models 157 times).
_TAKEN_SINCE = (
    ":snap AND size IS excluded.size AND mtime_ns IS excluded.mtime_ns"
    " AND (status = 'rendering' OR (status = 'done' AND has_thumbnail))"
)
_NR = f"(:nr AND NOT ({_TAKEN_SINCE}))"

_UPSERT = """
INSERT INTO st_models (path, size, mtime_ns, hash, status, has_thumbnail, thumb_hash, attempts,
                       created_at, updated_at)
VALUES (:path, :size, :mtime_ns, :hash, CASE WHEN :nr THEN 'pending' ELSE 'done' END,
        NOT :nr, CASE WHEN :nr THEN NULL ELSE :hash END, 0, :now, :now)
ON CONFLICT (path) DO UPDATE SET
    size = excluded.size,
    mtime_ns = excluded.mtime_ns,
    -- an unhashed look keeps the known hash only if the stat gate did not move
    hash = CASE WHEN excluded.hash IS NOT NULL THEN excluded.hash
                WHEN size IS excluded.size AND mtime_ns IS excluded.mtime_ns THEN hash END,
    status = CASE WHEN {nr} THEN 'pending' WHEN status = 'missing' THEN 'done' ELSE status END,
    has_thumbnail = CASE WHEN NOT :nr AND status = 'missing' THEN 1 ELSE has_thumbnail END,
    thumb_hash = CASE WHEN NOT :nr AND status = 'missing' THEN coalesce(excluded.hash, thumb_hash)
                      ELSE thumb_hash END,
    attempts = CASE WHEN excluded.hash IS NOT NULL AND hash IS NOT excluded.hash THEN 0
                    ELSE attempts END,
    next_attempt_at = CASE WHEN {nr} THEN NULL ELSE next_attempt_at END,
    claimed_at = CASE WHEN {nr} THEN NULL ELSE claimed_at END,
    updated_at = :now
""".replace("{nr}", _NR)

# A render counts only for the content it was made from: same hash, or (hash unknown) same stat.
_DONE = """
UPDATE st_models SET status = 'done', has_thumbnail = 1, hash = :hash, thumb_hash = :hash,
    size = coalesce(size, :size), mtime_ns = coalesce(mtime_ns, :mtime_ns),
    thumb_source = :source, triangles = :triangles, render_ms = :render_ms, rendered_at = :now,
    error = NULL, error_transient = NULL, attempts = 0, next_attempt_at = NULL, claimed_at = NULL,
    updated_at = :now
WHERE path = :path AND status != 'missing'
  AND (hash = :hash OR (hash IS NULL AND (size IS NULL OR size = :size)
                        AND (mtime_ns IS NULL OR mtime_ns = :mtime_ns)))
"""

# attempts on the right-hand side is the value before this failure; `1 << n` avoids needing pow().
_FAILED = """
UPDATE st_models SET status = 'failed', has_thumbnail = 0, error = :error,
    error_transient = :transient, attempts = attempts + 1,
    next_attempt_at = CASE WHEN :transient AND attempts + 1 < :max_attempts
        THEN :now + min(:backoff_max, :backoff_base * (1 << min(attempts, 40))) END,
    claimed_at = NULL, updated_at = :now
WHERE path = :path AND status != 'missing' AND (:hash IS NULL OR hash IS NULL OR hash = :hash)
"""


class RenderQueue(AssetManagerTable):
    """The queue's writes (and its backlog); every write is one short transaction, and a flag change of a
    model goes to the asset manager's table in the same transaction (see :class:`AssetManagerTable`)."""

    def backlog(self, now: float | None = None) -> int:
        """Rows claimable now plus rows being rendered."""
        now = _now(now)
        sql = f"SELECT count(*) FROM st_models WHERE {_CLAIMABLE} OR status = 'rendering'"
        return int(self._read(sql, (now, now))[0][0])

    def upsert_files(self, files: Sequence[FileState], now: float | None = None) -> None:
        """Record what discovery saw on disk, in one transaction.

        For each file, ``size`` and ``mtime_ns`` are stored; ``hash`` is stored when given, kept when
        None and the stat is unchanged, and cleared when None and the stat moved.

        * New path: ``needs_render`` → ``pending`` (claimable now); otherwise the caller found a
          matching sidecar → ``done``, ``has_thumbnail`` 1, ``thumb_hash`` = hash.
        * Existing path with ``needs_render``: → ``pending``, ``next_attempt_at`` NULL (claimable now),
          even if it was rendering, failed or missing. ``has_thumbnail``/``thumb_hash`` describe the
          sidecar still on disk and are kept.
        * Existing path without ``needs_render``: status kept, except ``missing`` → ``done`` with
          ``has_thumbnail`` 1 (the file is back and its sidecar matches).
        * ``attempts`` resets to 0 when a hash is given that differs from the stored one.
        * ``from_snapshot``: a row done with a thumbnail or rendering, at the same size and mtime,
          keeps its status (another coordinator rendered it after the caller read the rows).
        """
        now = _now(now)
        params = [
            {"path": _path_to_db(f.path), "size": f.size, "mtime_ns": f.mtime_ns, "hash": f.hash,
             "nr": int(f.needs_render), "snap": int(f.from_snapshot), "now": now}
            for f in files
        ]  # fmt: skip
        self._write(lambda c: c.executemany(_UPSERT, params))

    def mark_missing(self, paths: Sequence[str]) -> None:
        """The files are gone: status ``missing``, ``has_thumbnail`` 0 (rows kept for a later move)."""
        now = time.time()
        sql = (
            "UPDATE st_models SET status = 'missing', has_thumbnail = 0, next_attempt_at = NULL,"
            " claimed_at = NULL, updated_at = ? WHERE path = ? AND status != 'missing'"
        )
        params = [(now, _path_to_db(p)) for p in paths]

        def work(c: sqlite3.Connection) -> None:
            c.executemany(sql, params)
            for p in paths if self.dam is not None else ():
                self._dam_flag(c, p, False, now)  # a deleted model has no thumbnail

        self._write(work)

    def claim(
        self,
        limit: int,
        now: float | None = None,
        roots: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> list[ModelRow]:
        """Atomically hand out up to ``limit`` claimable rows, oldest first, as ``rendering``.

        Claimable: ``pending`` with ``next_attempt_at`` NULL or due, and transient ``failed`` rows whose
        back-off is due. Only rows at or under ``roots`` when given, and none under ``exclude``.

        Returns:
            The claimed rows as they are after the claim, oldest first.
        """
        now = _now(now)
        where, root_params = ("1", []) if roots is None else _roots_clause(roots)
        if exclude:  # roots that are offline: their rows wait, unclaimed
            not_where, not_params = _roots_clause(exclude)
            where, root_params = f"({where}) AND NOT ({not_where})", [*root_params, *not_params]
        pick = (
            f"SELECT id FROM st_models WHERE {_CLAIMABLE} AND ({where})"
            " ORDER BY coalesce(next_attempt_at, updated_at), id LIMIT ?"
        )
        claim = (
            # updated_at is left alone: it orders the queue, and a released claim keeps its place.
            "UPDATE st_models SET status = 'rendering', claimed_at = ?"
            f" WHERE id IN (SELECT value FROM json_each(?)) RETURNING {_COLUMNS}"
        )

        def work(c: sqlite3.Connection) -> list[tuple]:  # type: ignore[type-arg]
            # Pick, then claim, in one transaction; RETURNING has no order, so keep the pick's.
            ids = [i for (i,) in c.execute(pick, [now, now, *root_params, limit])]
            if not ids:
                return []
            by_id = {t[0]: t for t in c.execute(claim, (now, json.dumps(ids)))}
            return [by_id[i] for i in ids]

        return [_row(t) for t in self._write(work)]

    def release_claims(self, paths: Sequence[str] | None = None) -> int:
        """Put ``rendering`` rows back to ``pending`` (all when ``paths`` is None); returns how many."""
        sql = "UPDATE st_models SET status = 'pending', claimed_at = NULL WHERE status = 'rendering'"
        if paths is None:
            return self._write(lambda c: c.execute(sql).rowcount)
        params = [(_path_to_db(p),) for p in paths]
        return self._write(lambda c: c.executemany(sql + " AND path = ?", params).rowcount)

    def record_done(self, done: Sequence[RenderDone], now: float | None = None) -> list[str]:
        """Record written sidecars in one transaction.

        A result counts only if the row still describes the content that was rendered (same hash, or
        hash unknown and same size/mtime) and the file is not missing; otherwise the row keeps its
        status (a changed file stays ``pending``) and the path is returned.

        Returns:
            Paths whose result was ignored.
        """
        now = _now(now)
        params = [
            {"path": _path_to_db(d.path), "hash": d.hash, "size": d.size, "mtime_ns": d.mtime_ns,
             "source": d.source, "triangles": d.triangles, "render_ms": d.render_ms, "now": now}
            for d in done
        ]  # fmt: skip
        return self._record_each(_DONE, [d.path for d in done], params, True, now)

    def record_failed(
        self,
        failed: Sequence[RenderFailed],
        now: float | None = None,
        *,
        backoff_base: float = 30.0,
        backoff_max: float = 3600.0,
        max_transient_attempts: int = 8,
    ) -> list[str]:
        """Record failed renders in one transaction.

        ``status`` failed, ``has_thumbnail`` 0, ``error`` (one line, ≤ 500 chars), ``attempts`` += 1.
        A transient failure comes back after ``min(backoff_max, backoff_base * 2**(attempts-1))``
        seconds; from the ``max_transient_attempts``-th failure on (the failure's own ``max_attempts``
        when it carries one: 3 for a timeout), and for every deterministic failure,
        ``next_attempt_at`` is NULL: never retried until the file changes (``upsert_files`` with
        ``needs_render``) or ``retry_failed``. A failure about content the row no longer has (hash
        differs) or for a missing file is ignored.

        Returns:
            Paths whose failure was ignored.
        """
        now = _now(now)
        params = [
            {"path": _path_to_db(f.path), "error": one_line(f.error), "transient": int(f.transient),
             "hash": f.hash, "now": now, "backoff_base": backoff_base, "backoff_max": backoff_max,
             "max_attempts": f.max_attempts or max_transient_attempts}
            for f in failed
        ]  # fmt: skip
        return self._record_each(_FAILED, [f.path for f in failed], params, False, now)  # never flagged when failed

    def _record_each(
        self, sql: str, paths: Sequence[str], params: Sequence[Mapping[str, object]], flag: bool, now: float
    ) -> list[str]:
        """Run ``sql`` for each result in one transaction; a result the row refuses (other content, a
        missing file) is returned, an accepted one sets the asset manager's flag to ``flag``."""

        def work(c: sqlite3.Connection) -> list[str]:
            ignored = []
            for path, p in zip(paths, params, strict=True):
                if c.execute(sql, p).rowcount == 0:
                    ignored.append(path)
                else:
                    self._dam_flag(c, path, flag, now)
            return ignored

        return self._write(work)

    def retry_failed(self, roots: Sequence[str] | None = None) -> int:
        """Failed rows (under ``roots``) → ``pending`` with fresh attempts; returns how many."""
        where, params = ("1", []) if roots is None else _roots_clause(roots)
        sql = (
            "UPDATE st_models SET status = 'pending', attempts = 0, next_attempt_at = NULL, updated_at = ?"
            f" WHERE status = 'failed' AND ({where})"
        )
        return self._write(lambda c: c.execute(sql, [time.time(), *params]).rowcount)

    def requeue_missing_extras(self, extras: Sequence[str], roots: Sequence[str] | None = None) -> int:
        """Rows that failed only because an optional extra was missing (``needs the [step] extra``) →
        ``pending``, for each extra in ``extras`` (those importable now). Returns how many.

        Such a failure is about this machine, not the file: it is not retried on a back-off (nothing
        changes until someone installs the extra), and not failed for ever either.
        """
        if not extras:
            return 0
        where, params = ("1", []) if roots is None else _roots_clause(roots)
        reasons = [missing_extra_reason(e) for e in extras]
        match = " OR ".join("error = ?" for _ in reasons)
        sql = (
            "UPDATE st_models SET status = 'pending', attempts = 0, next_attempt_at = NULL, error = NULL,"
            f" error_transient = NULL, updated_at = ? WHERE status = 'failed' AND ({match}) AND ({where})"
        )
        return self._write(lambda c: c.execute(sql, [time.time(), *reasons, *params]).rowcount)
