"""verify: every planted kind of problem is found, with and without the database; --fix repairs each.

Real corpus files copied into tmp_path, real SQLite files, real renders (inline for speed; one test
uses a real 2-process pool because that is what ``verify --fix`` starts by default).
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
from sidecar_thumbs.files.sidecar import encode_png, read_sidecar, sidecar_path_for
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.reports.verify import Problem, ProblemKind, VerifyReport, verify
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus
from sidecar_thumbs.work.executors.local import InlineExecutor
from sidecar_thumbs.work.scan import scan

OPTIONS = ThumbnailOptions()
SETTINGS = OPTIONS.describe()
# Small real models: renders take milliseconds, so a whole library renders inline in well under 1 s.
PICKS = {
    "block.stl": "stl-binary/admesh__binary.stl",
    "pyramid.stl": "stl-binary/prusaslicer__pyramid.stl",
    "bunny.stl": "stl-binary/prusaslicer__bunny.stl",
    "star.stl": "stl-binary/numpystl__StarWithEmptyHeader.stl",
    "sub/box.3mf": "3mf/3mfsamples__box.3mf",
    "sub/cylinder.3mf": "3mf/3mfsamples__cylinder.3mf",
    "sub/cube.stl": "stl-binary/stlthumb__cube.stl",
    "sub/helix.stl": "stl-binary/lib3mf__Helix.stl",
}


def _copy(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)  # not copy2: corpus files are read-only, copies must be writable
    return dest


@pytest.fixture
def lib(tmp_path: Path, corpus: Path) -> Path:
    root = tmp_path / "lib"
    for rel, src in PICKS.items():
        _copy(corpus / src, root / rel)
    return root


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "db.sqlite3"


def _scan(lib: Path, db: StateDB, options: ThumbnailOptions = OPTIONS) -> None:
    s = scan([str(lib)], db=db, options=options, make_executor=InlineExecutor, durable=False)
    assert s.failed == 0, s.failures


def _kinds(report: VerifyReport) -> set[tuple[ProblemKind, str]]:
    return {(p.kind, p.path) for p in report.problems}


def _foreign_png() -> bytes:
    """A valid PNG that some other program wrote (no Software key of ours)."""
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    return encode_png(rgba, {"Software": "GIMP 2.10", "Thumb::URI": "./x.stl"})


def _change_content(model: Path, corpus: Path) -> None:
    """Replace the model's bytes with another model (other size, so the stat gate moves too)."""
    data = (corpus / "stl-binary/prusaslicer__box.stl").read_bytes()
    assert len(data) != model.stat().st_size
    model.write_bytes(data)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _touch_later(path: Path) -> None:
    t = time.time() + 100
    os.utime(path, (t, t))


# -- a clean library -----------------------------------------------------------------------------


def test_freshly_scanned_library_has_no_problems(lib: Path, db_path: Path) -> None:
    with StateDB(db_path) as db:
        _scan(lib, db)
        report = verify([str(lib)], db=db, expected_settings=SETTINGS)
    assert report.problems == []
    assert report.models == report.fresh == report.sidecars == len(PICKS)


# -- each kind of problem, from the files alone ----------------------------------------------------


def test_each_planted_problem_is_found_without_a_database(lib: Path, db_path: Path, corpus: Path) -> None:
    with StateDB(db_path) as db:
        _scan(lib, db)
    missing, stale, touched, corrupt = (
        lib / "block.stl",
        lib / "pyramid.stl",
        lib / "bunny.stl",
        lib / "star.stl",
    )
    orphan_model, foreign_model = lib / "sub/cube.stl", lib / "sub/helix.stl"

    sidecar_path_for(missing).unlink()
    _change_content(stale, corpus)
    _touch_later(touched)
    _truncate(sidecar_path_for(corrupt))
    orphan_model.unlink()
    sidecar_path_for(foreign_model).write_bytes(_foreign_png())  # replaced by another program's PNG
    stray = lib / "sub" / ".notes.txt.thumbnail.png"  # a sidecar-shaped name, not ours, no model
    stray.write_text("not a png")

    report = verify([str(lib)], expected_settings=SETTINGS)
    assert _kinds(report) == {
        (ProblemKind.MISSING, str(missing)),
        (ProblemKind.STALE, str(stale)),
        (ProblemKind.CORRUPT, str(corrupt)),
        (ProblemKind.ORPHANED, str(sidecar_path_for(orphan_model))),
        (ProblemKind.FOREIGN, str(sidecar_path_for(foreign_model))),
        (ProblemKind.FOREIGN, str(stray)),
    }
    # The touched model (mtime moved, same bytes) is hashed and found fresh.
    assert report.fresh == 3  # touched, box.3mf, cylinder.3mf
    assert report.models == len(PICKS) - 1


