"""Attached to an asset manager's SQLite database: read its models, set its flag — with a real second
process writing to that database while the daemon runs."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sidecar_thumbs.dam.mapping import DamMapping
from sidecar_thumbs.errors import ConfigError, DatabaseError
from sidecar_thumbs.files.sidecar import sidecar_path_for
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.reports.verify import ProblemKind, plan_fixes, verify
from sidecar_thumbs.settings.loading import load_settings
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.work.claims import run_pending
from sidecar_thumbs.work.executors.local import InlineExecutor
from sidecar_thumbs.work.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "models"
SCHEMA = """
PRAGMA user_version = 42;
CREATE TABLE assets (asset_id INTEGER PRIMARY KEY, rel_path TEXT NOT NULL, title TEXT,
                     has_thumbnail INTEGER NOT NULL DEFAULT 0, thumb_file TEXT, thumb_at REAL);
"""
MAPPING = DamMapping(table="assets", id_column="asset_id", path_column="rel_path", flag_column="has_thumbnail",
                     sidecar_column="thumb_file", rendered_at_column="thumb_at")  # fmt: skip


def make_dam(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.close()


def add_assets(dam: Path, *rel: str) -> None:
    conn = sqlite3.connect(dam, timeout=30)
    with conn:
        conn.executemany("INSERT INTO assets (rel_path, title) VALUES (?, ?)", [(r, r) for r in rel])
    conn.close()


def flags(dam: Path) -> dict[str, tuple[int, str | None, float | None]]:
    conn = sqlite3.connect(dam, timeout=30)
    try:
        return {
            r: (f, s, t)
            for r, f, s, t in conn.execute("SELECT rel_path, has_thumbnail, thumb_file, thumb_at FROM assets")
        }
    finally:
        conn.close()


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, DamMapping]:
    lib = tmp_path / "lib"
    (lib / "parts").mkdir(parents=True)
    shutil.copy(EXAMPLES / "gear.stl", lib / "gear.stl")
    shutil.copy(EXAMPLES / "parts" / "bracket.stl", lib / "parts" / "bracket.stl")
    dam = tmp_path / "dam.sqlite3"
    make_dam(dam)
    mapping = DamMapping(**{**MAPPING.__dict__, "path_base": str(lib)})
    return lib, dam, mapping


def wait_for(cond, timeout: float = 60.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


# -- configuration guards --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ['assets"; DROP TABLE assets; --', "as sets", "1assets", "a" * 65, "näme"])
def test_bad_identifier_is_refused_at_start(bad: str) -> None:
    with pytest.raises(ConfigError, match="not a plain SQL name"):
        load_settings(environ={"SIDECAR_THUMBS_DAM_TABLE": bad}, cwd="/")
    with pytest.raises(ConfigError):
        DamMapping(table="assets", flag_column=bad)


def test_mapping_that_does_not_fit_the_table_is_refused(setup: tuple[Path, Path, DamMapping]) -> None:
    _, dam, mapping = setup
    with pytest.raises(ConfigError, match="no column 'thumbnail'"):
        StateDB(dam, dam=DamMapping(**{**mapping.__dict__, "flag_column": "thumbnail"}))
    with pytest.raises(ConfigError, match="no table 'models'"):
        StateDB(dam, dam=DamMapping(**{**mapping.__dict__, "table": "models"}))


def test_missing_dam_database_is_an_error_never_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite3"
    with pytest.raises(DatabaseError, match="does not exist"):
        StateDB(missing, dam=MAPPING)
    assert not missing.exists()


def test_attaching_never_touches_the_asset_managers_schema_version(setup: tuple[Path, Path, DamMapping]) -> None:
    _, dam, mapping = setup
    StateDB(dam, dam=mapping).close()
    conn = sqlite3.connect(dam)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 42
    cols = [r[1] for r in conn.execute("PRAGMA table_info(assets)")]
    assert cols == ["asset_id", "rel_path", "title", "has_thumbnail", "thumb_file", "thumb_at"]
    indexes = [
        r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'assets' AND type = 'index'")
    ]
    assert indexes == []
    conn.close()


# -- in-process: flags follow renders, failures, deletes -------------------------------------------


def _render_pending(db: StateDB) -> None:
    pipeline = Pipeline(db, InlineExecutor(), ThumbnailOptions(), durable=False)
    try:
        run_pending(pipeline, 200, None)
    finally:
        pipeline.close()


def test_unflagged_rows_are_rendered_and_flagged_failed_ones_never(setup: tuple[Path, Path, DamMapping]) -> None:
    from sidecar_thumbs.work.dam_sync import sync_dam

    lib, dam, mapping = setup
    (lib / "broken.stl").write_bytes(b"solid x\nfacet normal 0 0 0\nendsolid x\n")
    add_assets(dam, "gear.stl", "parts/bracket.stl", "broken.stl", "not-there.stl")
    with StateDB(dam, dam=mapping) as db:
        result = sync_dam(db, full=True, roots=[str(lib)])
        assert (result.queued, result.absent) == (3, 1)
        _render_pending(db)
    f = flags(dam)
    assert f["gear.stl"][0] == 1 and f["gear.stl"][1] == str(sidecar_path_for(lib / "gear.stl"))
    assert f["gear.stl"][2] is not None and f["parts/bracket.stl"][0] == 1
    assert f["broken.stl"] == (0, None, None)  # never flagged for a failed render
    assert f["not-there.stl"][0] == 0
    # a deleted model clears the flag
    (lib / "gear.stl").unlink()
    with StateDB(dam, dam=mapping) as db:
        db.mark_missing([str(lib / "gear.stl")])
    assert flags(dam)["gear.stl"][0] == 0


def test_rows_that_are_not_models_by_the_extensions_rule_are_never_queued(
    setup: tuple[Path, Path, DamMapping],
) -> None:
    from sidecar_thumbs.files.discover import set_model_extensions
    from sidecar_thumbs.files.formats import ALL_SUFFIXES
    from sidecar_thumbs.work.dam_sync import sync_dam

    lib, dam, mapping = setup
    for name in ("cube.mtl", "preview.png", "kit.ZIP"):
        (lib / name).write_bytes(b"x")
    add_assets(dam, "gear.stl", "cube.mtl", "preview.png", "kit.ZIP")
    try:
        with StateDB(dam, dam=mapping) as db:
            result = sync_dam(db, full=True, roots=[str(lib)])
            assert (result.queued, result.refused) == (2, 2)  # gear.stl and kit.ZIP
            set_model_extensions(".stl .3mf")  # the setting narrows the asset manager's rows too
            db.delete_rows([str(lib / "kit.ZIP")])
            assert sync_dam(db, full=True, roots=[str(lib)]).refused == 3
            assert db.get(str(lib / "kit.ZIP")) is None
    finally:
        set_model_extensions(ALL_SUFFIXES)


def test_verify_reports_flags_that_disagree_and_fix_repairs_them(setup: tuple[Path, Path, DamMapping]) -> None:
    from sidecar_thumbs.work.dam_sync import sync_dam

    lib, dam, mapping = setup
    add_assets(dam, "gear.stl", "parts/bracket.stl")
    with StateDB(dam, dam=mapping) as db:
        sync_dam(db, full=True, roots=[str(lib)])
        _render_pending(db)
    conn = sqlite3.connect(dam)
    with conn:  # the asset manager (or a person) got it wrong
        conn.execute("UPDATE assets SET has_thumbnail = 0 WHERE rel_path = 'gear.stl'")
    conn.close()
    sidecar_path_for(lib / "parts" / "bracket.stl").unlink()  # flagged, but the sidecar is gone
    with StateDB(dam, dam=mapping) as db:
        report = verify([str(lib)], db=db)
        dam_problems = {(p.path, p.sidecar_fresh) for p in report.problems if p.kind is ProblemKind.DAM_FLAG}
        assert dam_problems == {(str(lib / "gear.stl"), True), (str(lib / "parts" / "bracket.stl"), False)}
        plan_fixes(report, db)
        _render_pending(db)
        assert not [p for p in verify([str(lib)], db=db).problems]
    assert flags(dam)["gear.stl"][0] == 1 and flags(dam)["parts/bracket.stl"][0] == 1


# -- the daemon in a real process, the asset manager writing from another --------------------------

WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
for i, rel in enumerate(sys.argv[3:]):
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO assets (rel_path, title) VALUES (?, ?)", (rel, rel))
    if i == 1:
        # Hold the write lock far longer than the daemon's busy_timeout while renders finish.
        time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
    time.sleep(0.2)
"""


