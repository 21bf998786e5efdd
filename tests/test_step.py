"""Issue 15 item 5: STEP / STP through the optional [step] extra (cascadio), and waiting for it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from corpus_paths import corpus_files
from mesh_builders import make_glb, one_triangle_glb

from sidecar_thumbs.errors import BadModelError, MissingExtraError, NoGeometryError
from sidecar_thumbs.files.formats import extra_available
from sidecar_thumbs.files.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.mesh import DEFAULT_LIMITS
from sidecar_thumbs.mesh.glb import glb_triangles
from sidecar_thumbs.mesh.load import load_mesh_bytes
from sidecar_thumbs.mesh.step import check_step_bytes, step_deflection
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.thumbnail import ThumbnailOptions, make_thumbnail
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus
from sidecar_thumbs.work.executors.local import InlineExecutor
from sidecar_thumbs.work.scan import scan

# OpenCASCADE tessellates every corpus STEP file: seconds, out of the fast lane.
pytestmark = pytest.mark.integration

STEP_FILES = corpus_files("step")
BAD_STEP = [p for p in corpus_files("bad") if p.suffix.lower() in (".step", ".stp")]
OPTIONS = ThumbnailOptions(render=RenderOptions(size=96, kernel="numpy"))
needs_cascadio = pytest.mark.skipif(not extra_available("step"), reason="the [step] extra (cascadio) is not installed")


@pytest.fixture
def no_step_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seam we own: a None entry in sys.modules makes ``import cascadio`` fail like a missing package."""
    monkeypatch.setitem(sys.modules, "cascadio", None)


@needs_cascadio
@pytest.mark.parametrize("path", STEP_FILES, ids=[p.name for p in STEP_FILES])
def test_every_corpus_step_file_gets_a_rendered_thumbnail(path: Path) -> None:
    thumb = make_thumbnail(path, OPTIONS)
    assert thumb.source == "rendered" and thumb.triangles and thumb.triangles >= 12
    info = read_sidecar_bytes(thumb.png)
    assert info["Thumb::Mimetype"] == "model/step"


def read_sidecar_bytes(png: bytes) -> dict[str, str]:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        alpha = np.asarray(im.convert("RGBA"))[:, :, 3]
        assert alpha.any(), "blank thumbnail"
        return dict(im.text)  # type: ignore[attr-defined]


@needs_cascadio
def test_assembly_occurrences_are_placed_by_their_transforms(corpus: Path) -> None:
    # box_sides: 6 solids in 10 occurrences forming a closed box of about 184 x 114 x 97 mm
    # (SolidWorks assembly); without the transforms every side would sit at the origin.
    mesh = load_mesh_bytes((corpus / "step" / "trimesh__box_sides.STEP").read_bytes(), "box_sides.STEP")
    lo, hi = mesh.bounds()
    extent = np.sort(hi - lo)
    assert extent[0] > 50 and extent[2] > 150, extent


@needs_cascadio
def test_units_come_out_in_millimetres(corpus: Path) -> None:
    # The Voron 250 bed plate: about 254 mm across. Inches would give ~6,450, metres ~0.25.
    mesh = load_mesh_bytes((corpus / "step" / "voron2__MIC6_Bed_V2_250.step").read_bytes(), "bed.step")
    lo, hi = mesh.bounds()
    assert sorted(np.round(hi - lo))[-1] == pytest.approx(252, abs=5)


def test_deflection_is_relative_to_the_model_size(corpus: Path) -> None:
    small = step_deflection((corpus / "step" / "prusai3__plug-aligner.stp").read_bytes())
    big = step_deflection((corpus / "step" / "voron2__MIC6_Bed_V2_250.step").read_bytes())
    assert 0.001 <= small < big <= 5.0
    assert big == pytest.approx(250 * np.sqrt(2) * 1e-3, rel=0.2)


@pytest.mark.parametrize("path", BAD_STEP, ids=[p.name for p in BAD_STEP])
def test_bad_step_files_are_refused_with_one_line_even_without_the_extra(path: Path, no_step_extra: None) -> None:
    with pytest.raises(BadModelError) as err:
        load_mesh_bytes(path.read_bytes(), path.name)
    # A STEP reason, or the one every format gives a Git LFS pointer checked out in place of the file.
    assert "\n" not in err.value.message and ("STEP" in err.value.message or "Git LFS" in err.value.message)


def test_without_the_extra_a_step_file_needs_the_extra(corpus: Path, no_step_extra: None) -> None:
    assert not extra_available("step")
    with pytest.raises(MissingExtraError, match=r"needs the \[step\] extra"):
        load_mesh_bytes((corpus / "step" / "prusai3__plug-aligner.stp").read_bytes(), "x.stp")


