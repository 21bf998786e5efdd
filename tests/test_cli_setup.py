"""Setting sidecar-thumbs up (issue 13): portable env files, the README's asset-manager example run
twice, a wrong asset-manager mapping caught at start, and a ``status`` that only reads. Every test
runs the real command.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from cli_helpers import GOOD, clean_env, command, invoke, run_cli

from sidecar_thumbs.files.sidecar import sidecar_path_for

REPO = Path(__file__).resolve().parents[1]


# -- 5. env files are portable ------------------------------------------------------------------------


def test_relative_paths_in_an_env_file_resolve_against_its_folder(
    cwd: Path, lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAM_DATABASE_PATH")  # the environment would win over the file
    conf = tmp_path / "conf"
    conf.mkdir()
    env_file = conf / "env.local"
    env_file.write_text("SIDECAR_THUMBS_ROOTS=../lib\nDAM_DATABASE_PATH=state/db.sqlite3\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = invoke("--env-file", env_file, "scan", "--workers", "0")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"found {len(GOOD)}: rendered")
    assert (conf / "state" / "db.sqlite3").is_file() and not (elsewhere / "state").exists()


@pytest.fixture
def dam_example(tmp_path: Path) -> Path:
    """A copy of the repository's examples/ (the DAM example writes sidecars beside the models)."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "examples" / "dam", copy / "examples" / "dam")
    shutil.copytree(REPO / "examples" / "models", copy / "examples" / "models")
    for sidecar in (copy / "examples" / "models").rglob(".*.thumbnail.png"):
        sidecar.unlink()
    return copy


def _load_schema(db: Path, schema: Path) -> None:
    # What `sqlite3 DB < examples/dam/schema.sql` does.
    with sqlite3.connect(db) as conn:
        conn.executescript(schema.read_text())
    conn.close()


@pytest.mark.integration
def test_the_readme_asset_manager_example_runs_twice(dam_example: Path, tmp_path: Path) -> None:
    db = tmp_path / "dam-example.sqlite3"
    env = clean_env(tmp_path, {"DAM_DATABASE_PATH": str(db)})
    env_file = dam_example / "examples" / "dam" / "env.local"
    elsewhere = tmp_path / "elsewhere"  # the env file's relative paths do not depend on the folder
    elsewhere.mkdir()
    for _ in range(2):
        _load_schema(db, dam_example / "examples" / "dam" / "schema.sql")
        r = subprocess.run(command("--env-file", env_file, "watch", "--once", "--workers", "0"), cwd=elsewhere,
                           env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert r.returncode == 0, r.stderr
    with sqlite3.connect(db) as conn:
        flags = dict(conn.execute("SELECT rel_path, has_thumbnail FROM assets"))
    conn.close()
    assert flags == {"gear.stl": 1, "plate.3mf": 1, "parts/bracket.stl": 1, "parts/torus (ascii).stl": 1,
                     "parts/not-yet-uploaded.stl": 0}  # fmt: skip


# -- 6. a wrong asset-manager mapping -----------------------------------------------------------------


def _dam_db(tmp_path: Path, lib: Path, rows: list[tuple[str, str]]) -> Path:
    db = tmp_path / "dam.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE assets (id INTEGER PRIMARY KEY, rel_path TEXT, title TEXT, "
                     "has_thumbnail INTEGER NOT NULL DEFAULT 0)")  # fmt: skip
        conn.executemany("INSERT INTO assets (rel_path, title) VALUES (?, ?)", rows)
    conn.close()
    return db


def _dam_env(db: Path, lib: Path, path_column: str) -> dict[str, str]:
    return {"DAM_DATABASE_PATH": str(db), "SIDECAR_THUMBS_DAM_TABLE": "assets",
            "SIDECAR_THUMBS_DAM_PATH_COLUMN": path_column, "SIDECAR_THUMBS_DAM_PATH_BASE": str(lib)}  # fmt: skip


