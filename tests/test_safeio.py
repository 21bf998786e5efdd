"""safeio and the paths that use it: nothing but a regular file is ever opened, reads are bounded.

Real FIFOs, sockets and links to ``/dev/zero`` in tmp_path; every test would hang (and hit the
per-test timeout) if one of them were opened for reading.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sidecar_thumbs.errors import BadModelError, EmptyBuildError, NoGeometryError
from sidecar_thumbs.files.fingerprint import hash_bytes, hash_file, oversize_key
from sidecar_thumbs.files.safeio import (
    LinkOutsideRootsError,
    NotRegularFileError,
    open_regular,
    read_regular,
    stat_regular,
)
from sidecar_thumbs.files.sidecar import encode_png, read_sidecar, write_sidecar
from sidecar_thumbs.mesh.load import detect_format, load_mesh
from sidecar_thumbs.render.thumbnail import (
    ThumbnailOptions,
    make_thumbnail,
    make_thumbnail_from_bytes,
    read_model_bytes,
)
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import FileState, RenderFailed
from sidecar_thumbs.work.jobs import RenderJob, render_job
from sidecar_thumbs.work.plan import plan_changes
from tests.mesh_builders import make_3mf, model_xml, unit_cube_mesh

STL = "stl-binary/admesh__binary.stl"


@pytest.fixture
def odd(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """A FIFO, a socket, a link to /dev/zero and a link out of the root, all named like models."""
    root = tmp_path / "lib"
    root.mkdir()
    outside = tmp_path / "outside.stl"
    outside.write_bytes(b"solid outside\nendsolid outside\n")
    paths = {"fifo": root / "x.stl", "zero": root / "y.stl", "socket": root / "z.stl", "out": root / "out.stl"}
    os.mkfifo(paths["fifo"])
    paths["zero"].symlink_to("/dev/zero")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    here = os.getcwd()
    os.chdir(root)  # bound by its bare name: macOS allows only 104 bytes in a socket address
    try:
        sock.bind(paths["socket"].name)
    finally:
        os.chdir(here)
    paths["out"].symlink_to(outside)
    paths["root"] = root
    yield paths
    sock.close()


def test_fifo_socket_and_dev_zero_are_refused_without_opening(odd: dict[str, Path]) -> None:
    t0 = time.monotonic()
    for kind, word in (("fifo", "FIFO"), ("zero", "character device"), ("socket", "socket")):
        with pytest.raises(NotRegularFileError, match=word):
            open_regular(odd[kind])
        with pytest.raises(NotRegularFileError):
            hash_file(odd[kind])
        with pytest.raises(BadModelError, match="not a regular file"):
            read_model_bytes(odd[kind])
        with pytest.raises(BadModelError, match="not a regular file"):
            load_mesh(odd[kind])
        assert not render_job(RenderJob(str(odd[kind]), ThumbnailOptions())).ok
    assert time.monotonic() - t0 < 5


def test_a_link_out_of_the_roots_is_not_followed_when_roots_are_given(odd: dict[str, Path]) -> None:
    roots = [str(odd["root"])]
    with pytest.raises(LinkOutsideRootsError, match="outside the library roots"):
        stat_regular(odd["out"], roots=roots)
    with pytest.raises(BadModelError, match="outside"):
        read_model_bytes(odd["out"], roots=roots)
    # Without roots (a file the user named on the command line) the link is followed.
    assert read_regular(odd["out"]).startswith(b"solid outside")
    # A link inside the root is fine; a sidecar is never read through a link.
    inside = odd["root"] / "in.stl"
    inside.symlink_to(odd["out"].resolve())
    with pytest.raises(LinkOutsideRootsError):
        stat_regular(inside, roots=roots)  # it resolves outside too
    real = odd["root"] / "real.stl"
    real.write_bytes(b"abc")
    (odd["root"] / "alias.stl").symlink_to(real)
    assert read_regular(odd["root"] / "alias.stl", roots=roots) == b"abc"
    with pytest.raises(NotRegularFileError, match="symlink"):
        read_regular(odd["root"] / "alias.stl", follow=False)


def test_sidecar_readers_never_open_a_fifo(odd: dict[str, Path]) -> None:
    fifo_sidecar = odd["root"] / ".good.stl.thumbnail.png"
    os.mkfifo(fifo_sidecar)
    info = read_sidecar(fifo_sidecar)
    assert info is not None and not info.ours
    meta = read_sidecar(fifo_sidecar, decode=False)  # the gallery's header-only read
    assert meta is not None and not meta.ours


def test_reads_stop_at_the_size_seen_when_opened(tmp_path: Path) -> None:
    f = tmp_path / "grow.bin"
    f.write_bytes(b"x" * 1000)
    fd, st = open_regular(f)
    try:
        with open(f, "ab") as w:
            w.write(b"y" * 5000)  # grows after the open
        from sidecar_thumbs.files.safeio import read_fd

        assert read_fd(fd, st.st_size) == b"x" * 1000
    finally:
        os.close(fd)


def test_a_file_over_the_cap_is_not_hashed_its_stat_stands_for_it(tmp_path: Path) -> None:
    big = tmp_path / "big.stl"
    with open(big, "wb") as f:
        f.truncate(50 * 2**30)  # 50 GiB, sparse
    st = big.stat()
    t0 = time.monotonic()
    assert hash_file(big, max_bytes=2**30) == oversize_key(st.st_size, st.st_mtime_ns)
    assert time.monotonic() - t0 < 1
    # The worker refuses it before reading and says which "content" failed, so the coordinator
    # never hashes it either.
    options = ThumbnailOptions()
    result = render_job(RenderJob(str(big), options))
    assert not result.ok and "cap" in (result.error or "")
    assert result.content_hash == oversize_key(st.st_size, st.st_mtime_ns)


def test_model_names_dot_stl_and_dot_dot_stl_are_stls(tmp_path: Path, corpus: Path) -> None:
    assert detect_format(".stl") == detect_format("..stl") == detect_format("a/.STL") == "stl"
    with pytest.raises(BadModelError, match="extension"):
        detect_format("stl")
    for name in (".stl", "..stl"):
        model = tmp_path / name
        shutil.copyfile(corpus / STL, model)
        thumb = make_thumbnail(model)
        assert thumb.triangles and thumb.triangles > 0


def _picture(rgba: tuple[int, int, int, int], pattern: bool = False) -> bytes:
    img = np.zeros((64, 64, 4), np.uint8)
    img[:] = rgba
    if pattern:
        img[16:48, 16:48] = (200, 30, 30, 255)
    return encode_png(img, {})


def _3mf(build: str, picture: bytes) -> bytes:
    resources = f'<object id="1" type="model">{unit_cube_mesh()}</object>'
    return make_3mf(model_xml(resources, build), {"Metadata/thumbnail.png": picture})


@pytest.mark.parametrize("blank", [(255, 255, 255, 255), (0, 0, 0, 0), (30, 30, 30, 255)])
def test_a_blank_slicer_picture_is_never_the_thumbnail(blank: tuple[int, int, int, int]) -> None:
    data = _3mf('<item objectid="1"/>', _picture(blank))
    thumb = make_thumbnail_from_bytes(data, "blank.3mf", len(data), 0, ThumbnailOptions(use_embedded=True))
    assert thumb.source == "rendered" and thumb.triangles == 12
    # A real picture is still used.
    data = _3mf('<item objectid="1"/>', _picture((255, 255, 255, 255), pattern=True))
    assert (
        make_thumbnail_from_bytes(data, "real.3mf", len(data), 0, ThumbnailOptions(use_embedded=True)).source
        == "embedded"
    )


def test_an_empty_build_never_gets_the_picture_and_a_blank_one_fails_with_a_reason() -> None:
    data = _3mf("", _picture((255, 255, 255, 255), pattern=True))
    with pytest.raises(EmptyBuildError, match="no items"):
        make_thumbnail_from_bytes(data, "empty.3mf", len(data), 0, ThumbnailOptions(use_embedded=True))
    # Nothing drawable (an object of type "other") and a blank picture: one line, no sidecar.
    resources = f'<object id="1" type="other">{unit_cube_mesh()}</object>'
    data = make_3mf(model_xml(resources, '<item objectid="1"/>'), {"Metadata/thumbnail.png": _picture((9, 9, 9, 255))})
    with pytest.raises(NoGeometryError, match="picture is blank") as err:
        make_thumbnail_from_bytes(data, "other.3mf", len(data), 0, ThumbnailOptions(use_embedded=True))
    assert "\n" not in err.value.message


def test_a_timeout_is_transient_three_times_then_permanent(tmp_path: Path) -> None:
    path = str(tmp_path / "m.stl")
    with StateDB(tmp_path / "s.sqlite3") as db:
        db.upsert_files([FileState(path, 10, 1, "h", True)])
        for attempt in (1, 2, 3):
            db.claim(1, now=1e12)
            db.record_failed([RenderFailed(path, "render timed out", True, "h", max_attempts=3)], now=1000.0 * attempt)
            row = db.get(path)
            assert row is not None and row.attempts == attempt and row.error_transient
            assert (row.next_attempt_at is None) == (attempt == 3)


def test_a_plan_from_old_rows_does_not_requeue_what_was_rendered_since(tmp_path: Path) -> None:
    path = str(tmp_path / "m.stl")
    with StateDB(tmp_path / "s.sqlite3") as db:
        snapshot = db.plan_rows_under([str(tmp_path)])  # a second scan reads the rows: none yet
        from sidecar_thumbs.files.discover import FoundFile
        from sidecar_thumbs.types import RenderDone

        plan = plan_changes([FoundFile(path, 10, 1, 1, False)], snapshot)
        # Meanwhile the first scan inserted, rendered and recorded it.
        db.upsert_files([FileState(path, 10, 1, None, True)])
        db.claim(1)
        db.record_done([RenderDone(path, "h", 10, 1, "rendered", 1, 1.0)])
        db.upsert_files(plan.states)
        row = db.get(path)
        assert row is not None and row.status.value == "done"
        # --force (no snapshot guard) and a changed stat still queue it.
        db.upsert_files([FileState(path, 11, 2, None, True, from_snapshot=True)])
        assert db.get(path).status.value == "pending"  # type: ignore[union-attr]


def test_rescan_leaves_a_file_younger_than_the_settle_window_for_later(tmp_path: Path) -> None:
    from sidecar_thumbs.files.discover import FoundFile

    now = time.time_ns()
    young = FoundFile(str(tmp_path / "young.stl"), 10, now - 10**9, now)
    old = FoundFile(str(tmp_path / "old.stl"), 10, now - 10 * 10**9, now)
    plan = plan_changes([young, old], {}, settle=3.0, now_ns=now)
    assert plan.settling == [young.path] and [s.path for s in plan.states] == [old.path]
    assert plan_changes([young], {}, settle=0.0, now_ns=now).settling == []


@pytest.mark.parametrize("length", range(220, 256))
def test_every_name_length_gets_a_sidecar_or_a_clear_refusal(tmp_path: Path, length: int) -> None:
    name = "m" * (length - 4) + ".stl"
    assert len(name.encode()) == length
    png = encode_png(np.zeros((4, 4, 4), np.uint8), {"Software": "sidecar-thumbs test"})
    model = tmp_path / name
    model.write_bytes(b"x")
    if length + len(".thumbnail.png") + 1 <= 255:
        sidecar = write_sidecar(model, png, durable=False)
        assert sidecar.read_bytes() == png
    else:
        from sidecar_thumbs.files.sidecar import SidecarWriteError

        with pytest.raises(SidecarWriteError, match="file name too long for a sidecar"):
            write_sidecar(model, png, durable=False)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_hash_of_a_regular_file_is_unchanged(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(os.urandom(3 * 2**20 + 5))
    assert hash_file(f, chunk_size=2**20) == hash_bytes(f.read_bytes())


def test_the_coordinator_never_opens_a_fifo_that_replaced_a_timed_out_model(tmp_path: Path) -> None:
    """A worker timed out; meanwhile the model became a FIFO. The coordinator's own hash of the
    failed file (so the failure belongs to some content) must not block on it."""
    from sidecar_thumbs.work.executors.local import InlineExecutor
    from sidecar_thumbs.work.jobs import failure
    from sidecar_thumbs.work.pipeline import Pipeline

    model = tmp_path / "m.stl"
    model.write_bytes(b"solid m\nendsolid m\n")
    with StateDB(tmp_path / "s.sqlite3") as db:
        st = model.stat()
        db.upsert_files([FileState(str(model), st.st_size, st.st_mtime_ns, None, True)])
        (row,) = db.claim(1)
        model.unlink()
        os.mkfifo(model)
        pipeline = Pipeline(db, InlineExecutor(), ThumbnailOptions(), durable=False)
        try:
            timed_out = failure(str(model), "render timed out", transient=True)
            from dataclasses import replace

            t0 = time.monotonic()
            outcome, records = pipeline._commit_file(row, replace(timed_out, max_attempts=3))
            assert time.monotonic() - t0 < 2
            assert not outcome.ok and outcome.transient
            assert [type(r).__name__ for r in records] == ["RenderFailed"]
        finally:
            pipeline.close()


def test_no_sidecar_for_a_model_that_became_a_link_out_of_the_roots_during_its_render(
    tmp_path: Path, corpus: Path
) -> None:
    from sidecar_thumbs.work.executors.local import InlineExecutor
    from sidecar_thumbs.work.pipeline import Pipeline

    root = tmp_path / "lib"
    root.mkdir()
    model = root / "m.stl"
    shutil.copyfile(corpus / STL, model)
    outside = tmp_path / "outside.stl"
    shutil.copyfile(corpus / STL, outside)
    with StateDB(tmp_path / "s.sqlite3") as db:
        st = model.stat()
        db.upsert_files([FileState(str(model), st.st_size, st.st_mtime_ns, None, True)])
        (row,) = db.claim(1)
        result = render_job(RenderJob(str(model), ThumbnailOptions()))
        assert result.ok
        model.unlink()
        model.symlink_to(outside)
        os.utime(outside, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=True)  # same stat as read
        pipeline = Pipeline(db, InlineExecutor(), ThumbnailOptions(), durable=False, roots=[str(root)])
        try:
            outcome, records = pipeline._commit_file(row, result)
        finally:
            pipeline.close()
        assert not outcome.ok and records == [str(model)]  # recorded as missing
    assert not (root / ".m.stl.thumbnail.png").exists()


def test_scan_never_hashes_a_model_over_the_cap(tmp_path: Path, corpus: Path) -> None:
    """A 50 GiB sparse model: refused by the worker unread, recorded against its stat, and neither
    the coordinator nor the next scans hash it (it took minutes of CPU per scan)."""
    from sidecar_thumbs.types import ModelStatus
    from sidecar_thumbs.work.executors.local import InlineExecutor
    from sidecar_thumbs.work.scan import scan

    root = tmp_path / "lib"
    root.mkdir()
    shutil.copyfile(corpus / STL, root / "small.stl")
    big = root / "big.stl"
    with open(big, "wb") as f:
        f.truncate(50 * 2**30)
    options = ThumbnailOptions()
    t0 = time.monotonic()
    with StateDB(tmp_path / "s.sqlite3") as db:
        first = scan([str(root)], db=db, make_executor=InlineExecutor, options=options, durable=False)
        assert (first.rendered, first.failed) == (1, 1) and "cap" in first.failures[0][1]
        row = db.get(str(big))
        st = big.stat()
        assert row is not None and row.status is ModelStatus.FAILED and not row.error_transient
        assert row.hash == oversize_key(st.st_size, st.st_mtime_ns)
        os.utime(big)  # touched: the gate moves, the planner "hashes" it by its stat
        again = scan([str(root)], db=db, make_executor=InlineExecutor, options=options, durable=False)
        assert again.failed == 1 and again.hashed == 1
    assert time.monotonic() - t0 < 20


def test_a_scan_takes_back_the_claims_of_a_coordinator_that_died(tmp_path: Path, corpus: Path) -> None:
    from sidecar_thumbs.work.executors.local import InlineExecutor
    from sidecar_thumbs.work.scan import scan

    root = tmp_path / "lib"
    root.mkdir()
    shutil.copyfile(corpus / STL, root / "m.stl")
    with StateDB(tmp_path / "s.sqlite3") as db:
        st = (root / "m.stl").stat()
        db.upsert_files([FileState(str(root / "m.stl"), st.st_size, st.st_mtime_ns, None, True)])
        db.claim(10)  # then the process was killed: the row stays "rendering"
        summary = scan([str(root)], db=db, make_executor=InlineExecutor, options=ThumbnailOptions(), durable=False)
        assert summary.rendered == 1


def test_the_watchers_intake_never_reads_what_the_walker_would_not(odd: dict[str, Path], tmp_path: Path) -> None:
    """Settled event paths: FIFO, socket, /dev/zero link and link out of the root get no row (and are
    not opened); a folder link out of the root is not walked; a real model is taken."""
    from sidecar_thumbs.daemon.changes import ChangeTracker
    from sidecar_thumbs.daemon.events import EventKind, FileEvent
    from sidecar_thumbs.daemon.settle import Settler

    root = odd["root"]
    (root / "good.stl").write_bytes(b"solid g\nendsolid g\n")
    outside_dir = tmp_path / "elsewhere"
    outside_dir.mkdir()
    (outside_dir / "far.stl").write_bytes(b"solid f\nendsolid f\n")
    (root / "linkdir").symlink_to(outside_dir)
    with StateDB(tmp_path / "s.sqlite3") as db:
        settler = Settler(0.0)
        tracker = ChangeTracker(db, settler, [str(root)], max_bytes=2**30)
        tracker.handle([FileEvent(EventKind.CHANGED, str(root / "linkdir"), True)], 0.0)
        assert len(settler) == 0  # the folder link out of the root was not walked
        paths = [str(odd[k]) for k in ("fifo", "zero", "socket", "out")] + [str(root / "good.stl")]
        t0 = time.monotonic()
        assert tracker.ingest(paths) == 1
        assert time.monotonic() - t0 < 2
        assert list(db.rows_under()) == [str(root / "good.stl")]
        # A model later replaced by a link out of the root: its row goes missing, its sidecar later.
        (root / "good.stl").unlink()
        (root / "good.stl").symlink_to(odd["out"].resolve())
        tracker.ingest([str(root / "good.stl")])
        assert db.get(str(root / "good.stl")).status.value == "missing"  # type: ignore[union-attr]
