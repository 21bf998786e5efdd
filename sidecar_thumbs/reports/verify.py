"""Compare the disk, the sidecars and the database; report and (optionally) repair what disagrees.

Works from the files alone when there is no database: a sidecar carries the size, mtime and content
hash of the model it was made from, so freshness is checkable without any other record.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sidecar_thumbs.files.discover import FoundFile, WalkProblem, is_ignored_dir, iter_model_files, model_on_disk
from sidecar_thumbs.files.freshness import Verdict, check_freshness
from sidecar_thumbs.files.roots import (
    MassMissingGuard,
    canonical_roots,
    offline_error,
    present_by_root,
    require_online,
    root_of,
)
from sidecar_thumbs.files.safeio import stat_regular
from sidecar_thumbs.files.sidecar import (
    is_appledouble_twin,
    is_sidecar_name,
    model_name_for_sidecar,
    read_sidecar,
    sidecar_path_for,
)
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelRow, ModelStatus

__all__ = ["Problem", "ProblemKind", "VerifyReport", "iter_sidecar_files", "verify"]


class ProblemKind(StrEnum):
    """What can be wrong; the value is what ``--json`` prints."""

    MISSING = "missing"  # a model without a sidecar
    STALE = "stale"  # the sidecar shows other content, or was made with other settings
    CORRUPT = "corrupt"  # our sidecar does not decode
    ORPHANED = "orphaned"  # our sidecar whose model is gone
    FOREIGN = "foreign"  # a file we did not write sits under a sidecar name (never touched)
    FLAG = "flag"  # the database's has_thumbnail disagrees with the disk
    DAM_FLAG = "dam-flag"  # the asset manager's flag disagrees with the disk
    VANISHED = "vanished"  # a database row for a model that is no longer on disk


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    path: str  # the model, or for orphaned/foreign the sidecar file
    detail: str
    sidecar_fresh: bool = False  # for FLAG: what the flag should say

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind.value, "path": self.path, "detail": self.detail}


@dataclass
class VerifyReport:
    models: int = 0
    sidecars: int = 0
    fresh: int = 0
    failed_known: int = 0  # models the database records as failed (a reason, not a missing sidecar)
    problems: list[Problem] = field(default_factory=list)
    walk_problems: list[WalkProblem] = field(default_factory=list)
    # What a fix did (rendered, orphans_removed, ...; "deferred" when a running daemon renders); empty without.
    fixed: dict[str, int] = field(default_factory=dict)

    def by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.problems:
            out[p.kind.value] = out.get(p.kind.value, 0) + 1
        return out

    def as_dict(self) -> dict[str, object]:
        return {
            "models": self.models,
            "sidecars": self.sidecars,
            "fresh": self.fresh,
            "failed_known": self.failed_known,
            "problems_by_kind": self.by_kind(),
            "problems": [p.as_dict() for p in self.problems],
            "walk_problems": [{"path": w.path, "reason": w.reason} for w in self.walk_problems],
        }


def iter_sidecar_files(roots: Sequence[str]) -> Iterator[str]:
    """Every file under ``roots`` with a sidecar-shaped name (ours or not). Does not follow symlinked
    folders, so it never reaches outside a root."""
    seen: set[str] = set()
    for root in roots:
        if os.path.isfile(root):
            continue
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs[:] = [d for d in dirs if not is_ignored_dir(d)]
            if folder in seen:
                dirs[:] = []
                continue
            seen.add(folder)
            for name in files:
                # `._.x.stl.thumbnail.png`: the AppleDouble file an SMB client keeps beside our sidecar.
                if is_sidecar_name(name) and not is_appledouble_twin(name):
                    yield os.path.join(folder, name)


def _check_model(f: FoundFile, expected_settings: str | None) -> Problem | None:
    """The model's sidecar problem, or None when it is fresh (by the shared rule in :mod:`.freshness`)."""
    sidecar = sidecar_path_for(f.path)
    info = read_sidecar(sidecar)
    verdict = check_freshness(f.path, f.size, f.mtime_ns, info, expected_settings=expected_settings)
    match verdict.verdict:
        case Verdict.FRESH:
            return None
        case Verdict.MISSING:
            return Problem(ProblemKind.MISSING, f.path, "no sidecar")
        case Verdict.FOREIGN:
            return Problem(ProblemKind.FOREIGN, str(sidecar), "not written by sidecar-thumbs; left alone")
        case Verdict.CORRUPT:
            return Problem(ProblemKind.CORRUPT, f.path, f"{sidecar.name} is not a readable PNG")
        case Verdict.OTHER_SETTINGS:
            assert info is not None
            return Problem(ProblemKind.STALE, f.path, f"made with other settings ({info.settings})")
        case Verdict.UNHASHABLE:
            return Problem(ProblemKind.STALE, f.path, f"cannot hash the model: {verdict.reason}")
        case Verdict.CHANGED:
            return Problem(ProblemKind.STALE, f.path, "the model changed after its sidecar was made")


