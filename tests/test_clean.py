"""clean: removes only what we wrote and no longer need; everything else with a similar name stays.

Real sidecars (rendered from corpus files), real temp files named by ``atomic.temp_name_for``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sidecar_thumbs.cli.main import cli
from sidecar_thumbs.files.atomic import temp_name_for
from sidecar_thumbs.files.sidecar import encode_png, sidecar_path_for, write_sidecar
from sidecar_thumbs.render.thumbnail import make_thumbnail
from sidecar_thumbs.reports.clean import STALE_TEMP_AGE_S, clean, is_our_temp_name

OLD = time.time() - STALE_TEMP_AGE_S - 60


@pytest.fixture
def lib(tmp_path: Path, corpus: Path) -> Path:
    """Two models with fresh sidecars of ours, one in a subfolder."""
    root = tmp_path / "lib"
    (root / "sub").mkdir(parents=True)
    for src, dest in (
        ("stl-binary/admesh__binary.stl", root / "block.stl"),
        ("3mf/3mfsamples__box.3mf", root / "sub" / "box.3mf"),
    ):
        shutil.copyfile(corpus / src, dest)
        write_sidecar(dest, make_thumbnail(dest).png, durable=False)
    return root


def _partial_sidecar(lib: Path) -> bytes:
    """What a write killed half-way leaves: the first bytes of one of our PNGs."""
    return sidecar_path_for(lib / "block.stl").read_bytes()[:300]


def _orphan(model: Path) -> Path:
    """Delete ``model``, leaving its sidecar (ours) behind."""
    model.unlink()
    return sidecar_path_for(model)


def _snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under root: file bytes, or a symlink's target."""
    out: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        for name in files + dirs:
            p = Path(folder, name)
            if p.is_symlink():
                out[str(p)] = "-> " + os.readlink(p)
            elif p.is_file():
                out[str(p)] = p.read_bytes()
    return out


def _age(path: Path, when: float = OLD) -> Path:
    os.utime(path, (when, when), follow_symlinks=False)
    return path


def test_removes_orphaned_sidecars_of_ours_only(lib: Path) -> None:
    gone = _orphan(lib / "sub" / "box.3mf")
    kept = sidecar_path_for(lib / "block.stl")
    report = clean([str(lib)])
    assert report.removed == [str(gone)]
    assert not gone.exists() and kept.exists()
    assert (report.temp_removed, report.left_alone, report.errors) == ([], [], [])


def test_foreign_files_with_sidecar_names_are_never_removed(lib: Path, tmp_path: Path) -> None:
    png = lib / ".other.stl.thumbnail.png"  # a valid PNG someone else wrote, no Software key of ours
    png.write_bytes(encode_png(np.zeros((4, 4, 4), np.uint8), {"Software": "GIMP 2.10"}))
    txt = lib / ".readme.txt.thumbnail.png"
    txt.write_text("a note, not a picture")
    outside = tmp_path / "outside.png"  # a real sidecar of ours, but outside the root
    shutil.copyfile(sidecar_path_for(lib / "block.stl"), outside)
    link = lib / "sub" / ".linked.stl.thumbnail.png"
    link.symlink_to(outside)
    dangling = lib / "sub" / ".dangling.stl.thumbnail.png"
    dangling.symlink_to(tmp_path / "nothing-here.png")
    before = _snapshot(lib)

    for dry_run in (True, False):
        report = clean([str(lib)], dry_run=dry_run)
        assert report.removed == []
        assert sorted(report.left_alone) == sorted(map(str, (png, txt, link, dangling)))
    assert _snapshot(lib) == before
    assert outside.exists()


def test_dry_run_removes_nothing_but_reports_the_same(lib: Path) -> None:
    partial = _partial_sidecar(lib)
    gone = _orphan(lib / "block.stl")
    temp = lib / temp_name_for(gone.name)
    temp.write_bytes(partial)
    _age(temp)
    before = _snapshot(lib)
    dry = clean([str(lib)], dry_run=True)
    assert _snapshot(lib) == before
    assert (dry.removed, dry.temp_removed) == ([str(gone)], [str(temp)])
    real = clean([str(lib)])
    assert (real.removed, real.temp_removed) == (dry.removed, dry.temp_removed)
    assert not gone.exists() and not temp.exists()