def test_sidecar_made_with_other_settings_is_stale(lib: Path, db_path: Path) -> None:
    small = ThumbnailOptions(render=RenderOptions(size=128))
    with StateDB(db_path) as db:
        _scan(lib, db, small)
    report = verify([str(lib)], expected_settings=SETTINGS)
    assert {p.kind for p in report.problems} == {ProblemKind.STALE}
    assert len(report.problems) == len(PICKS)
    assert all("size=128" in p.detail for p in report.problems)
    # Checked against the settings it was made with, the same library is clean.
    assert verify([str(lib)], expected_settings=small.describe()).problems == []


def test_touched_model_is_not_stale_but_same_size_new_content_is(lib: Path, db_path: Path) -> None:
    with StateDB(db_path) as db:
        _scan(lib, db)
    model = lib / "block.stl"
    _touch_later(model)
    assert verify([str(lib)], expected_settings=SETTINGS).problems == []
    # Same size, different bytes: only the hash can tell, and it must.
    data = bytearray(model.read_bytes())
    data[100] ^= 0xFF
    model.write_bytes(bytes(data))
    _touch_later(model)
    report = verify([str(lib)], expected_settings=SETTINGS)
    assert _kinds(report) == {(ProblemKind.STALE, str(model))}


def test_truncated_foreign_png_is_foreign_not_corrupt(lib: Path, db_path: Path) -> None:
    with StateDB(db_path) as db:
        _scan(lib, db)
    sidecar = sidecar_path_for(lib / "block.stl")
    sidecar.write_bytes(_foreign_png()[:40])
    assert _kinds(verify([str(lib)])) == {(ProblemKind.FOREIGN, str(sidecar))}


def test_symlink_under_a_sidecar_name_is_foreign(lib: Path, db_path: Path, tmp_path: Path) -> None:
    with StateDB(db_path) as db:
        _scan(lib, db)
    outside = tmp_path / "outside.png"
    shutil.copyfile(sidecar_path_for(lib / "block.stl"), outside)  # even a real sidecar of ours
    link = lib / ".gone.stl.thumbnail.png"
    link.symlink_to(outside)
    assert _kinds(verify([str(lib)])) == {(ProblemKind.FOREIGN, str(link))}


# -- the database's view -------------------------------------------------------------------------


def test_database_disagreements_are_found(lib: Path, db_path: Path) -> None:
    flagged_without, flagged_with = lib / "block.stl", lib / "pyramid.stl"
    vanished = lib / "sub" / "cube.stl"
    with StateDB(db_path) as db:
        _scan(lib, db)
        db.set_has_thumbnail([(str(flagged_without), False)])  # the flag lies: a fresh sidecar is there
        sidecar_path_for(flagged_with).unlink()  # the flag lies: the sidecar is gone
        vanished.unlink()  # model and sidecar both gone, the row still says done
        sidecar_path_for(vanished).unlink()
        report = verify([str(lib)], db=db, expected_settings=SETTINGS)
    assert _kinds(report) == {
        (ProblemKind.FLAG, str(flagged_without)),
        (ProblemKind.MISSING, str(flagged_with)),
        (ProblemKind.FLAG, str(flagged_with)),
        (ProblemKind.VANISHED, str(vanished)),
    }
    flags = {p.path: p.sidecar_fresh for p in report.problems if p.kind is ProblemKind.FLAG}
    assert flags == {str(flagged_without): True, str(flagged_with): False}