@pytest.mark.parametrize("cmd", ["scan", "watch"])
def test_a_path_column_that_holds_no_paths_is_refused_at_start(cwd: Path, lib: Path, tmp_path: Path, cmd: str) -> None:
    db = _dam_db(tmp_path, lib, [(name, f"Title of {name}") for name in GOOD])
    args = [cmd, lib, "--workers", "0", *(["--once", "--settle", "0.1"] if cmd == "watch" else [])]
    r = invoke(*args, env=_dam_env(db, lib, "title"))
    assert r.exit_code == 1
    assert "SIDECAR_THUMBS_DAM_PATH_COLUMN=title" in r.stderr and "'Title of " in r.stderr
    assert not any(sidecar_path_for(lib / n).exists() for n in GOOD)  # nothing rendered, nothing flagged
    ok = invoke(*args, env=_dam_env(db, lib, "rel_path"))
    assert ok.exit_code == 0, ok.output


def test_an_empty_asset_manager_table_is_not_a_wrong_mapping(cwd: Path, lib: Path, tmp_path: Path) -> None:
    db = _dam_db(tmp_path, lib, [])
    r = invoke("scan", lib, "--workers", "0", env=_dam_env(db, lib, "title"))
    assert r.exit_code == 0, r.output


def test_an_offline_library_is_not_a_wrong_mapping(cwd: Path, lib: Path, tmp_path: Path) -> None:
    db = _dam_db(tmp_path, lib, [(name, name) for name in GOOD])
    for offline in (tmp_path / "share-not-mounted", tmp_path / "empty-mount-point"):
        if offline.name.startswith("empty"):
            offline.mkdir()  # on Linux an unmounted share leaves its mount point: an empty folder
        r = invoke("scan", offline, "--workers", "0", env=_dam_env(db, offline, "title"))
        assert "DAM_PATH_COLUMN" not in r.stderr, r.stderr


# -- 7. status only reads -----------------------------------------------------------------------------


def _mount_tmpfs(target: Path) -> None:
    target.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(target)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root in a sandbox that allows mounts)")


@pytest.mark.integration
def test_status_reads_a_database_in_a_folder_it_cannot_write(tmp_path: Path, lib: Path) -> None:
    made = tmp_path / "state.sqlite3"
    assert run_cli("scan", lib, "--db", made, "--workers", "0", cwd=tmp_path).returncode == 0
    ro = tmp_path / "ro"
    _mount_tmpfs(ro)
    try:
        shutil.copyfile(made, ro / "state.sqlite3")  # a WAL database, closed cleanly: no -wal, no -shm
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        r = run_cli("status", "--db", ro / "state.sqlite3", "--json", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["counts"]["done"] == len(GOOD)
        assert run_cli("--db", ro / "state.sqlite3", "status", cwd=tmp_path).returncode == 0
        assert sorted(os.listdir(ro)) == ["state.sqlite3"]
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_status_leaves_no_files_behind(tmp_path: Path, lib: Path, cwd: Path) -> None:
    db = tmp_path / "s.sqlite3"
    invoke("scan", lib, "--db", db, "--workers", "0")
    before = sorted(os.listdir(tmp_path))
    stat = db.stat()
    assert invoke("status", "--db", db).exit_code == 0
    assert sorted(os.listdir(tmp_path)) == before
    assert (db.stat().st_mtime_ns, db.stat().st_size) == (stat.st_mtime_ns, stat.st_size)


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_status_permission_error_names_the_owner(tmp_path: Path, lib: Path) -> None:
    db = tmp_path / "state.sqlite3"
    assert run_cli("scan", lib, "--db", db, "--workers", "0", cwd=tmp_path).returncode == 0
    os.chown(db, 65534, 65534)
    db.chmod(0o600)
    # Root without the capabilities that let it read anyone's files: an ordinary user, for the file.
    drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    r = subprocess.run([*drop, *command("status", "--db", db)], cwd=tmp_path, env=clean_env(tmp_path),
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1
    # The error itself is one line (a warning about the owner may come before it).
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("sidecar-thumbs: ")]
    owner = pwd.getpwuid(65534).pw_name
    assert f"cannot read {db}: it belongs to {owner}:" in line and f"sudo -u {owner} sidecar-thumbs status" in line