def _not_a_model_reason(path: str, roots: Sequence[str]) -> str:
    """Why a path that is there is not a model we read, for a problem's detail."""
    try:
        stat_regular(path, roots=roots)
    except OSError as exc:
        return f"a file never read as a model: {exc.strerror}"
    return "a file never read as a model"


def _is_known_failure(problem: Problem, row: ModelRow, f: FoundFile) -> bool:
    """Whether the database already explains ``problem``: the model's render failed, with a reason.

    A stale sidecar counts too when the failure is about the content on disk now (same stat as the
    row): a model that was replaced by a broken file keeps its old sidecar of ours, and re-rendering
    it (``--fix``) can only fail again, so reporting it as stale would never go away.
    """
    if row.status is not ModelStatus.FAILED:
        return False
    if problem.kind is ProblemKind.MISSING:
        return True
    return problem.kind is ProblemKind.STALE and (row.size, row.mtime_ns) == (f.size, f.mtime_ns)


def _dam_flags(db: StateDB | None, roots: Sequence[str]) -> dict[str, bool]:
    """The asset manager's flag of every model it lists under ``roots`` (attached mode only)."""
    if db is None or db.dam is None:
        return {}
    out: dict[str, bool] = {}
    prefixes = [r.rstrip(os.sep) + os.sep for r in roots]
    for _id, value, flag, _status, _transient in db.dam_rows(unflagged_only=False):
        path = db.dam.to_abs(value) if isinstance(value, str) else None
        if path is not None and (path in roots or any(path.startswith(p) for p in prefixes)):
            out[path] = bool(flag)
    return out


def verify(
    roots: Sequence[str],
    *,
    db: StateDB | None = None,
    expected_settings: str | None = None,
    guard: MassMissingGuard | None = None,
) -> VerifyReport:
    """Check every model and sidecar under ``roots`` (and the database rows there, if given).

    Args:
        roots: folders to check.
        db: the state database, or None to work from the files alone.
        expected_settings: the current thumbnail settings string; sidecars made with others are stale.
        guard: when a walk's losses are believed.

    Raises:
        RootOfflineError: a root is offline (see :mod:`.roots`): its rows would all read as vanished and
            ``--fix`` would mark them missing and clear the asset manager's flags.
    """
    roots = canonical_roots(roots)
    guard = guard or MassMissingGuard()
    report = VerifyReport()
    rows: dict[str, ModelRow] = db.rows_under(roots) if db is not None else {}
    known = present_by_root(rows, roots)
    require_online(roots, known=known, allow_mass_missing=guard.allowed)
    dam_flags = _dam_flags(db, roots)
    models: set[str] = set()
    found_by_root: dict[str, int] = {}
    for f in iter_model_files(roots, on_problem=report.walk_problems.append):
        report.models += 1
        models.add(f.path)
        r = root_of(f.path, roots) or ""
        found_by_root[r] = found_by_root.get(r, 0) + 1
        problem = _check_model(f, expected_settings)
        row = rows.get(f.path)
        dam_flag = dam_flags.pop(f.path, None)
        if dam_flag is not None and dam_flag != (problem is None):
            said = "with" if dam_flag else "without"
            report.problems.append(
                Problem(ProblemKind.DAM_FLAG, f.path, f"asset manager says {said} thumbnail; sidecar "
                        f"{'fresh' if problem is None else problem.kind.value}", problem is None)
            )  # fmt: skip
        if problem is None:
            report.fresh += 1
            if row is not None and not row.has_thumbnail:
                report.problems.append(Problem(ProblemKind.FLAG, f.path, "fresh sidecar, but flagged as without", True))
            continue
        if row is not None and _is_known_failure(problem, row, f):
            report.failed_known += 1  # a known failure with its reason in the database
            continue
        report.problems.append(problem)
        if row is not None and row.has_thumbnail and problem.kind is not ProblemKind.FOREIGN:
            report.problems.append(
                Problem(ProblemKind.FLAG, f.path, f"flagged as with thumbnail, but {problem.kind.value}")
            )
    vanished: dict[str, int] = {}
    for path, row in rows.items():
        if path in models or row.status is ModelStatus.MISSING:
            continue
        # A path the walker did not yield: gone, or there but never a model we read (a symlink out
        # of the roots, a FIFO; rows for those were made by older versions). Anything else (e.g. a
        # folder we cannot list) is not reported: the row may well be right.
        on_disk = model_on_disk(path, roots)
        if on_disk is None:
            detail = f"database row ({row.status.value}) for a model no longer on disk"
            r = root_of(path, roots) or ""
            vanished[r] = vanished.get(r, 0) + 1
        elif on_disk is False:
            detail = f"database row ({row.status.value}) for {_not_a_model_reason(path, roots)}"
        else:
            continue
        report.problems.append(Problem(ProblemKind.VANISHED, path, detail))
    verdicts = [
        v
        for r in roots
        if (v := guard.verdict(r, found=found_by_root.get(r, 0), known=known.get(r, 0), missing=vanished.get(r, 0)))
    ]
    if verdicts:
        raise offline_error(verdicts)
    for path, flag in dam_flags.items():  # listed by the asset manager, no model on disk
        if flag and not os.path.lexists(path):
            report.problems.append(Problem(ProblemKind.DAM_FLAG, path, "asset manager says with thumbnail; no model"))
    for sidecar in iter_sidecar_files(roots):
        report.sidecars += 1
        folder, name = os.path.split(sidecar)
        model = os.path.join(folder, model_name_for_sidecar(name))
        if model in models:
            continue
        on_disk = model_on_disk(model, roots)
        if on_disk is True:
            continue  # e.g. a dangling link inside a root: the walker keeps it, so do we
        info = read_sidecar(sidecar)
        if info is not None and info.ours:
            why = "its model is gone" if on_disk is None else f"its model is {_not_a_model_reason(model, roots)}"
            report.problems.append(Problem(ProblemKind.ORPHANED, sidecar, why))
        else:
            report.problems.append(
                Problem(
                    ProblemKind.FOREIGN,
                    sidecar,
                    "sidecar-shaped name, not written by sidecar-thumbs; left alone",
                )
            )
    return report


