"""work.oneoff.render_files: the ``render`` command's loop as a library function. Outcomes come in the order
of the files, one bad file never stops the rest, writes happen in the writer thread (so their wait for the
disk overlaps the next render), and the folders written are fsynced once, also when the caller stops early."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from PIL import Image

from bench import meshgen
from sidecar_thumbs.files import atomic
from sidecar_thumbs.files.sidecar import sidecar_path_for
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.work.oneoff import render_files

OPTIONS = ThumbnailOptions(render=RenderOptions(size=64))


@pytest.fixture
def models(tmp_path: Path) -> list[Path]:
    lib = tmp_path / "lib"
    lib.mkdir()
    paths = []
    for i, tri in enumerate([meshgen.rock(200), meshgen.gear(), meshgen.bracket()]):
        p = lib / f"m{i}.stl"
        p.write_bytes(meshgen.binary_stl_bytes(tri))
        paths.append(p)
    return paths


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(what, thread name) of each data ordering and folder fsync."""
    seen: list[tuple[str, str]] = []
    real_order, real_dir = atomic.order_fsync, atomic.fsync_dir

    def order(fd: int, **kw: bool) -> None:
        seen.append(("data", threading.current_thread().name))
        real_order(fd, **kw)

    def folder(path: str | os.PathLike[str]) -> None:
        seen.append((os.fspath(path), threading.current_thread().name))
        real_dir(path)

    monkeypatch.setattr(atomic, "order_fsync", order)
    monkeypatch.setattr(atomic, "fsync_dir", folder)
    return seen


def test_sidecars_in_order_written_by_the_writer_thread(models: list[Path], calls: list[tuple[str, str]]) -> None:
    done = list(render_files(models, OPTIONS))
    assert [d.model for d in done] == models
    assert [d.dest for d in done] == [sidecar_path_for(m) for m in models]
    for d in done:
        assert d.error is None and d.thumb is not None and d.dest is not None
        with Image.open(d.dest) as im:
            assert im.size == (64, 64)
    data = [c for c in calls if c[0] == "data"]
    assert len(data) == len(models) and all(name.startswith("thumbnail-writer") for _, name in data)
    assert calls[len(models) :] == [(os.path.abspath(models[0].parent), "MainThread")]  # once, at the end
    assert not [n for n in os.listdir(models[0].parent) if n.startswith(atomic.TEMP_PREFIX)]


def test_a_bad_a_missing_and_a_clashing_file_fail_alone_in_their_place(models: list[Path], tmp_path: Path) -> None:
    bad = models[0].parent / "bad.stl"
    bad.write_bytes(b"solid x\nfacet normal 0 0 1\nouter loop\n")
    other = tmp_path / "other"
    other.mkdir()
    clash = other / models[1].name  # the same <name>.png in the output folder
    clash.write_bytes(models[1].read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    files = [models[0], bad, tmp_path / "gone.stl", models[1], clash, models[2]]
    done = list(render_files(files, OPTIONS, out, to_dir=True))
    assert [d.model for d in done] == files
    assert [d.error is None for d in done] == [True, False, False, True, False, True]
    assert done[2].error is not None and done[2].error.message == "no such file"
    assert done[4].error is not None and "already holds the thumbnail of" in done[4].error.message
    assert sorted(os.listdir(out)) == sorted(f"{m.name}.png" for m in models)
    assert not (models[0].parent / f".{bad.name}.thumbnail.png").exists()


def test_a_write_that_fails_is_that_files_error(models: list[Path], tmp_path: Path) -> None:
    target = tmp_path / "a-folder"
    (target / "inside").mkdir(parents=True)  # a non-empty folder where the output file should go
    done = list(render_files(models[:1], OPTIONS, target, to_dir=False))
    assert len(done) == 1 and done[0].error is not None
    assert done[0].error.message.startswith(f"cannot write {target}:")
    assert not [n for n in os.listdir(target) if n.startswith(atomic.TEMP_PREFIX)]


def test_stopping_early_finishes_the_write_in_flight_and_fsyncs_its_folder(
    models: list[Path], calls: list[tuple[str, str]]
) -> None:
    it = render_files(models, OPTIONS)
    first = next(it)  # the second file has rendered and its write was handed to the writer
    it.close()
    assert first.dest == sidecar_path_for(models[0])
    assert sidecar_path_for(models[1]).exists()
    assert not sidecar_path_for(models[2]).exists()
    assert calls[-1] == (os.path.abspath(models[0].parent), "MainThread")
