"""Planning a scan: what a walk found, compared with the database rows, becomes a :class:`Plan`.

Planning is cheap by design: the ``(size, mtime_ns)`` gate decides, and only files whose gate moved
are hashed; a ``touch`` or an identical copy re-hashes but does not re-render.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sidecar_thumbs.files.discover import FoundFile
from sidecar_thumbs.files.fingerprint import hash_file
from sidecar_thumbs.files.freshness import check_freshness
from sidecar_thumbs.files.pathcanon import Volumes
from sidecar_thumbs.files.sidecar import SidecarInfo, read_sidecar, sidecar_name_for, sidecar_path_for
from sidecar_thumbs.types import FileState, ModelStatus, PlanRow, RenderDone, ThumbSource

__all__ = ["Plan", "plan_changes"]


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
