"""Issue 15: archives and STEP files flow through the whole pipeline like STL and 3MF: discover,
fingerprint, state, a real worker pool, sidecar, flag, verify, clean, gallery."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from corpus_paths import corpus_files

from sidecar_thumbs.files.formats import extra_available, mimetype_for_name
from sidecar_thumbs.files.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.reports.clean import clean
from sidecar_thumbs.reports.gallery.entries import EntryStatus, collect_gallery
from sidecar_thumbs.reports.verify import verify
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus
from sidecar_thumbs.work.executors.local import LocalPool
from sidecar_thumbs.work.scan import scan

OPTIONS = ThumbnailOptions(render=RenderOptions(size=64, kernel="numpy"))
NOTHING_TO_DRAW = {"klicky__Klipper_macros.zip", "stealthchanger__Xol_fan_splitter_v1_0_gerber.zip"}
GOOD = corpus_files("zip", "step")
BAD = [p for p in corpus_files("bad") if p.suffix.lower() in (".zip", ".7z", ".step", ".stp")]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (extra_available("step") and extra_available("7z")), reason="needs the [step] and [7z] extras"
    ),
]


@pytest.fixture
def library(tmp_path: Path, corpus: Path) -> Path:
    lib = tmp_path / "lib"
    for p in GOOD:
        (lib / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, lib / p.parent.name / p.name)
    (lib / "bad").mkdir()
    for p in BAD:
        shutil.copy2(p, lib / "bad" / p.name)
    return lib


def test_scan_with_a_real_pool_gives_every_archive_and_step_file_its_sidecar(library: Path, tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.sqlite3")
    try:
        summary = scan(
            [str(library)],
            db=db,
            make_executor=lambda: LocalPool(2, timeout=120.0, options=OPTIONS),
            options=OPTIONS,
            durable=False,
        )
        assert summary.found == len(GOOD) + len(BAD)
        failed = {Path(p).name: reason for p, reason in summary.failures}
        assert set(failed) == NOTHING_TO_DRAW | {p.name for p in BAD}, failed
        for name, reason in failed.items():
            assert reason and "\n" not in reason, name
        for p in GOOD:
            model = library / p.parent.name / p.name
            row = db.get(str(model))
            assert row is not None
            if p.name in NOTHING_TO_DRAW:
                assert row.status is ModelStatus.FAILED and not sidecar_path_for(model).exists()
                continue
            assert row.status is ModelStatus.DONE and row.has_thumbnail, (p.name, row.error)
            info = read_sidecar(sidecar_path_for(model))
            assert info is not None and info.ours and info.content_hash == row.hash
        for p in BAD:
            assert not sidecar_path_for(library / "bad" / p.name).exists()

        # verify: every sidecar fresh, every failure known to the database.
        report = verify([str(library)], db=db, expected_settings=OPTIONS.describe())
        assert report.problems == []
        assert report.fresh == len(GOOD) - len(NOTHING_TO_DRAW)

        # gallery: the same entries, archives included, with their MIME types in the sidecars.
        gallery = collect_gallery([str(library)], db=db, expected_settings=OPTIONS.describe())
        counts = gallery.counts()
        assert counts["ok"] == len(GOOD) - len(NOTHING_TO_DRAW)
        assert counts["failed"] == len(NOTHING_TO_DRAW) + len(BAD)
        zips = [e for e in gallery.entries if e.name.endswith(".zip") and e.status is EntryStatus.OK]
        assert zips and all(e.sidecar for e in zips)
        meta = read_sidecar_text(Path(zips[0].sidecar or ""))
        assert meta["Thumb::Mimetype"] == mimetype_for_name(zips[0].name) == "application/zip"

        # clean: a deleted archive's sidecar is an orphan of ours and goes.
        gone = library / "zip" / "constructed__zip-in-zip.zip"
        gone.unlink()
        report = clean([str(library)])
        assert report.removed == [str(sidecar_path_for(gone))]
    finally:
        db.close()


def read_sidecar_text(path: Path) -> dict[str, str]:
    from PIL import Image

    with Image.open(path) as im:
        return dict(im.text)  # type: ignore[attr-defined]


def test_step_over_the_file_timeout_fails_alone_and_leaves_no_temp_files(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # spawned workers put their STEP temp folders here
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy2(corpus / "step" / "trimesh__box_sides.STEP", lib / "box.STEP")
    shutil.copy2(corpus / "zip" / "trimesh__ascii.stl.zip", lib / "ascii.zip")
    db = StateDB(tmp_path / "state.sqlite3")
    try:
        s1 = scan([str(lib)], db=db, make_executor=lambda: LocalPool(1, timeout=0.05, options=OPTIONS),
                  options=OPTIONS, durable=False)  # fmt: skip
        reasons = dict(s1.failures)
        assert "timed out" in reasons[str(lib / "box.STEP")]
        s2 = scan([str(lib)], db=db, make_executor=lambda: LocalPool(1, timeout=120.0, options=OPTIONS),
                  options=OPTIONS, durable=False, retry_failed=True)  # fmt: skip
        assert s2.failed == 0 and sidecar_path_for(lib / "box.STEP").is_file()
        assert sidecar_path_for(lib / "ascii.zip").is_file()
        # Whatever the killed worker left, the next STEP job swept; the finished one removed its own.
        assert [p.name for p in temp.iterdir() if p.name.startswith("sidecar-thumbs-step-")] == []
    finally:
        db.close()


def test_the_daemon_picks_up_new_archives_and_step_files_from_events(tmp_path: Path, corpus: Path) -> None:
    import threading
    import time

    from sidecar_thumbs.daemon.loop import Daemon, DaemonConfig
    from sidecar_thumbs.work.executors.local import InlineExecutor

    def wait_for(cond, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    lib = tmp_path / "lib"
    lib.mkdir()
    db = StateDB(tmp_path / "state.sqlite3")
    config = DaemonConfig(roots=(str(lib),), settle=0.3, sweep_interval=0.2, rescan_interval=0, durable=False)
    daemon = Daemon(config, db=db, make_executor=InlineExecutor, options=OPTIONS)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: daemon.watcher is not None, "the watcher")
        kit = lib / "Kit v2.ZIP"
        part = lib / "Bracket.Stp"
        shutil.copy2(corpus / "zip" / "klicky__BFP Unklicky.zip", kit)
        shutil.copy2(corpus / "step" / "prusai3__plug-aligner.stp", part)
        (lib / "cube.mtl").write_text("newmtl red\nKd 1 0 0\n")
        wait_for(lambda: sidecar_path_for(kit).exists() and sidecar_path_for(part).exists(), "sidecars")
        moved = lib / "Kit v3.zip"
        kit.rename(moved)  # the sidecar follows its archive, without a render
        wait_for(lambda: sidecar_path_for(moved).exists() and not sidecar_path_for(kit).exists(), "the move")
        assert not sidecar_path_for(lib / "cube.mtl").exists()
        assert db.get(str(lib / "cube.mtl")) is None
    finally:
        daemon.request_stop()
        thread.join(30)
        db.close()