@dataclass
class FixSummary:
    rerender: list[str] = field(default_factory=list)  # models marked pending for a new sidecar
    removed: list[str] = field(default_factory=list)  # orphaned sidecars of ours deleted
    reflagged: int = 0
    forgotten: int = 0  # rows of vanished models marked missing
    left_alone: list[str] = field(default_factory=list)  # foreign files


def remove_our_sidecar(path: str) -> bool:
    """Delete ``path`` only if it is a sidecar we wrote (checked right before deleting)."""
    info = read_sidecar(path)
    if info is None or not info.ours:
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def plan_fixes(report: VerifyReport, db: StateDB) -> FixSummary:
    """Apply the cheap repairs now and mark what needs rendering as pending in ``db``.

    The caller then renders the pending rows (``claims.run_pending``), which writes the sidecars
    and sets the flags in the same step as for any other render.
    """
    from sidecar_thumbs.types import FileState

    fixes = FixSummary()
    states: list[FileState] = []
    flags: list[tuple[str, bool]] = []
    dam_flags: list[tuple[str, bool]] = []
    vanished: list[str] = []
    for p in report.problems:
        if p.kind in (ProblemKind.MISSING, ProblemKind.STALE, ProblemKind.CORRUPT):
            try:
                st = os.stat(p.path)
            except OSError:
                continue
            states.append(FileState(p.path, st.st_size, st.st_mtime_ns, None, needs_render=True))
            fixes.rerender.append(p.path)
        elif p.kind is ProblemKind.ORPHANED:
            if remove_our_sidecar(p.path):
                fixes.removed.append(p.path)
        elif p.kind is ProblemKind.FLAG:
            # A model that will be re-rendered gets its flag from that render.
            flags.append((p.path, p.sidecar_fresh))
        elif p.kind is ProblemKind.DAM_FLAG:
            dam_flags.append((p.path, p.sidecar_fresh))
        elif p.kind is ProblemKind.VANISHED:
            vanished.append(p.path)
        elif p.kind is ProblemKind.FOREIGN:
            fixes.left_alone.append(p.path)
    if states:
        db.upsert_files(states)
    if flags:
        db.set_has_thumbnail(flags)
        fixes.reflagged = len(flags)
    if dam_flags and db.dam is not None:
        # A model about to be re-rendered gets its flag from that render; the rest are set now.
        rerender = set(fixes.rerender)
        db.set_dam_flags([(p, f) for p, f in dam_flags if p not in rerender or not f])
        fixes.reflagged += len(dam_flags)
    if vanished:
        db.mark_missing(vanished)
        fixes.forgotten = len(vanished)
    return fixes