def test_known_failure_is_not_a_missing_sidecar(lib: Path, db_path: Path, corpus: Path) -> None:
    bad = _copy(corpus / "bad/openscad__unparseable.stl", lib / "bad.stl")
    with StateDB(db_path) as db:
        s = scan([str(lib)], db=db, options=OPTIONS, make_executor=InlineExecutor, durable=False)
        assert s.failed == 1
        report = verify([str(lib)], db=db, expected_settings=SETTINGS)
    assert report.problems == [] and report.failed_known == 1
    # Without the database nothing says why it has no sidecar: it is missing.
    assert _kinds(verify([str(lib)])) == {(ProblemKind.MISSING, str(bad))}


def test_model_replaced_by_a_bad_file_is_a_known_failure_not_stale_for_ever(
    runner: CliRunner, lib: Path, db_path: Path, corpus: Path
) -> None:
    model = lib / "block.stl"
    with StateDB(db_path) as db:
        _scan(lib, db)
        model.write_bytes((corpus / "bad/openscad__unparseable.stl").read_bytes())
        s = scan([str(lib)], db=db, options=OPTIONS, make_executor=InlineExecutor, durable=False)
        assert s.failed == 1
        assert sidecar_path_for(model).exists()  # the old picture of ours is still there
        report = verify([str(lib)], db=db, expected_settings=SETTINGS)
    assert report.problems == [] and report.failed_known == 1
    # From the files alone the old sidecar is simply stale.
    assert _kinds(verify([str(lib)], expected_settings=SETTINGS)) == {(ProblemKind.STALE, str(model))}
    args = ["verify", str(lib), "--db", str(db_path), "--workers", "0"]
    assert runner.invoke(cli, args).exit_code == 0
    # Changed again (now good): the known failure no longer explains it, so it is stale again.
    model.write_bytes((corpus / "stl-binary/prusaslicer__box.stl").read_bytes())
    _touch_later(model)
    with StateDB(db_path) as db:
        assert _kinds(verify([str(lib)], db=db)) == {(ProblemKind.STALE, str(model))}
    assert runner.invoke(cli, [*args, "--fix"]).exit_code == 0


def test_rows_outside_the_roots_are_not_reported(lib: Path, db_path: Path) -> None:
    with StateDB(db_path) as db:
        _scan(lib, db)
        (lib / "block.stl").unlink()
        sidecar_path_for(lib / "block.stl").unlink()
        report = verify([str(lib / "sub")], db=db, expected_settings=SETTINGS)
    assert report.problems == []
    assert report.models == 4


def test_report_as_dict_is_json(lib: Path) -> None:
    report = verify([str(lib)])
    data = json.loads(json.dumps(report.as_dict()))
    assert data["problems_by_kind"] == {"missing": len(PICKS)}
    assert {p["kind"] for p in data["problems"]} == {"missing"}
    assert Problem(ProblemKind.STALE, "/x", "why").as_dict() == {
        "kind": "stale",
        "path": "/x",
        "detail": "why",
    }


# -- the command, with --fix ----------------------------------------------------------------------


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # No .env of the developer's, no settings from the environment.
    monkeypatch.chdir(tmp_path)
    for var in list(os.environ):
        if var.startswith("SIDECAR_THUMBS_") or var == "DAM_DATABASE_PATH":
            monkeypatch.delenv(var)
    return CliRunner()


def _plant_everything(lib: Path, db_path: Path, corpus: Path) -> dict[str, Path]:
    """Scan the library into ``db_path``, then break it in every way ``--fix`` can repair."""
    with StateDB(db_path) as db:
        _scan(lib, db)
        planted = {
            "missing": lib / "block.stl",
            "stale": lib / "pyramid.stl",
            "touched": lib / "bunny.stl",
            "corrupt": lib / "star.stl",
            "orphan": lib / "sub" / "cube.stl",
            "flag_fresh": lib / "sub" / "box.3mf",
            "vanished": lib / "sub" / "helix.stl",
        }
        sidecar_path_for(planted["missing"]).unlink()
        _change_content(planted["stale"], corpus)
        _touch_later(planted["touched"])
        _truncate(sidecar_path_for(planted["corrupt"]))
        planted["orphan"].unlink()
        db.set_has_thumbnail([(str(planted["flag_fresh"]), False)])
        planted["vanished"].unlink()
        sidecar_path_for(planted["vanished"]).unlink()
    return planted


