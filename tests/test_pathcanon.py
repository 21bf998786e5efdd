"""One spelling per file: canonical paths and comparisons by the volume's rules.

The case tests run on a real case-insensitive volume (exFAT through FUSE, see ``ci_volume.py``); the
normalisation tests run on this machine's own file system with a root declared normalisation-insensitive
through ``Volumes``' constructor (ext4 keeps NFC and NFD apart, so only the comparison logic is tested there).
"""

from __future__ import annotations

import os
import shutil
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from ci_volume import cannot_mount_reason, exfat_volume

from sidecar_thumbs.daemon.changes import ChangeTracker
from sidecar_thumbs.daemon.events import EventKind, FileEvent
from sidecar_thumbs.daemon.settle import Settler
from sidecar_thumbs.files.discover import find_model_files
from sidecar_thumbs.files.pathcanon import SENSITIVE, VolumeRules, Volumes, probe_rules
from sidecar_thumbs.files.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus
from sidecar_thumbs.work.executors.local import InlineExecutor
from sidecar_thumbs.work.scan import scan

REPO = Path(__file__).resolve().parents[1]
GEAR = REPO / "examples" / "models" / "gear.stl"
OPTIONS = ThumbnailOptions()
NFC = unicodedata.normalize("NFC", "Café.stl")
NFD = unicodedata.normalize("NFD", "Café.stl")
NORM_INSENSITIVE = VolumeRules(norm_insensitive=True)
CASE_INSENSITIVE = VolumeRules(case_insensitive=True)


