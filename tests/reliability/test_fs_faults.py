"""File-system faults: read-only folder, disk full, content replaced mid-render, hostile names
(issue #6, item 5). Real mounts where the sandbox allows them (we run as root, so chmod proves
nothing); skipped with a reason where it does not."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_util import SMALL, binary_stl, check_library, temp_files

from sidecar_thumbs.files.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.reports.clean import clean
from sidecar_thumbs.reports.verify import verify
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus
from sidecar_thumbs.work.executors.local import InlineExecutor, LocalPool
from sidecar_thumbs.work.scan import scan

pytestmark = pytest.mark.integration  # reliability suite: real processes, faults, many files


def _mount(target: Path, options: str) -> None:
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); needs root in a sandbox that allows mounts")


@contextlib.contextmanager
def tmpfs(target: Path, options: str) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    _mount(target, options)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def _scan(root: Path, db: StateDB, **kw: object):  # type: ignore[no-untyped-def]
    return scan([str(root)], db=db, make_executor=InlineExecutor, options=SMALL, durable=True, **kw)  # type: ignore[arg-type]


def test_read_only_folder_is_recorded_and_not_retried(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "size=4m") as root:
        models = [root / f"m{i}.stl" for i in range(3)]
        for i, m in enumerate(models):
            m.write_bytes(binary_stl(50, seed=i))
        subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
        with StateDB(tmp_path / "db.sqlite3") as db:
            s = _scan(root, db)
            assert s.failed == 3
            for m in models:
                row = db.get(str(m))
                assert row is not None and row.status is ModelStatus.FAILED
                assert row.error and "read-only" in row.error.lower(), row.error
                # Not a transient failure: it is not claimed again until something changes.
                assert not row.error_transient and row.next_attempt_at is None, row
            assert db.claim(10) == []
        assert not temp_files(root)


def test_disk_full_leaves_no_partial_sidecar_and_retries_later(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", "size=256k") as root:
        models = [root / f"m{i}.stl" for i in range(4)]
        for i, m in enumerate(models):
            m.write_bytes(binary_stl(400, seed=i))  # 20 KB each
        filler = root / "filler.bin"
        with contextlib.suppress(OSError), open(filler, "wb") as f:  # fill the disk to the last block
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        with StateDB(tmp_path / "db.sqlite3") as db:
            s = _scan(root, db)
            assert s.failed == 4
            for m in models:
                row = db.get(str(m))
                assert row is not None and row.error and "No space left" in row.error, row.error
                assert row.error_transient, "a full disk may pass: retried after a back-off"
            assert not temp_files(root), "a failed write left its temp file"
            assert not [p for p in root.iterdir() if p.name.endswith(".png")]
            filler.unlink()
            s = _scan(root, db, retry_failed=True)
            assert s.rendered == 4
        check_library(root, tmp_path / "db.sqlite3", models)


def replace_after_render(job):  # type: ignore[no-untyped-def]
    """Worker seam: renders, then the model is replaced before the coordinator writes the sidecar."""
    from sidecar_thumbs.work.jobs import render_job

    result = render_job(job)
    if os.path.basename(job.path).startswith("replaced") and not os.path.exists(job.path + ".done"):
        with open(job.path + ".done", "w"):
            pass
        data = binary_stl(77, seed=99)
        with open(job.path + ".new", "wb") as f:
            f.write(data)
        os.replace(job.path + ".new", job.path)
    return result


def test_model_replaced_between_render_and_write_gets_the_new_content(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    models = [root / "replaced.stl", root / "plain.stl"]
    for i, m in enumerate(models):
        m.write_bytes(binary_stl(60, seed=i))
    with StateDB(tmp_path / "db.sqlite3") as db:
        for _ in range(3):  # the first run re-queues the replaced model; the next renders it
            scan(
                [str(root)],
                db=db,
                make_executor=lambda: LocalPool(1, timeout=60, options=SMALL, job=replace_after_render),
                options=SMALL,
                durable=False,
            )
    (root / "replaced.stl.done").unlink()
    check_library(root, tmp_path / "db.sqlite3", models)


def _hostile_names() -> list[bytes]:
    return [
        b"n" * 251 + b".stl",  # 255 bytes: the longest name a model may have
        b"line\nbreak.stl",
        b'quote\'s "double".stl',
        "emoji 🦊 ☠.stl".encode(),
        b"invalid \xff\xfe utf8.stl",
        b"tab\tand\rcr.stl",
        b"-leading dash.stl",
        b" leading space.stl",
    ]


def test_hostile_names_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    models = []
    for i, raw in enumerate(_hostile_names()):
        path = os.path.join(os.fsencode(root), raw)
        with open(path, "wb") as f:
            f.write(binary_stl(30, seed=i))
        models.append(Path(os.fsdecode(path)))
    db_path = tmp_path / "db.sqlite3"
    with StateDB(db_path) as db:
        s = _scan(root, db)
        assert s.found == len(models)
        for m in models:
            row = db.get(str(m))  # the database round-trips every name
            assert row is not None, m
        report = verify([str(root)], db=db)
    check_library(root, db_path, [m for m in models if len(os.fsencode(m.name)) < 240])
    long_model = models[0]
    # A 255-byte model name leaves no room for ".<name>.thumbnail.png" (NAME_MAX): a permanent,
    # explained failure, not a transient one retried for ever.
    with StateDB(db_path, readonly=True) as db:
        row = db.get(str(long_model))
    assert row is not None and row.status is ModelStatus.FAILED and row.error and "too long" in row.error
    assert not row.error_transient, row
    assert [p.kind.value for p in report.problems] == [], report.problems
    assert clean([str(root)], now=1e12).removed == []
    for m in models[1:]:
        info = read_sidecar(sidecar_path_for(m))
        assert info is not None and info.ours