def test_fix_repairs_every_kind_and_second_verify_is_clean(
    runner: CliRunner, lib: Path, db_path: Path, corpus: Path
) -> None:
    planted = _plant_everything(lib, db_path, corpus)
    args = ["verify", str(lib), "--db", str(db_path), "--workers", "0"]
    first = runner.invoke(cli, [*args, "--json"])
    assert first.exit_code == 3, first.output
    kinds = json.loads(first.stdout)["problems_by_kind"]
    # flag: the rows of missing, stale and corrupt still say "has a thumbnail", box.3mf says it has none.
    # vanished: helix.stl's row, and cube.stl's (its model was deleted, leaving the orphan).
    assert kinds == {"missing": 1, "flag": 4, "stale": 1, "corrupt": 1, "orphaned": 1, "vanished": 2}

    fixed = runner.invoke(cli, [*args, "--fix", "--json"])
    assert fixed.exit_code == 0, fixed.output
    out = json.loads(fixed.stdout)
    assert out["problems"] == []
    assert out["fixed"] == {
        "rendered": 3,
        "render_failed": 0,
        "orphans_removed": 1,
        "reflagged": 4,
        "rows_marked_missing": 2,
    }
    again = runner.invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "no problems" in again.stdout

    assert not sidecar_path_for(planted["orphan"]).exists()
    with StateDB(db_path) as db:
        for name in ("missing", "stale", "corrupt", "flag_fresh", "touched"):
            model = planted[name]
            info = read_sidecar(sidecar_path_for(model))
            assert info is not None and info.ours and info.readable, name
            row = db.get(str(model))
            assert row is not None and row.status is ModelStatus.DONE and row.has_thumbnail, name
        assert (
            read_sidecar(sidecar_path_for(planted["stale"])).content_hash
            == db.get(  # type: ignore[union-attr]
                str(planted["stale"])
            ).hash
        )
        assert db.get(str(planted["vanished"])).status is ModelStatus.MISSING  # type: ignore[union-attr]


def test_fix_rerenders_sidecars_made_with_other_settings(runner: CliRunner, lib: Path, db_path: Path) -> None:
    with StateDB(db_path) as db:
        _scan(lib, db, ThumbnailOptions(render=RenderOptions(size=128)))
    args = ["verify", str(lib), "--db", str(db_path), "--workers", "0"]
    assert runner.invoke(cli, args).exit_code == 3
    assert runner.invoke(cli, [*args, "--fix"]).exit_code == 0
    for rel in PICKS:
        info = read_sidecar(sidecar_path_for(lib / rel))
        assert info is not None and info.width == 256 and info.settings == SETTINGS


def test_foreign_files_survive_fix_byte_identical(runner: CliRunner, lib: Path, db_path: Path, corpus: Path) -> None:
    with StateDB(db_path) as db:
        _scan(lib, db)
    taken = sidecar_path_for(lib / "block.stl")
    taken.write_bytes(_foreign_png())  # another program's picture where our sidecar would go
    stray = lib / ".notes.txt.thumbnail.png"
    stray.write_text("keep me")
    link = lib / ".elsewhere.stl.thumbnail.png"
    link.symlink_to(corpus / "MANIFEST.tsv")
    before = {p: (p.read_bytes(), os.lstat(p).st_mtime_ns) for p in (taken, stray, link)}
    sidecar_path_for(lib / "pyramid.stl").unlink()  # and one thing that can be fixed

    args = ["verify", str(lib), "--db", str(db_path), "--workers", "0", "--json"]
    result = runner.invoke(cli, [*args, "--fix"])
    # Foreign files are reported for ever (we may not touch them), so problems remain: exit 3.
    assert result.exit_code == 3, result.output
    out = json.loads(result.stdout)
    assert {(p["kind"], p["path"]) for p in out["problems"]} == {
        ("foreign", str(taken)),
        ("foreign", str(stray)),
        ("foreign", str(link)),
    }
    assert out["fixed"]["rendered"] == 1
    assert {p: (p.read_bytes(), os.lstat(p).st_mtime_ns) for p in before} == before
    assert link.is_symlink()


