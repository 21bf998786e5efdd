"""The smaller defects of issue 11, each through real processes: long and non-UTF-8 names, a stopped
worker, a rescan mid-copy, temp files (a user's lookalike, a killed writer's), two scans at once,
``.stl`` names and blank slicer pictures."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from reliability_faults import stopping_job
from reliability_util import ENV, SMALL, Daemon, binary_stl, wait_for

from sidecar_thumbs.files.atomic import temp_name_for
from sidecar_thumbs.files.fingerprint import hash_bytes
from sidecar_thumbs.files.sidecar import encode_png, read_sidecar, sidecar_path_for
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus
from sidecar_thumbs.work.executors.local import LocalPool
from sidecar_thumbs.work.scan import scan

pytestmark = pytest.mark.integration


def run(*args: str, timeout: float = 180.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar_thumbs", *args], capture_output=True, timeout=timeout, env=env or ENV
    )


def _fresh(model: Path) -> bool:
    info = read_sidecar(sidecar_path_for(model))
    return info is not None and info.ours and info.readable and info.content_hash == hash_bytes(model.read_bytes())


def test_every_name_length_from_220_to_255_bytes(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    data = binary_stl(12, seed=5)
    models = {}
    for length in range(220, 256):
        name = f"{length}-".ljust(length - 4, "n") + ".stl"
        assert len(os.fsencode(name)) == length
        models[length] = root / name
        models[length].write_bytes(data)
    db = tmp_path / "state.sqlite3"
    res = run("scan", str(root), "--db", str(db), "--workers", "1", "--size", "64", "--json")
    summary = json.loads(res.stdout)
    failures = {Path(f["path"]).name: f["reason"] for f in summary["failures"]}
    for length, model in models.items():
        if length <= 255 - len(".") - len(".thumbnail.png"):
            assert _fresh(model), f"{length}-byte name: {failures.get(model.name)}"
        else:  # the sidecar's own name cannot fit 255 bytes: a one-line, permanent refusal
            assert "file name too long for a sidecar" in failures[model.name]
            assert "\n" not in failures[model.name]
    assert summary["rendered"] == 21 and summary["failed"] == 15
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]
    again = json.loads(run("scan", str(root), "--db", str(db), "--workers", "1", "--json").stdout)
    assert again["rendered"] == again["failed"] == 0  # refused for good, not retried every scan


def test_names_that_are_not_utf8_through_verify_status_clean_and_gallery(tmp_path: Path, corpus: Path) -> None:
    root = os.fsencode(tmp_path / "lib")
    os.mkdir(root)
    shutil.copyfile(corpus / "stl-binary/admesh__binary.stl", os.path.join(root, b"caf\xe9.stl"))
    shutil.copyfile(corpus / "stl-binary/admesh__binary.stl", os.path.join(root, b"gone\xff.stl"))
    with open(os.path.join(root, b"bad\xfe.stl"), "wb") as f:
        f.write(b"solid x\nendsolid x\n")
    db = str(tmp_path / "state.sqlite3")
    lib = os.fsdecode(root)
    strict = {**ENV, "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}  # macOS's default: no escapes
    assert run("scan", lib, "--db", db, "--workers", "0", env=strict).returncode == 3  # bad\xfe failed
    os.unlink(os.path.join(root, b"gone\xff.stl"))  # its sidecar is now an orphan
    os.unlink(os.path.join(root, b".caf\xe9.stl.thumbnail.png"))  # a missing sidecar
    for args, code in (
        (("verify", lib, "--db", db), 3),
        (("verify", lib, "--db", db, "--json"), 3),
        (("status", "--db", db), 0),
        (("status", "--db", db, "--json"), 0),
        (("gallery", lib, "--db", db, "-o", str(tmp_path / "g.html")), 0),
        (("clean", lib, "--dry-run"), 0),
        (("clean", lib, "--json"), 0),
    ):
        res = run(*args, env=strict)
        assert b"Traceback" not in res.stderr, res.stderr.decode(errors="replace")
        assert res.returncode == code, (args, res.stderr.decode(errors="replace"))
        if "--json" in args:
            json.loads(res.stdout)
    verify = run("verify", lib, "--db", db, env=strict).stdout
    assert b"caf\xe9.stl" in verify and b"gone\xff.stl" in verify  # the bytes the names really have
    assert not os.path.lexists(os.path.join(root, b".gone\xff.stl.thumbnail.png"))  # clean removed it


def test_a_stopped_worker_does_not_make_a_good_model_fail_for_good(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    model = root / "sigstop-gear.stl"
    model.write_bytes(binary_stl(200, seed=2))
    db_path = tmp_path / "state.sqlite3"

    def pool() -> LocalPool:
        return LocalPool(1, timeout=2.0, options=SMALL, job=stopping_job)

    with StateDB(db_path) as db:
        first = scan([str(root)], db=db, make_executor=pool, options=SMALL, durable=False)
        assert first.failed == 1 and "timed out" in first.failures[0][1]
        row = db.get(str(model))
        assert row is not None and row.status is ModelStatus.FAILED
        assert row.error_transient and row.attempts == 1 and row.next_attempt_at is not None
        assert row.hash == hash_bytes(model.read_bytes())  # the failure belongs to this content
        # An unchanged rescan before the back-off does not hand it out again.
        assert scan([str(root)], db=db, make_executor=pool, options=SMALL, durable=False).failed == 0
    con = sqlite3.connect(db_path)
    with con:  # the back-off (30 s) has passed
        con.execute("UPDATE st_models SET next_attempt_at = 0")
    con.close()
    with StateDB(db_path) as db:
        second = scan([str(root)], db=db, make_executor=pool, options=SMALL, durable=False)
        assert second.rendered == 1, second.failures
        assert db.get(str(model)).status is ModelStatus.DONE  # type: ignore[union-attr]
    assert _fresh(model)


def test_a_rescan_leaves_a_file_being_copied_until_it_settles(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    db = tmp_path / "state.sqlite3"
    d = Daemon(root, db, "--settle", "1.5", "--rescan-interval", "0.5", "--polling", workers=1)
    try:
        wait_for(lambda: "start-up scan" in d.log(), 90, "the start-up scan")
        data = binary_stl(3000, seed=9)
        slow = root / "slow.stl"
        with open(slow, "wb") as f:  # an SMB copy arriving in pieces, with pauses longer than a rescan
            for i in range(0, len(data), len(data) // 6 + 1):
                f.write(data[i : i + len(data) // 6 + 1])
                f.flush()
                time.sleep(0.9)
        wait_for(lambda: sidecar_path_for(slow).exists(), 60, "the sidecar once the copy ended")
        assert _fresh(slow)
        log = d.log()
        assert "failed:" not in log, log[-3000:]
        with StateDB(db, readonly=True) as state:
            row = state.get(str(slow))
            assert row is not None and row.status is ModelStatus.DONE and row.attempts == 0
    finally:
        d.proc.terminate()
        d.wait(60)
        d.reap_group()


def test_temp_files_lookalikes_stay_a_killed_writers_go_at_the_next_run(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    (root / "a.stl").write_bytes(binary_stl(10))
    png = encode_png(np.zeros((8, 8, 4), np.uint8), {"Software": "sidecar-thumbs 0.1", "Thumb::URI": "./x"})
    killed = root / temp_name_for(".a.stl.thumbnail.png")
    killed.write_bytes(png[:100])  # a write killed half-way, a second ago
    legacy = root / ".a.stl.thumbnail.png.0badcafe.tmp"  # an old version's name, our content, old
    legacy.write_bytes(png[:100])
    users = [root / ".notes.thumbnail.png.0badcafe.tmp", root / ".sidecar-thumbs-00000000deadbeef.tmp"]
    for p in users:
        p.write_bytes(b"my notes, not a PNG")
    old = time.time() - 3600
    for p in (legacy, *users):
        os.utime(p, (old, old))
    db = tmp_path / "state.sqlite3"
    res = run("scan", str(root), "--db", str(db), "--workers", "0", "--json")
    assert json.loads(res.stdout)["temp_removed"] == 2  # no age wait: the scan holds the lock
    assert not killed.exists() and not legacy.exists()
    assert all(p.read_bytes() == b"my notes, not a PNG" for p in users)
    clean = run("clean", str(root))
    assert clean.returncode == 0 and all(p.exists() for p in users)
    assert b"left alone" in clean.stderr


def _claimed(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT count(*) FROM st_models WHERE status != 'pending'").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("second_starts", ["together", "after the first claimed"])
def test_two_scans_started_together_render_each_model_once(tmp_path: Path, second_starts: str) -> None:
    """The second scan finds the lock taken and only marks; its marks, planned from rows it read
    before the first scan claimed or rendered them, re-queued all of them (80 models, 157 renders)."""
    root = tmp_path / "lib"
    root.mkdir()
    for i in range(40):
        (root / f"m{i:02d}.stl").write_bytes(binary_stl(3000, seed=i))
    db = tmp_path / "state.sqlite3"
    args = [sys.executable, "-m", "sidecar_thumbs", "scan", str(root), "--db", str(db), "--workers", "1",
            "--size", "64", "--json"]  # fmt: skip
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    if second_starts != "together":
        wait_for(lambda: _claimed(db) > 0, 60, "the first scan's claim")
    second = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    # Both exit 0 with a JSON summary; on a failure, say what each printed (a CI run once saw no JSON).
    said = [
        f"rc {p.returncode}, stderr: {err.decode(errors='replace')[-2000:]}"
        for p, (_, err) in zip((first, second), outs, strict=True)
    ]
    assert all(p.returncode == 0 and out.strip() for p, (out, _) in zip((first, second), outs, strict=True)), said
    summaries = [json.loads(out) for out, _ in outs]
    assert sum(s["rendered"] for s in summaries) == 40, summaries
    assert all(_fresh(p) for p in root.glob("m*.stl"))
    with StateDB(db, readonly=True) as state:
        assert state.counts()[ModelStatus.DONE] == 40


def test_models_named_dot_stl_and_dot_dot_stl(tmp_path: Path, corpus: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    for name in (".stl", "..stl", "x..stl"):
        shutil.copyfile(corpus / "stl-binary/admesh__binary.stl", root / name)
    res = run("scan", str(root), "--db", str(tmp_path / "s.sqlite3"), "--workers", "0", "--json")
    assert json.loads(res.stdout)["rendered"] == 3, res.stdout
    assert all(_fresh(root / n) for n in (".stl", "..stl", "x..stl"))
    render = run("render", str(root / ".stl"), "-o", str(tmp_path / "dot.png"))
    assert render.returncode == 0 and (tmp_path / "dot.png").exists()


def test_a_blank_slicer_picture_never_becomes_the_thumbnail(tmp_path: Path) -> None:
    from tests.mesh_builders import make_3mf, model_xml, unit_cube_mesh

    blank = encode_png(np.full((64, 64, 4), 255, np.uint8), {})
    cube = f'<object id="1" type="model">{unit_cube_mesh()}</object>'
    (tmp_path / "cube.3mf").write_bytes(
        make_3mf(model_xml(cube, '<item objectid="1"/>'), {"Metadata/thumbnail.png": blank})
    )
    (tmp_path / "empty.3mf").write_bytes(make_3mf(model_xml(cube, ""), {"Metadata/thumbnail.png": blank}))
    res = run("render", str(tmp_path / "cube.3mf"), str(tmp_path / "empty.3mf"))
    assert res.returncode == 3
    cube_info = read_sidecar(sidecar_path_for(tmp_path / "cube.3mf"))
    assert cube_info is not None and cube_info.source == "rendered"
    assert not sidecar_path_for(tmp_path / "empty.3mf").exists()
    (line,) = res.stderr.decode().strip().splitlines()
    assert line.startswith(f"{tmp_path / 'empty.3mf'}: no geometry")