def test_stale_temp_files_of_ours_are_removed_young_ones_and_lookalikes_are_not(lib: Path) -> None:
    sidecar = sidecar_path_for(lib / "block.stl").name
    ours_old = lib / temp_name_for(sidecar)
    ours_young = lib / temp_name_for(sidecar)
    ours_legacy = lib / f"{sidecar}.0badcafe.tmp"  # the name older versions used
    users = [lib / ".notes.thumbnail.png.0badcafe.tmp", lib / ".sidecar-thumbs-0123456789abcdef.tmp"]
    lookalikes = [
        lib / f"{sidecar}.DEADBEEF.tmp",  # upper-case hex: not what we write
        lib / f"{sidecar}.1234567.tmp",  # 7 hex digits
        lib / f"{sidecar}.123456789.tmp",  # 9 hex digits
        lib / f"{sidecar[1:]}.12345678.tmp",  # not hidden
        lib / f"{sidecar}.12345678.tmp.bak",
        lib / ".block.stl.12345678.tmp",  # not a sidecar's temp
        lib / "notes.12345678.tmp",
    ]
    partial = _partial_sidecar(lib)
    for p in (ours_old, ours_young, ours_legacy, *users, *lookalikes):
        p.write_bytes(partial if p in (ours_old, ours_young, ours_legacy) else b"my own notes")
        if p is not ours_young:
            _age(p)
    assert all(is_our_temp_name(p.name) for p in (ours_old, ours_young, ours_legacy, *users))
    assert not any(is_our_temp_name(p.name) for p in lookalikes)

    report = clean([str(lib)])
    assert sorted(report.temp_removed) == sorted([str(ours_old), str(ours_legacy)])
    assert not ours_old.exists() and not ours_legacy.exists()
    # A user's files under our exact name patterns: their content is not ours, so they stay.
    assert ours_young.exists() and all(p.exists() for p in (*users, *lookalikes))
    assert sorted(report.left_alone) == sorted(map(str, users))


def test_empty_temp_files_of_a_killed_write(lib: Path) -> None:
    """A write killed between creating and writing its temp file leaves it empty (common: the writer
    thread may wait for the GIL in between). Under our current name it is ours; under the older name
    pattern, which a user's file may match, only when old."""
    ours = lib / temp_name_for("a")
    legacy_old, legacy_young = lib / ".a.stl.thumbnail.png.0000abcd.tmp", lib / ".b.stl.thumbnail.png.0000abcd.tmp"
    for p in (ours, legacy_old, legacy_young):
        p.touch()
    _age(legacy_old)
    assert clean([str(lib)], temp_only=True).temp_removed == [str(legacy_old)]  # no lock: ours is young
    report = clean([str(lib)], temp_only=True, temp_age=0.0)  # holding the coordinator lock
    assert report.temp_removed == [str(ours)] and legacy_young.exists()


def test_with_the_lock_our_young_temp_files_go_at_once(lib: Path) -> None:
    temp = lib / "sub" / temp_name_for("x")
    temp.write_bytes(_partial_sidecar(lib))
    assert clean([str(lib)], temp_only=True).temp_removed == []  # another writer may be at work
    assert clean([str(lib)], temp_only=True, temp_age=0.0).temp_removed == [str(temp)]


def test_temp_name_symlink_or_folder_is_not_removed(lib: Path, tmp_path: Path) -> None:
    target = tmp_path / "precious.bin"
    target.write_bytes(b"precious")
    _age(target)
    link = lib / temp_name_for(".block.stl.thumbnail.png")
    link.symlink_to(target)
    _age(link)
    folder = lib / temp_name_for(".block.stl.thumbnail.png")
    folder.mkdir()
    _age(folder)
    report = clean([str(lib)])
    assert report.temp_removed == []
    assert link.is_symlink() and target.read_bytes() == b"precious" and folder.is_dir()


def test_sidecar_of_a_model_that_is_a_symlink_is_kept(lib: Path, corpus: Path) -> None:
    model = lib / "linked.stl"
    model.symlink_to(lib / "block.stl")
    write_sidecar(model, make_thumbnail(model).png, durable=False)
    dangling = lib / "dangling.stl"
    dangling.symlink_to(lib / "nowhere.stl")
    shutil.copyfile(sidecar_path_for(model), sidecar_path_for(dangling))
    report = clean([str(lib)])
    # A link (even a dangling one) is still a model name on disk: its sidecar is not an orphan.
    assert report.removed == []
    assert sidecar_path_for(model).exists() and sidecar_path_for(dangling).exists()