def test_fix_without_a_database_creates_one_and_renders(runner: CliRunner, lib: Path, db_path: Path) -> None:
    args = ["verify", str(lib), "--db", str(db_path), "--workers", "0"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 3
    assert not db_path.exists()  # a plain verify never creates the database
    assert result.stdout.count("missing") >= len(PICKS)
    assert runner.invoke(cli, [*args, "--fix"]).exit_code == 0
    assert runner.invoke(cli, args).exit_code == 0


@pytest.mark.integration
def test_fix_with_a_real_worker_pool(runner: CliRunner, lib: Path, db_path: Path, corpus: Path) -> None:
    _plant_everything(lib, db_path, corpus)
    args = ["verify", str(lib), "--db", str(db_path), "--workers", "2"]
    fixed = runner.invoke(cli, [*args, "--fix", "--json"])
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(fixed.stdout)["fixed"]["rendered"] == 3
    assert runner.invoke(cli, args).exit_code == 0


def test_text_report_lists_each_problem(runner: CliRunner, lib: Path, db_path: Path) -> None:
    with StateDB(db_path) as db:
        _scan(lib, db)
    sidecar_path_for(lib / "block.stl").unlink()
    result = runner.invoke(cli, ["verify", str(lib), "--db", str(db_path)])
    assert result.exit_code == 3
    lines = result.stdout.splitlines()
    assert lines[0].split()[0] == "missing" and str(lib / "block.stl") in lines[0]
    assert lines[-1].startswith(f"checked {len(PICKS)} models")


def test_rows_and_sidecars_of_files_never_read_as_models(tmp_path: Path, corpus: Path) -> None:
    """Rows an older version made for a FIFO or a link out of the roots are vanished, their sidecars
    orphaned; --fix marks the rows missing and removes the sidecars; nothing is opened."""
    from sidecar_thumbs.files.sidecar import write_sidecar
    from sidecar_thumbs.render.thumbnail import make_thumbnail
    from sidecar_thumbs.reports.verify import plan_fixes
    from sidecar_thumbs.types import FileState

    lib = tmp_path / "lib"
    lib.mkdir()
    outside = tmp_path / "outside.stl"
    shutil.copyfile(corpus / "stl-binary/admesh__binary.stl", outside)
    os.mkfifo(lib / "x.stl")
    (lib / "leak.stl").symlink_to(outside)
    write_sidecar(lib / "leak.stl", make_thumbnail(outside).png, durable=False)
    # One real model with its sidecar: a root that lists no model at all would be offline (a volume away).
    shutil.copyfile(outside, lib / "real.stl")
    write_sidecar(lib / "real.stl", make_thumbnail(lib / "real.stl").png, durable=False)
    with StateDB(tmp_path / "s.sqlite3") as db:
        db.upsert_files([FileState(str(lib / n), 1, 1, None, True) for n in ("x.stl", "leak.stl")])
        report = verify([str(lib)], db=db)
        kinds = sorted((p.kind.value, os.path.basename(p.path)) for p in report.problems)
        assert kinds == [("orphaned", ".leak.stl.thumbnail.png"), ("vanished", "leak.stl"), ("vanished", "x.stl")]
        assert any("not a regular file (a FIFO)" in p.detail for p in report.problems)
        plan_fixes(report, db)
        assert verify([str(lib)], db=db).problems == []
        assert db.get(str(lib / "x.stl")).status is ModelStatus.MISSING  # type: ignore[union-attr]
    assert not sidecar_path_for(lib / "leak.stl").exists() and outside.exists()


def test_appledouble_twin_of_a_sidecar_is_not_a_foreign_sidecar(lib: Path, db_path: Path) -> None:
    model = next(p for p in lib.rglob("*") if p.suffix.lower() in (".stl", ".3mf"))
    twin = model.with_name("._" + sidecar_path_for(model).name)  # ._.x.stl.thumbnail.png, as SMB clients write
    with StateDB(db_path) as db:
        _scan(lib, db)
        twin.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00" + b"Mac OS X        ")
        report = verify([str(lib)], db=db, expected_settings=SETTINGS)
    assert report.problems == []
