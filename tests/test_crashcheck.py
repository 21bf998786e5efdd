"""Durability at the Mac's price (issue 17 item 6): ordered sidecar writes, one folder fsync per batch,
and the database commit as the durability point — a sidecar torn by a crash is redrawn by the next scan."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sidecar_thumbs.files import atomic
from sidecar_thumbs.files.freshness import Verdict, check_freshness
from sidecar_thumbs.files.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus
from sidecar_thumbs.work import pipeline
from sidecar_thumbs.work.crashcheck import WRITES_OPEN_KEY, open_writes
from sidecar_thumbs.work.executors.local import InlineExecutor
from sidecar_thumbs.work.scan import scan

OPTIONS = ThumbnailOptions()
PICKS = ("stl-binary/admesh__binary.stl", "3mf/3mfsamples__box.3mf", "3mf/3mfsamples__cylinder.3mf")


@pytest.fixture
def library(tmp_path: Path, corpus: Path) -> tuple[Path, list[Path]]:
    lib = tmp_path / "lib"
    out = []
    for i, rel in enumerate(PICKS):
        folder = lib / f"folder{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        out.append(Path(shutil.copy2(corpus / rel, folder / Path(rel).name)))
    return lib, out


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    d = StateDB(tmp_path / "state" / "db.sqlite3")
    yield d
    d.close()


def run(lib: Path, db: StateDB, **kw: object):  # type: ignore[no-untyped-def]
    return scan([str(lib)], db=db, options=OPTIONS, make_executor=InlineExecutor, holds_lock=True, **kw)  # type: ignore[arg-type]


def _tear(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncate" else data[:64] + os.urandom(len(data) - 64))


def test_a_clean_scan_leaves_no_crash_note(library: tuple[Path, list[Path]], db: StateDB) -> None:
    lib, models = library
    s = run(lib, db)
    assert s.rendered + s.embedded == len(models)
    assert not db.get_meta(WRITES_OPEN_KEY)


@pytest.mark.parametrize("how", ["truncate", "garble"])
def test_sidecar_torn_before_an_unclean_stop_is_rendered_again(
    library: tuple[Path, list[Path]], db: StateDB, how: str
) -> None:
    lib, models = library
    open_writes(db, now=0.0)  # a writer that started long ago and never stopped cleanly (a power cut)
    run(lib, db)
    torn, intact = models[0], models[1]
    intact_bytes = sidecar_path_for(intact).read_bytes()
    open_writes(db, now=0.0)
    _tear(sidecar_path_for(torn), how)
    row = db.get(str(torn))
    assert row is not None and row.status is ModelStatus.DONE and row.has_thumbnail  # the commit said done
    # verify's freshness rule calls it a problem too (not fresh)
    info = read_sidecar(sidecar_path_for(torn))
    st = torn.stat()
    assert check_freshness(str(torn), st.st_size, st.st_mtime_ns, info, hasher=None).verdict in (
        Verdict.CORRUPT,
        Verdict.FOREIGN,
    )
    s = run(lib, db)
    assert s.rendered + s.embedded == 1 and s.unchanged == len(models) - 1
    info = read_sidecar(sidecar_path_for(torn))
    assert info is not None and info.ours and info.readable
    assert sidecar_path_for(intact).read_bytes() == intact_bytes  # only the torn one was redrawn
    assert not db.get_meta(WRITES_OPEN_KEY)


def test_without_a_crash_note_sidecars_are_not_read_again(library: tuple[Path, list[Path]], db: StateDB) -> None:
    # The check costs a header read per recent sidecar, so it runs only after an unclean stop.
    lib, models = library
    run(lib, db)
    _tear(sidecar_path_for(models[0]), "truncate")
    s = run(lib, db)
    assert s.rendered + s.embedded == 0 and s.unchanged == len(models)


def test_folders_are_fsynced_once_per_batch_not_per_file(
    library: tuple[Path, list[Path]], db: StateDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib, models = library
    per_file: list[str] = []
    batched: list[str] = []
    ordered: list[int] = []
    monkeypatch.setattr(atomic, "fsync_dir", lambda p: per_file.append(os.fspath(p)))
    monkeypatch.setattr(pipeline, "fsync_dir", lambda p: batched.append(os.fspath(p)))
    monkeypatch.setattr(atomic, "order_fsync", lambda fd, full=False: ordered.append(fd))
    s = run(lib, db, durable=True)
    assert s.rendered + s.embedded == len(models)
    assert len(ordered) == len(models)  # every sidecar's data ordered before its rename
    assert per_file == []
    # Each folder once per commit batch (a slow render may split the run into several batches).
    assert set(batched) == {str(m.parent) for m in models} and len(batched) <= len(models)


def test_full_fsync_reaches_the_primitive(
    library: tuple[Path, list[Path]], db: StateDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib, models = library
    fulls: list[bool] = []
    monkeypatch.setattr(atomic, "order_fsync", lambda fd, full=False: fulls.append(full))
    run(lib, db, durable=True, full_fsync=True)
    assert fulls == [True] * len(models)


def test_order_fsync_falls_back_to_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    atomic.atomic_write(tmp_path / "f", b"x")
    # Linux: fsync for the data and for the folder; macOS: a barrier for the data, fsync for the folder.
    assert len(calls) == (1 if atomic.sys.platform == "darwin" else 2)
    assert (tmp_path / "f").read_bytes() == b"x"


def test_temp_files_are_swept_only_after_a_writer_left_its_note_open(
    library: tuple[Path, list[Path]], db: StateDB
) -> None:
    # Temp files are left only by a writer killed mid-write, and every writer notes that it writes: a
    # no-op rescan after a clean stop skips the second walk of the library that looks for them.
    lib, models = library
    assert run(lib, db).temp_removed == 0  # a fresh database: swept (never checked before)
    png = sidecar_path_for(models[0]).read_bytes()
    temp = models[0].parent / atomic.temp_name_for("x")
    temp.write_bytes(png[:100])
    assert run(lib, db).temp_removed == 0 and temp.exists()
    open_writes(db, now=0.0)  # a writer killed mid-run
    assert run(lib, db).temp_removed == 1 and not temp.exists()


def test_render_opens_no_database_so_it_needs_no_crash_note(
    tmp_path: Path, library: tuple[Path, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``render`` writes the sidecar beside the model and commits no row: nothing for the crash check to
    read (docs/RELIABILITY.md, "Sidecars written without the database")."""
    from click.testing import CliRunner

    from sidecar_thumbs.cli.main import cli

    _, models = library
    configured = tmp_path / "configured" / "state.sqlite3"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAM_DATABASE_PATH", str(configured))
    result = CliRunner().invoke(cli, ["render", str(models[0])])
    assert result.exit_code == 0, result.output
    info = read_sidecar(sidecar_path_for(models[0]))
    assert info is not None and info.ours and info.readable
    assert not configured.parent.exists()  # no database opened, so none to note in