def test_ignored_folders_are_not_cleaned(lib: Path) -> None:
    trash = lib / ".Trashes" / "501"
    trash.mkdir(parents=True)
    shutil.copyfile(sidecar_path_for(lib / "block.stl"), trash / ".old.stl.thumbnail.png")
    temp = trash / temp_name_for(".old.stl.thumbnail.png")
    temp.touch()
    _age(temp)
    before = _snapshot(lib)
    report = clean([str(lib)])
    assert (report.removed, report.temp_removed) == ([], [])
    assert _snapshot(lib) == before


def test_unremovable_orphan_is_an_error_not_a_crash(lib: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    gone = _orphan(lib / "sub" / "box.3mf")
    (lib / "sub").chmod(0o555)
    try:
        report = clean([str(lib)])
    finally:
        (lib / "sub").chmod(0o755)
    assert report.removed == [] and [p for p, _ in report.errors] == [str(gone)]
    assert gone.exists()


# -- the command ---------------------------------------------------------------------------------


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for var in list(os.environ):
        if var.startswith("SIDECAR_THUMBS_") or var == "DAM_DATABASE_PATH":
            monkeypatch.delenv(var)
    return CliRunner()


def test_clean_command_dry_run_then_real(runner: CliRunner, lib: Path) -> None:
    gone = _orphan(lib / "block.stl")
    foreign = lib / ".x.stl.thumbnail.png"
    foreign.write_text("not ours")
    dry = runner.invoke(cli, ["clean", str(lib), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would remove {gone}" in dry.stdout and gone.exists()
    assert f"left alone (not ours) {foreign}" in dry.stderr
    real = runner.invoke(cli, ["clean", str(lib), "--json"])
    assert real.exit_code == 0, real.output
    out = json.loads(real.stdout)
    assert out["removed"] == [str(gone)] and out["left_alone"] == [str(foreign)] and out["dry_run"] is False
    assert not gone.exists() and foreign.read_text() == "not ours"


def test_clean_uses_roots_from_settings(runner: CliRunner, lib: Path) -> None:
    gone = _orphan(lib / "block.stl")
    result = runner.invoke(cli, ["clean"], env={"SIDECAR_THUMBS_ROOTS": str(lib)})
    assert result.exit_code == 0, result.output
    assert not gone.exists()
    assert runner.invoke(cli, ["clean"]).exit_code == 2  # no PATH and no roots set: usage error


# An AppleDouble file as an SMB client writes it: magic 0x00051607, version 2, then entries.
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00" + b"Mac OS X        " + b"\x00\x00"


def test_appledouble_twins_of_our_files_are_neither_foreign_nor_removed(lib: Path) -> None:
    twin = lib / ("._" + sidecar_path_for(lib / "block.stl").name)  # ._.block.stl.thumbnail.png
    twin.write_bytes(APPLEDOUBLE)
    orphan_twin = lib / "._.gone.stl.thumbnail.png"  # beside a sidecar whose model is gone
    orphan_twin.write_bytes(APPLEDOUBLE)
    temp_twin = lib / ("._" + temp_name_for(sidecar_path_for(lib / "block.stl").name))
    temp_twin.write_bytes(APPLEDOUBLE)
    _age(temp_twin)
    assert is_our_temp_name(temp_twin.name[2:])  # the twin of a stale temp file of ours
    before = _snapshot(lib)
    report = clean([str(lib)])
    assert (report.removed, report.temp_removed, report.left_alone, report.errors) == ([], [], [], [])
    assert _snapshot(lib) == before


def test_a_volume_probe_left_by_a_killed_start_is_removed_when_stale(lib: Path) -> None:
    stale = lib / ".sidecar-thumbs-probe-0123abcd-Xé"
    stale.write_bytes(b"")
    _age(stale)
    young = lib / ".sidecar-thumbs-probe-4567cdef-Xé"  # a probe running right now
    young.write_bytes(b"")
    report = clean([str(lib)], temp_only=True)
    assert report.temp_removed == [str(stale)]
    assert young.exists()