@needs_cascadio
def test_step_waits_for_the_extra_then_scan_requeues_and_renders_it(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    model = lib / "plug aligner.STP"
    shutil.copy2(corpus / "step" / "prusai3__plug-aligner.stp", model)
    db = StateDB(tmp_path / "db.sqlite3")
    try:
        monkeypatch.setitem(sys.modules, "cascadio", None)
        s1 = scan([str(lib)], db=db, make_executor=InlineExecutor, options=OPTIONS, durable=False)
        row = db.get(str(model))
        assert s1.failed == 1 and row is not None and row.status is ModelStatus.FAILED
        assert row.error is not None and row.error.startswith("needs the [step] extra")
        assert not row.error_transient and not sidecar_path_for(model).exists()
        # Still missing: a rescan leaves it failed (no busy retry loop).
        s2 = scan([str(lib)], db=db, make_executor=InlineExecutor, options=OPTIONS, durable=False)
        assert s2.rendered == 0 and db.get(str(model)).status is ModelStatus.FAILED  # type: ignore[union-attr]
        monkeypatch.delitem(sys.modules, "cascadio")  # "pip install 'sidecar-thumbs[step]'"
        s3 = scan([str(lib)], db=db, make_executor=InlineExecutor, options=OPTIONS, durable=False)
        row = db.get(str(model))
        assert s3.rendered == 1 and row is not None and row.status is ModelStatus.DONE and row.error is None
        info = read_sidecar(sidecar_path_for(model))
        assert info is not None and info.ours and info.content_hash == row.hash
    finally:
        db.close()


def test_requeue_touches_only_rows_waiting_for_an_installed_extra(tmp_path: Path) -> None:
    from sidecar_thumbs.errors import missing_extra_reason
    from sidecar_thumbs.types import FileState, RenderFailed

    db = StateDB(tmp_path / "db.sqlite3")
    try:
        paths = [str(tmp_path / n) for n in ("a.step", "b.7z", "c.stl")]
        db.upsert_files([FileState(p, 1, 1, f"h{i}", needs_render=True) for i, p in enumerate(paths)])
        db.claim(10)
        db.record_failed(
            [
                RenderFailed(paths[0], missing_extra_reason("step"), False, "h0"),
                RenderFailed(paths[1], missing_extra_reason("7z"), False, "h1"),
                RenderFailed(paths[2], "not an STL file", False, "h2"),
            ]
        )
        assert db.requeue_missing_extras(["step"]) == 1
        assert [db.get(p).status for p in paths] == [  # type: ignore[union-attr]
            ModelStatus.PENDING,
            ModelStatus.FAILED,
            ModelStatus.FAILED,
        ]
        assert db.requeue_missing_extras([]) == 0
    finally:
        db.close()


def test_glb_node_transforms_apply_and_y_up_metres_become_z_up_millimetres() -> None:
    tri, colors = glb_triangles(one_triangle_glb({"translation": [0.01, 0.02, 0.03]}), 100)
    # glTF (x, y, z) m -> (x, -z, y) mm: the corner at the origin lands at (10, -30, 20).
    assert tri.shape == (1, 3, 3) and colors is None
    np.testing.assert_allclose(tri[0, 0], [10, -30, 20], atol=1e-4)
    np.testing.assert_allclose(tri[0, 2], [10, -30, 21], atol=1e-4)  # +1 mm along glTF y = up
    matrix = np.eye(4)
    matrix[3, :3] = [0.01, 0, 0]  # column-major translation
    tri2, _ = glb_triangles(one_triangle_glb({"matrix": matrix.ravel().tolist()}), 100)
    np.testing.assert_allclose(tri2[0, 0], [10, 0, 0], atol=1e-4)


def test_glb_caps_and_garbage_are_one_line_errors() -> None:
    with pytest.raises(BadModelError):
        glb_triangles(b"not a glb at all", 100)
    with pytest.raises(BadModelError, match="more than 0 triangles"):
        glb_triangles(one_triangle_glb({}), 0)
    empty = make_glb({"scenes": [{"nodes": [0]}], "nodes": [{}]}, b"")
    with pytest.raises(NoGeometryError):
        glb_triangles(empty, 100)


def test_step_header_checks_need_no_extra() -> None:
    check_step_bytes(b"ISO-10303-21;\nHEADER;\nENDSEC;\nDATA;\nENDSEC;\nEND-ISO-10303-21;\n")
    with pytest.raises(BadModelError, match="no ISO-10303-21 header"):
        check_step_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(BadModelError, match="cut short"):
        check_step_bytes(b"ISO-10303-21;\nHEADER;\nDATA;\n#1=CARTESIAN_POINT('',(0.,0.,0.));\n")
    assert DEFAULT_LIMITS.max_archive_depth == 2


@pytest.mark.integration  # a real dead process's pid
def test_temp_folders_of_killed_workers_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    import os
    import subprocess

    from sidecar_thumbs.mesh.step import TEMP_PREFIX, sweep_orphaned_temp_dirs

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    orphan = tmp_path / f"{TEMP_PREFIX}{dead_pid}-abc"
    (orphan).mkdir()
    (orphan / "model.step").write_bytes(b"x")
    live = tmp_path / f"{TEMP_PREFIX}{os.getppid()}-def"  # the parent of this process is alive
    live.mkdir()
    other = tmp_path / "someone-elses-folder"
    other.mkdir()
    assert sweep_orphaned_temp_dirs(str(tmp_path)) == 1
    assert not orphan.exists() and live.exists() and other.exists()


@needs_cascadio
def test_step_leaves_no_temp_files(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    load_mesh_bytes((corpus / "step" / "prusai3__plug-aligner.stp").read_bytes(), "x.stp")
    assert list(tmp_path.iterdir()) == []
