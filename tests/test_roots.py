"""Roots are volumes (issue #11): an absent, unmounted or suddenly empty root is offline, never a deletion.

Real folders in tmp_path, real SQLite files, real renders (inline executor); the asset manager is a real
SQLite table as in test_dam.py. A volume going away is a folder renamed away (and an empty folder put in
its place, as an unmounted mount point looks).
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import pytest

from sidecar_thumbs.daemon.changes import ChangeTracker
from sidecar_thumbs.daemon.events import EventKind, FileEvent
from sidecar_thumbs.daemon.root_states import RootStates
from sidecar_thumbs.daemon.settle import Settler
from sidecar_thumbs.dam.mapping import DamMapping
from sidecar_thumbs.errors import RootOfflineError
from sidecar_thumbs.files.roots import MassMissingGuard, canonical_roots, check_root, model_is_gone, root_identity
from sidecar_thumbs.files.sidecar import sidecar_path_for
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.reports.clean import clean
from sidecar_thumbs.reports.gallery.entries import collect_gallery
from sidecar_thumbs.reports.verify import verify
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import FileState, ModelStatus
from sidecar_thumbs.work.executors.local import InlineExecutor
from sidecar_thumbs.work.pipeline import Pipeline
from sidecar_thumbs.work.scan import scan
from tests.test_dam import MAPPING, add_assets, flags, make_dam

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "models"
MODELS = ("gear.stl", "parts/bracket.stl", "parts/deep/gear copy.stl")


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    d = tmp_path / "lib"
    (d / "parts" / "deep").mkdir(parents=True)
    shutil.copy(EXAMPLES / "gear.stl", d / MODELS[0])
    shutil.copy(EXAMPLES / "parts" / "bracket.stl", d / MODELS[1])
    shutil.copy(EXAMPLES / "gear.stl", d / MODELS[2])
    return d


@pytest.fixture
def asset_manager(tmp_path: Path, lib: Path) -> tuple[Path, DamMapping]:
    """An asset manager's database listing the library's models (paths relative to the library)."""
    dam = tmp_path / "dam.sqlite3"
    make_dam(dam)
    add_assets(dam, *MODELS)
    return dam, DamMapping(**{**MAPPING.__dict__, "path_base": str(lib)})


def run_scan(lib: Path | list[Path], db: StateDB, **kw: object):  # type: ignore[no-untyped-def]
    roots = [str(p) for p in lib] if isinstance(lib, list) else [str(lib)]
    return scan(roots, db=db, make_executor=InlineExecutor, options=ThumbnailOptions(), durable=False, **kw)


def statuses(db: StateDB) -> dict[str, tuple[ModelStatus, bool]]:
    return {p: (r.status, r.has_thumbnail) for p, r in db.rows_under().items()}


# -- the rule --------------------------------------------------------------------------------------


def test_root_that_does_not_exist_or_is_a_file_is_offline(tmp_path: Path) -> None:
    assert check_root(str(tmp_path / "nope")).reason == "does not exist"
    (tmp_path / "notes.txt").write_text("x")
    assert check_root(str(tmp_path / "notes.txt")).reason == "is not a folder"
    shutil.copy(EXAMPLES / "gear.stl", tmp_path / "one.stl")
    assert check_root(str(tmp_path / "one.stl")).online  # a single model given as a root


def test_empty_folder_is_offline_only_when_the_database_knows_models_under_it(tmp_path: Path) -> None:
    empty = tmp_path / "mnt"
    empty.mkdir()
    (empty / ".DS_Store").write_bytes(b"\0")  # litter does not make a volume
    assert check_root(str(empty), known=0).online  # a new, empty library
    state = check_root(str(empty), known=34)
    assert not state.online and state.overridable
    assert state.reason == "is an empty folder where a volume should be mounted (the database holds 34 models under it)"
    (empty / "a.stl").write_bytes(b"solid\nendsolid\n")
    assert check_root(str(empty), known=34).online


def test_mass_missing_guard_takes_a_half_empty_walk_for_a_volume_half_there() -> None:
    guard = MassMissingGuard()
    assert guard.verdict("/r", found=0, known=5, missing=5) is not None  # lists nothing at all
    assert guard.verdict("/r", found=40, known=140, missing=99) is None  # fewer than 100
    v = guard.verdict("/r", found=40, known=200, missing=160)
    assert v is not None and not v.online and v.after_walk and "160 of its 200" in (v.reason or "")
    assert guard.verdict("/r", found=150, known=300, missing=150) is None  # exactly half is believed
    assert MassMissingGuard(allowed=True).verdict("/r", found=0, known=5, missing=5) is None
    assert guard.verdict("/r", found=0, known=0, missing=0) is None  # a new library


def test_roots_given_twice_through_a_link_or_nested_count_once(tmp_path: Path, lib: Path) -> None:
    (tmp_path / "libl").symlink_to(lib)
    roots = canonical_roots([tmp_path / "libl", lib, lib / "parts", str(lib) + "/"])
    assert roots == [str(lib)]
    assert canonical_roots([lib / "parts", lib]) == [str(lib)]  # the inner one first: still the outer


# -- scan ------------------------------------------------------------------------------------------


def test_scan_of_a_root_given_twice_through_a_link_gives_one_row_per_model(tmp_path: Path, lib: Path) -> None:
    (tmp_path / "libl").symlink_to(lib)
    with StateDB(tmp_path / "s.sqlite3") as db:
        s = run_scan([lib, tmp_path / "libl"], db)
        assert (s.found, s.rendered) == (3, 3)
        assert sorted(db.rows_under()) == sorted(str(lib / m) for m in MODELS)


@pytest.mark.parametrize("stand_in", ["renamed away", "empty mount point"])
def test_scan_of_a_volume_away_marks_nothing_missing_and_renders_nothing_when_it_is_back(
    tmp_path: Path, lib: Path, stand_in: str
) -> None:
    with StateDB(tmp_path / "s.sqlite3") as db:
        assert run_scan(lib, db).rendered == 3
        before = statuses(db)
        lib.rename(tmp_path / "away")
        if stand_in == "empty mount point":
            lib.mkdir()
        with pytest.raises(RootOfflineError) as exc:
            run_scan(lib, db)
        reason = "does not exist" if stand_in == "renamed away" else "is an empty folder where a volume should be"
        assert f"root {lib} offline: {reason}" in exc.value.message
        assert statuses(db) == before
        if stand_in == "empty mount point":
            lib.rmdir()
        (tmp_path / "away").rename(lib)
        s = run_scan(lib, db)
        assert (s.rendered, s.missing, s.unchanged) == (0, 0, 3)
        assert statuses(db) == before


def test_scan_that_loses_more_than_the_share_at_once_stops_unless_allowed(tmp_path: Path, lib: Path) -> None:
    guard = MassMissingGuard(share=0.5, minimum=2)
    with StateDB(tmp_path / "s.sqlite3") as db:
        run_scan(lib, db)
        (lib / MODELS[1]).unlink()
        (lib / MODELS[2]).unlink()
        with pytest.raises(RootOfflineError, match=r"would lose 2 of its 3 known models.*--allow-mass-missing"):
            run_scan(lib, db, guard=guard)
        assert all(s is ModelStatus.DONE for s, _ in statuses(db).values())
        s = run_scan(lib, db, guard=MassMissingGuard(share=0.5, minimum=2, allowed=True))
        assert s.missing == 2
        assert statuses(db)[str(lib / MODELS[1])] == (ModelStatus.MISSING, False)


def test_scan_with_an_asset_manager_keeps_its_flags_while_the_volume_is_away(
    tmp_path: Path, lib: Path, asset_manager: tuple[Path, DamMapping]
) -> None:
    dam, mapping = asset_manager
    with StateDB(dam, dam=mapping) as db:
        assert run_scan(lib, db).rendered == 3
    assert {f for f, _, _ in flags(dam).values()} == {1}
    lib.rename(tmp_path / "away")
    lib.mkdir()  # an unmounted mount point
    with StateDB(dam, dam=mapping) as db, pytest.raises(RootOfflineError):
        run_scan(lib, db)
    assert {f for f, _, _ in flags(dam).values()} == {1}
    lib.rmdir()
    (tmp_path / "away").rename(lib)
    with StateDB(dam, dam=mapping) as db:
        s = run_scan(lib, db)
        assert (s.rendered, s.missing) == (0, 0)
        assert {st for st, _ in statuses(db).values()} == {ModelStatus.DONE}
    assert {f for f, _, _ in flags(dam).values()} == {1}


def test_rows_an_earlier_version_marked_missing_heal_without_a_render(
    tmp_path: Path, lib: Path, asset_manager: tuple[Path, DamMapping]
) -> None:
    dam, mapping = asset_manager
    with StateDB(dam, dam=mapping) as db:
        run_scan(lib, db)
        # What the first version did to an absent root: every row missing, every flag cleared.
        db.mark_missing([str(lib / m) for m in MODELS])
        assert {f for f, _, _ in flags(dam).values()} == {0}
        os.utime(lib / MODELS[0], ns=(1, 1))  # and one was touched meanwhile: hashed, same content
        (lib / MODELS[1]).write_bytes((lib / MODELS[1]).read_bytes() + b"\n")  # one really changed
        s = run_scan(lib, db)
        assert (s.healed, s.rendered, s.missing) == (2, 1, 0)
        assert set(statuses(db).values()) == {(ModelStatus.DONE, True)}
    assert {f for f, _, _ in flags(dam).values()} == {1}


# -- verify, clean, gallery ------------------------------------------------------------------------


def test_verify_clean_and_gallery_refuse_an_offline_root(tmp_path: Path, lib: Path) -> None:
    with StateDB(tmp_path / "s.sqlite3") as db:
        run_scan(lib, db)
        lib.rename(tmp_path / "away")
        lib.mkdir()
        with pytest.raises(RootOfflineError, match="empty folder where a volume should be"):
            verify([str(lib)], db=db)
        with pytest.raises(RootOfflineError, match="empty folder"):
            collect_gallery([str(lib)], db=db)
        lib.rmdir()
        for call in (lambda: verify([str(lib)], db=db), lambda: clean([str(lib)]), lambda: collect_gallery([lib])):
            with pytest.raises(RootOfflineError, match=f"root {lib} offline: does not exist"):
                call()  # type: ignore[no-untyped-call]
        (tmp_path / "away").rename(lib)
        assert verify([str(lib)], db=db).problems == []


def test_verify_does_not_take_a_half_listed_root_for_deleted_models(tmp_path: Path, lib: Path) -> None:
    with StateDB(tmp_path / "s.sqlite3") as db:
        run_scan(lib, db)
        shutil.rmtree(lib / "parts")
        with pytest.raises(RootOfflineError, match="would lose 2 of its 3"):
            verify([str(lib)], db=db, guard=MassMissingGuard(minimum=2))
        report = verify([str(lib)], db=db, guard=MassMissingGuard(minimum=2, allowed=True))
        assert {p.kind.value for p in report.problems} == {"vanished"}


# -- the daemon's intake ---------------------------------------------------------------------------


def test_copy_of_a_model_whose_row_is_missing_but_whose_file_exists_is_not_a_move(tmp_path: Path, lib: Path) -> None:
    with StateDB(tmp_path / "s.sqlite3") as db:
        run_scan(lib, db)
        original = str(lib / MODELS[0])
        db.mark_missing([original])  # an earlier version, while the volume was away
        copy = lib / "gear_copy.stl"
        shutil.copy(lib / MODELS[0], copy)
        tracker = ChangeTracker(db, Settler(0.0))
        assert tracker.ingest([str(copy)]) == 1  # new content for the copy: rendered, not adopted
        assert db.get(original) is not None  # the original keeps its row …
        assert sidecar_path_for(lib / MODELS[0]).exists()  # … and its sidecar
        assert db.get(str(copy)).status is ModelStatus.PENDING  # type: ignore[union-attr]


def test_a_model_is_gone_only_when_its_root_is_still_the_same_volume(tmp_path: Path, lib: Path) -> None:
    model = str(lib / MODELS[0])
    ident = {str(lib): root_identity(str(lib))}
    assert not model_is_gone(model, ident)
    os.unlink(model)
    assert model_is_gone(model, ident)
    lib.rename(tmp_path / "away")
    lib.mkdir()  # another folder stands where the volume was
    assert not model_is_gone(model, ident)
    assert not model_is_gone(model, {str(lib): None})  # offline root


def test_missing_twin_under_an_offline_root_is_not_taken_for_a_move(tmp_path: Path, lib: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with StateDB(tmp_path / "s.sqlite3") as db:
        run_scan(lib, db)
        original = str(lib / MODELS[0])
        db.mark_missing([original])
        lib.rename(tmp_path / "away")  # its volume is away: the original is not gone, only out of reach
        shutil.copy(tmp_path / "away" / MODELS[0], other / "gear.stl")
        tracker = ChangeTracker(db, Settler(0.0), is_gone=lambda p: model_is_gone(p, {str(lib): None}))
        assert tracker.ingest([str(other / "gear.stl")]) == 1
        assert db.get(original) is not None
        assert db.get(str(other / "gear.stl")).status is ModelStatus.PENDING  # type: ignore[union-attr]


def test_render_whose_volume_went_away_mid_run_goes_back_to_pending_not_missing(
    tmp_path: Path, lib: Path, asset_manager: tuple[Path, DamMapping]
) -> None:
    dam, mapping = asset_manager
    with StateDB(dam, dam=mapping) as db:
        run_scan(lib, db)
        paths = [str(lib / m) for m in MODELS]
        ident = {str(lib): root_identity(str(lib))}
        # Changed content is queued; then the volume goes before the workers read the files.
        db.upsert_files([FileState(p, 1, 1, None, needs_render=True) for p in paths])
        claimed = db.claim(10)
        lib.rename(tmp_path / "away")
        lib.mkdir()
        pipeline = Pipeline(db, InlineExecutor(), ThumbnailOptions(), durable=False,
                            is_gone=functools.partial(model_is_gone, identities=ident))  # fmt: skip
        try:
            stats = pipeline.run(claimed)
        finally:
            pipeline.close()
        assert (stats.missing, stats.failed, stats.requeued) == (0, 0, 3)
        assert {st for st, _ in statuses(db).values()} == {ModelStatus.PENDING}
    assert {f for f, _, _ in flags(dam).values()} == {1}


def test_root_on_a_volume_that_is_not_mounted_is_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sidecar_thumbs.files.roots as roots_module

    volumes = tmp_path / "Volumes"  # stands for /Volumes; a plain folder is never a mount point
    volumes.mkdir()
    monkeypatch.setattr(roots_module, "_MAC_VOLUMES", str(volumes))
    root = volumes / "3D-Files" / "3D-Models"
    assert check_root(str(root)).reason == f"volume {volumes / '3D-Files'} is not mounted"
    root.mkdir(parents=True)  # a folder left where the volume should be
    shutil.copy(EXAMPLES / "gear.stl", root / "gear.stl")
    state = check_root(str(root))
    assert (
        not state.online
        and state.reason == f"volume {volumes / '3D-Files'} is not mounted (a folder stands in its place)"
    )
    assert check_root(str(tmp_path)).online  # not under it


def test_delete_events_under_a_root_that_went_away_mark_nothing_missing(tmp_path: Path, lib: Path) -> None:
    with StateDB(tmp_path / "s.sqlite3") as db:
        run_scan(lib, db)
        states = RootStates([str(lib)], db)
        states.start()
        tracker = ChangeTracker(db, Settler(0.0), is_gone=states.is_gone)
        lib.rename(tmp_path / "away")  # an eject: FSEvents may report every file deleted
        events = [FileEvent(EventKind.DELETED, str(lib / m), False) for m in MODELS]
        tracker.handle([*events, FileEvent(EventKind.DELETED, str(lib), True)], now=0.0)
        tracker.remove_due_sidecars(now=1e9)
        assert {st for st, _ in statuses(db).values()} == {ModelStatus.DONE}
        changes = states.check()
        assert [(c.state.online, c.back) for c in changes] == [(False, False)]
        assert [(r, on, why) for r, on, why, _ in db.root_states()] == [(str(lib), False, "does not exist")]
        (tmp_path / "away").rename(lib)
        assert [c.back for c in states.check()] == [True]
        (lib / MODELS[0]).unlink()  # a real delete, root online: believed
        tracker.handle([FileEvent(EventKind.DELETED, str(lib / MODELS[0]), False)], now=0.0)
        assert statuses(db)[str(lib / MODELS[0])] == (ModelStatus.MISSING, False)


def test_daemon_root_emptied_on_purpose_comes_back_once_a_scan_confirms_it(tmp_path: Path, lib: Path) -> None:
    with StateDB(tmp_path / "s.sqlite3") as db:
        run_scan(lib, db)
        states = RootStates([str(lib)], db)
        states.start()
        for m in MODELS:
            (lib / m).unlink()  # the user emptied the library on purpose
        shutil.rmtree(lib / "parts")
        assert [c.back for c in states.check()] == [] and states[str(lib)].online  # same folder: one stat
        states.set(check_root(str(lib), known=db.present_under(str(lib))))  # the next walk's view
        assert not states[str(lib)].online and states[str(lib)].overridable
        assert states.check() == []  # still empty, still models in the rows
        run_scan(lib, db, guard=MassMissingGuard(allowed=True))  # sidecar-thumbs scan --allow-mass-missing
        assert [c.back for c in states.check()] == [True]