@pytest.mark.integration
def test_daemon_renders_and_flags_rows_a_second_process_adds_even_through_a_long_lock(
    setup: tuple[Path, Path, DamMapping], tmp_path: Path
) -> None:
    lib, dam, _ = setup
    names = [f"part{i}.stl" for i in range(6)]
    for n in names:
        shutil.copy(EXAMPLES / "parts" / "bracket.stl", lib / "parts" / n)
    env_file = tmp_path / "dam.env"
    env_file.write_text(
        f"DAM_DATABASE_PATH={dam}\nSIDECAR_THUMBS_ROOTS={lib}\nSIDECAR_THUMBS_DAM_TABLE=assets\n"
        "SIDECAR_THUMBS_DAM_ID_COLUMN=asset_id\nSIDECAR_THUMBS_DAM_PATH_COLUMN=rel_path\n"
        f"SIDECAR_THUMBS_DAM_PATH_BASE={lib}\nSIDECAR_THUMBS_DAM_SIDECAR_COLUMN=thumb_file\n"
        "SIDECAR_THUMBS_BUSY_TIMEOUT_MS=200\nSIDECAR_THUMBS_SWEEP_INTERVAL=0.5\nSIDECAR_THUMBS_WORKERS=1\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = open(tmp_path / "daemon.log", "w")  # noqa: SIM115
    daemon = subprocess.Popen([sys.executable, "-m", "sidecar_thumbs", "--env-file", str(env_file), "-vv", "watch"],
                              stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)  # fmt: skip
    try:
        wait_for(lambda: "watching" in (tmp_path / "daemon.log").read_text(), what="daemon start")
        assert "attached to table assets" in (tmp_path / "daemon.log").read_text()
        # The asset manager registers the models (paths relative to the library), holding its write
        # lock for 6 s at one point: the daemon waits (busy) and loses nothing.
        writer = subprocess.run([sys.executable, "-c", WRITER, str(dam), "6", *(f"parts/{n}" for n in names)],
                                timeout=120, env=env)  # fmt: skip
        assert writer.returncode == 0
        wait_for(lambda: all(flags(dam)[f"parts/{n}"][0] == 1 for n in names), timeout=90,
                 what=lambda: f"all flagged: {flags(dam)}")  # fmt: skip
        for n in names:
            assert sidecar_path_for(lib / "parts" / n).exists()
            assert flags(dam)[f"parts/{n}"][1] == str(sidecar_path_for(lib / "parts" / n))
    finally:
        daemon.terminate()
        daemon.wait(60)
        log.close()
    assert daemon.returncode == 0, (tmp_path / "daemon.log").read_text()
    status = subprocess.run([sys.executable, "-m", "sidecar_thumbs", "--env-file", str(env_file), "status", "--json"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert '"table": "assets"' in status.stdout and '"without_thumbnail": 0' in status.stdout


def test_rows_outside_the_roots_or_not_regular_files_are_never_opened(
    setup: tuple[Path, Path, DamMapping], tmp_path: Path
) -> None:
    """An asset manager's row naming /dev/zero, a FIFO, a link out of the roots or a non-model hung
    the coordinator or read outside the library: now each is refused, unopened."""
    from sidecar_thumbs.work.dam_sync import sync_dam

    lib, dam, mapping = setup
    os.mkfifo(lib / "fifo.stl")
    (lib / "zero.stl").symlink_to("/dev/zero")
    outside = tmp_path / "elsewhere.stl"
    shutil.copy(lib / "gear.stl", outside)
    (lib / "out.stl").symlink_to(outside)
    (lib / "notes.txt").write_text("not a model")
    add_assets(dam, "gear.stl", "fifo.stl", "zero.stl", "out.stl", "notes.txt", "/dev/zero", str(outside), "../x.stl")
    t0 = time.monotonic()
    with StateDB(dam, dam=mapping) as db:
        result = sync_dam(db, full=True, roots=[str(lib)])
        assert (result.queued, result.refused) == (1, 7)
        assert sorted(db.rows_under()) == [str(lib / "gear.stl")]
    assert time.monotonic() - t0 < 10