@pytest.fixture(scope="module")
def ci_volume(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real case-insensitive volume (one per module: mounting takes a moment)."""
    reason = cannot_mount_reason()
    if reason:
        pytest.skip(f"no case-insensitive test volume: {reason}")
    try:
        with exfat_volume(tmp_path_factory.mktemp("vol")) as mnt:
            yield mnt
    except RuntimeError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def ci_root(ci_volume: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    root = ci_volume / request.node.name[:40]
    root.mkdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    d = StateDB(tmp_path / "state" / "db.sqlite3")
    yield d
    d.close()


def run_scan(root: Path, db: StateDB, volumes: Volumes | None = None):  # type: ignore[no-untyped-def]
    return scan([str(root)], db=db, make_executor=InlineExecutor, options=OPTIONS, durable=False, volumes=volumes)


def all_rows(db: StateDB) -> dict[str, ModelStatus]:
    return {p: r.status for p, r in db.rows_under().items()}


# -- rules and spellings, no disk needed --------------------------------------------------------------


def test_rules_key_folds_case_and_normalisation_only_where_the_volume_does() -> None:
    both = VolumeRules(case_insensitive=True, norm_insensitive=True)
    assert both.key("/L/" + NFC) == both.key("/l/" + NFD.upper())
    assert CASE_INSENSITIVE.key("Gear.STL") == CASE_INSENSITIVE.key("gear.stl")
    assert CASE_INSENSITIVE.key(NFC) != CASE_INSENSITIVE.key(NFD)
    assert NORM_INSENSITIVE.key(NFC) == NORM_INSENSITIVE.key(NFD)
    assert NORM_INSENSITIVE.key("Gear.stl") != NORM_INSENSITIVE.key("gear.stl")
    assert SENSITIVE.key(NFC) == NFC and SENSITIVE.exact
    # Volumes fold one character at a time: ß is not "ss" there, so two files here too.
    assert CASE_INSENSITIVE.key("straße.stl") != CASE_INSENSITIVE.key("STRASSE.stl")


def test_kernel_spelling_is_taken_only_for_the_part_below_the_root(tmp_path: Path) -> None:
    (tmp_path / "Parts").mkdir()
    (tmp_path / "Parts" / "Gear.stl").write_bytes(b"x")
    # F_GETPATH resolves symlinked ancestors (/tmp -> /private/tmp): only the tail below the root counts.
    vols = Volumes([str(tmp_path)], [CASE_INSENSITIVE], getpath=lambda p: "/private" + p.upper())
    assert vols.canonical(str(tmp_path / "parts" / "gear.stl")) == str(tmp_path / "PARTS" / "GEAR.STL")
    # A tail that is not a spelling of the path asked for (a symlink on the way) is not trusted.
    vols = Volumes([str(tmp_path)], [CASE_INSENSITIVE], getpath=lambda p: "/elsewhere/x/y")
    assert vols.canonical(str(tmp_path / "parts" / "gear.stl")) == str(tmp_path / "Parts" / "Gear.stl")


def test_probe_on_this_file_system_leaves_nothing_behind(tmp_path: Path) -> None:
    rules = probe_rules(str(tmp_path))
    assert rules is not None  # Linux tmp: ext4/tmpfs/overlay, all exact
    assert rules.exact
    assert os.listdir(tmp_path) == []


def test_probe_that_cannot_run_falls_back_to_exact(tmp_path: Path) -> None:
    assert probe_rules(str(tmp_path / "not-mounted")) is None
    (tmp_path / "file").write_bytes(b"")
    vols = Volumes.detect([str(tmp_path / "not-mounted"), str(tmp_path / "file")])
    assert vols.all_exact
    assert vols.canonical(str(tmp_path / "not-mounted" / "A.stl")) == str(tmp_path / "not-mounted" / "A.stl")


# -- NFC/NFD: the comparison logic on a root declared normalisation-insensitive -----------------------


def test_nfc_path_is_canonicalised_to_the_nfd_name_on_disk(tmp_path: Path) -> None:
    (tmp_path / NFD).write_bytes(b"x")
    vols = Volumes([str(tmp_path)], [NORM_INSENSITIVE])
    assert vols.canonical(str(tmp_path / NFC)) == str(tmp_path / NFD)
    assert vols.same(str(tmp_path / NFC), str(tmp_path / NFD))
    assert vols.canonical_parent(str(tmp_path / NFC)) == str(tmp_path / NFC)  # an old name keeps its spelling


def test_normalisation_only_rename_seen_by_a_scan_keeps_row_and_sidecar(tmp_path: Path, db: StateDB) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    shutil.copy2(GEAR, root / NFC)
    vols = Volumes([str(root)], [NORM_INSENSITIVE])
    assert run_scan(root, db, vols).rendered == 1
    # What an SMB client does to a Mac volume: the same name arrives in the other normal form.
    os.rename(root / NFC, root / NFD)
    s = run_scan(root, db, vols)
    assert (s.rendered, s.new, s.missing) == (0, 0, 0)
    assert all_rows(db) == {str(root / NFD): ModelStatus.DONE}
    info = read_sidecar(sidecar_path_for(root / NFD))
    assert info is not None and info.ours
    assert not os.path.lexists(sidecar_path_for(root / NFC))


def test_normalisation_only_rename_as_delete_plus_create_keeps_the_row(tmp_path: Path, db: StateDB) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    shutil.copy2(GEAR, root / NFC)
    vols = Volumes([str(root)], [NORM_INSENSITIVE])
    run_scan(root, db, vols)
    os.rename(root / NFC, root / NFD)
    tracker = ChangeTracker(db, Settler(0.0), volumes=vols)
    tracker.handle([FileEvent(EventKind.DELETED, str(root / NFC), False)], 0.0)
    tracker.handle([FileEvent(EventKind.CHANGED, str(root / NFD), False)], 0.0)
    assert tracker.ingest(tracker.settler.due(1.0)) == 0
    assert all_rows(db) == {str(root / NFD): ModelStatus.DONE}
    assert read_sidecar(sidecar_path_for(root / NFD)) is not None


def test_two_files_the_rules_cannot_tell_apart_are_never_merged(tmp_path: Path, db: StateDB) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    shutil.copy2(GEAR, root / NFC)
    vols = Volumes([str(root)], [NORM_INSENSITIVE])
    run_scan(root, db, vols)
    shutil.copy2(GEAR, root / NFD)  # ext4 really holds both: the declared rules are wrong here
    tracker = ChangeTracker(db, Settler(0.0), volumes=vols)
    tracker.handle([FileEvent(EventKind.CHANGED, str(root / NFD), False)], 0.0)
    tracker.ingest(tracker.settler.due(1.0))
    assert set(all_rows(db)) == {str(root / NFC), str(root / NFD)}
    assert read_sidecar(sidecar_path_for(root / NFC)) is not None  # its sidecar stays where it was


# -- a real case-insensitive volume -------------------------------------------------------------------


def test_probe_finds_the_exfat_volume_case_insensitive(ci_root: Path) -> None:
    rules = probe_rules(str(ci_root))
    assert rules == VolumeRules(case_insensitive=True, norm_insensitive=False)
    assert os.listdir(ci_root) == []


def test_root_typed_in_another_case_is_used_as_spelled_on_disk(ci_root: Path) -> None:
    (ci_root / "Models" / "Parts").mkdir(parents=True)
    (ci_root / "Models" / "Parts" / "Gear.stl").write_bytes(b"x")
    typed = str(ci_root / "MODELS")
    vols = Volumes.detect([typed])
    assert vols.roots == (str(ci_root / "Models"),)
    assert vols.canonical(typed + "/parts/GEAR.stl") == str(ci_root / "Models" / "Parts" / "Gear.stl")
    assert vols.canonical(typed + "/parts/new.stl") == str(ci_root / "Models" / "Parts" / "new.stl")


def test_walk_sees_a_sidecar_left_in_the_old_case(ci_root: Path) -> None:
    (ci_root / "gear.stl").write_bytes(b"x")
    (ci_root / ".Gear.stl.thumbnail.png").write_bytes(b"y")
    vols = Volumes.detect([str(ci_root)])
    (found,), _ = find_model_files(list(vols.roots))
    assert found.has_sidecar is False  # byte for byte: the names differ
    from sidecar_thumbs.files.discover import iter_model_files

    (found,) = list(iter_model_files(list(vols.roots), volumes=vols))
    assert found.has_sidecar is True  # by the volume's rules: it is there


def test_walk_sees_a_sidecar_whose_suffix_is_in_another_case(ci_root: Path) -> None:
    # The walk only keys names that end in the sidecar suffix in some case: `.THUMBNAIL.PNG` is one of them.
    (ci_root / "gear.stl").write_bytes(b"x")
    (ci_root / ".GEAR.STL.THUMBNAIL.PNG").write_bytes(b"y")
    (ci_root / "cog.stl").write_bytes(b"x")
    (ci_root / ".cog.stl.thumbnail.png.old").write_bytes(b"y")  # not a sidecar name in any case
    vols = Volumes.detect([str(ci_root)])
    from sidecar_thumbs.files.discover import iter_model_files

    found = {os.path.basename(f.path): f.has_sidecar for f in iter_model_files(list(vols.roots), volumes=vols)}
    assert found == {"gear.stl": True, "cog.stl": False}


def test_case_only_rename_seen_by_a_scan_keeps_row_and_sidecar(ci_root: Path, db: StateDB) -> None:
    shutil.copy2(GEAR, ci_root / "Gear.stl")
    assert run_scan(ci_root, db).rendered == 1
    os.rename(ci_root / "Gear.stl", ci_root / "gear.stl")
    s = run_scan(ci_root, db)
    assert (s.rendered, s.new, s.missing) == (0, 0, 0)
    assert all_rows(db) == {str(ci_root / "gear.stl"): ModelStatus.DONE}
    assert ".gear.stl.thumbnail.png" in os.listdir(ci_root)  # the sidecar follows the new spelling
    assert run_scan(ci_root, db).rendered == 0


def test_case_only_rename_as_a_move_event_keeps_row_and_renames_the_sidecar(ci_root: Path, db: StateDB) -> None:
    shutil.copy2(GEAR, ci_root / "Gear.stl")
    run_scan(ci_root, db)
    os.rename(ci_root / "Gear.stl", ci_root / "gear.stl")
    tracker = ChangeTracker(db, Settler(0.0), volumes=Volumes.detect([str(ci_root)]))
    tracker.handle([FileEvent(EventKind.MOVED, str(ci_root / "Gear.stl"), False, str(ci_root / "gear.stl"))], 0.0)
    assert tracker.ingest(tracker.settler.due(1.0)) == 0
    assert all_rows(db) == {str(ci_root / "gear.stl"): ModelStatus.DONE}
    assert sorted(os.listdir(ci_root)) == [".gear.stl.thumbnail.png", "gear.stl"]


def test_case_only_rename_as_delete_plus_create_keeps_row_and_renders_nothing(ci_root: Path, db: StateDB) -> None:
    shutil.copy2(GEAR, ci_root / "Gear.stl")
    run_scan(ci_root, db)
    os.rename(ci_root / "Gear.stl", ci_root / "gear.stl")
    tracker = ChangeTracker(db, Settler(0.0), volumes=Volumes.detect([str(ci_root)]))
    # FSEvents may report a rename as two unpaired events, in either order.
    tracker.handle([FileEvent(EventKind.CHANGED, str(ci_root / "gear.stl"), False)], 0.0)
    tracker.handle([FileEvent(EventKind.DELETED, str(ci_root / "Gear.stl"), False)], 0.0)
    assert tracker.ingest(tracker.settler.due(1.0)) == 0
    tracker.remove_due_sidecars(1e9)
    assert all_rows(db) == {str(ci_root / "gear.stl"): ModelStatus.DONE}
    assert sorted(os.listdir(ci_root)) == [".gear.stl.thumbnail.png", "gear.stl"]


def test_event_path_in_another_case_is_recorded_in_the_on_disk_spelling(ci_root: Path, db: StateDB) -> None:
    shutil.copy2(GEAR, ci_root / "Gear.stl")
    tracker = ChangeTracker(db, Settler(0.0), volumes=Volumes.detect([str(ci_root)]))
    tracker.handle([FileEvent(EventKind.CHANGED, str(ci_root / "GEAR.STL"), False)], 0.0)
    assert tracker.ingest(tracker.settler.due(1.0)) == 1
    assert all_rows(db) == {str(ci_root / "Gear.stl"): ModelStatus.PENDING}


def test_asset_manager_row_in_another_case_is_the_file_on_disk(ci_root: Path, tmp_path: Path) -> None:
    from test_dam import MAPPING, add_assets, flags, make_dam

    from sidecar_thumbs.dam.mapping import DamMapping

    shutil.copy2(GEAR, ci_root / "gear.stl")
    dam = tmp_path / "dam.sqlite3"
    make_dam(dam)
    add_assets(dam, "Gear.stl")  # the asset manager's spelling; the volume lists gear.stl
    mapping = DamMapping(**{**MAPPING.__dict__, "path_base": str(ci_root)})
    with StateDB(dam, dam=mapping) as db:
        first = run_scan(ci_root, db)
        assert first.rendered == 1
        for _ in range(2):  # before: every rescan cleared the flag, re-rendered and flipped the sidecar's case
            again = run_scan(ci_root, db)
            assert (again.rendered, again.new, again.missing) == (0, 0, 0)
            assert flags(dam)["Gear.stl"][0] == 1
        assert all_rows(db) == {str(ci_root / "gear.stl"): ModelStatus.DONE}
    assert sorted(os.listdir(ci_root)) == [".gear.stl.thumbnail.png", "gear.stl"]


@pytest.mark.integration
def test_daemon_on_a_case_insensitive_volume_keeps_a_case_renamed_model(ci_root: Path, tmp_path: Path) -> None:
    import threading
    import time

    from test_daemon import wait_for

    from sidecar_thumbs.daemon.loop import Daemon, DaemonConfig

    model = ci_root / "Gear.stl"
    shutil.copy2(GEAR, model)
    db = StateDB(tmp_path / "daemon.sqlite3")

    config = DaemonConfig(roots=(str(ci_root),), settle=0.2, sweep_interval=0.2, rescan_interval=0, durable=False)
    daemon = Daemon(config, db=db, make_executor=InlineExecutor, options=OPTIONS)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()

    try:
        wait_for(
            lambda: (r := db.get(str(model))) is not None and r.status is ModelStatus.DONE, what="the first render"
        )
        rendered_at = db.get(str(model)).rendered_at  # type: ignore[union-attr]
        os.rename(model, ci_root / "gear.stl")
        wait_for(lambda: db.get(str(ci_root / "gear.stl")) is not None, what="the row to follow the rename")
        time.sleep(1.0)  # settle + sweeps: time for a wrong re-render to happen
        row = db.get(str(ci_root / "gear.stl"))
        assert row is not None and row.status is ModelStatus.DONE and row.rendered_at == rendered_at
        assert all_rows(db) == {str(ci_root / "gear.stl"): ModelStatus.DONE}
        assert sorted(os.listdir(ci_root)) == [".gear.stl.thumbnail.png", "gear.stl"]
    finally:
        daemon.request_stop()
        thread.join(30)
        db.close()


def test_folder_renamed_by_case_as_delete_plus_create_keeps_its_rows(ci_root: Path, db: StateDB) -> None:
    (ci_root / "Parts").mkdir()
    shutil.copy2(GEAR, ci_root / "Parts" / "gear.stl")
    run_scan(ci_root, db)
    os.rename(ci_root / "Parts", ci_root / "parts")
    tracker = ChangeTracker(db, Settler(0.0), volumes=Volumes.detect([str(ci_root)]))
    tracker.handle([FileEvent(EventKind.DELETED, str(ci_root / "Parts"), True)], 0.0)
    tracker.handle([FileEvent(EventKind.CHANGED, str(ci_root / "parts"), True)], 0.0)
    assert tracker.ingest(tracker.settler.due(1.0)) == 0
    assert all_rows(db) == {str(ci_root / "parts" / "gear.stl"): ModelStatus.DONE}
    assert run_scan(ci_root, db).rendered == 0


def test_rules_are_read_off_existing_names_when_the_probe_cannot_write(ci_root: Path, tmp_path: Path) -> None:
    from sidecar_thumbs.files.pathcanon import rules_from_names

    (ci_root / NFC).write_bytes(b"x")  # exFAT: case folds, normal forms do not
    assert rules_from_names(str(ci_root)) == VolumeRules(case_insensitive=True, norm_insensitive=False)
    (tmp_path / NFC).write_bytes(b"x")
    assert rules_from_names(str(tmp_path)) == SENSITIVE
    assert rules_from_names(str(tmp_path / "absent")) is None
    (tmp_path / "empty").mkdir()
    assert rules_from_names(str(tmp_path / "empty")) is None


def test_rows_recorded_under_a_root_typed_in_another_case_follow_its_spelling(ci_root: Path, db: StateDB) -> None:
    (ci_root / "Models").mkdir()
    shutil.copy2(GEAR, ci_root / "Models" / "gear.stl")
    typed = ci_root / "MODELS"
    exact = Volumes([str(typed)], [SENSITIVE])  # how an older version saw it: byte for byte
    assert run_scan(typed, db, exact).rendered == 1
    assert all_rows(db) == {str(typed / "gear.stl"): ModelStatus.DONE}
    s = scan([str(typed)], db=db, make_executor=InlineExecutor, options=OPTIONS, durable=False)  # probes now
    assert (s.rendered, s.new, s.missing) == (0, 0, 0)
    assert all_rows(db) == {str(ci_root / "Models" / "gear.stl"): ModelStatus.DONE}


def test_probe_never_writes_into_a_folder_marked_read_only(tmp_path: Path) -> None:
    (tmp_path / "Gear.stl").write_bytes(b"x")
    tmp_path.chmod(0o555)  # as the shared corpus is; root could write there, and must not
    try:
        before = os.stat(tmp_path).st_mtime_ns
        assert probe_rules(str(tmp_path)) == SENSITIVE  # read off its own names instead
        assert os.stat(tmp_path).st_mtime_ns == before
    finally:
        tmp_path.chmod(0o755)


@pytest.mark.integration
def test_daemon_with_a_root_typed_in_another_case_keeps_one_row_per_model(ci_root: Path, tmp_path: Path) -> None:
    from sidecar_thumbs.daemon.loop import Daemon, DaemonConfig

    (ci_root / "Models").mkdir()
    shutil.copy2(GEAR, ci_root / "Models" / "gear.stl")
    typed = str(ci_root / "MODELS")
    with StateDB(tmp_path / "daemon.sqlite3") as db:
        for run in range(2):
            config = DaemonConfig(roots=(typed,), once=True, durable=False, rescan_interval=0)
            daemon = Daemon(config, db=db, make_executor=InlineExecutor, options=OPTIONS)
            assert daemon.roots == [str(ci_root / "Models")]  # the volume's spelling, before anything keys on it
            daemon.run()
            assert all_rows(db) == {str(ci_root / "Models" / "gear.stl"): ModelStatus.DONE}, run
            assert db.get(str(ci_root / "Models" / "gear.stl")).attempts == 0  # type: ignore[union-attr]
