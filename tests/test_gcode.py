"""Text G-code: the slicer's picture when there is one (the largest, never a blank one, found in the
head or tail of the file), else the toolpath drawn like our meshes; damaged files refused with one line."""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np
import pytest
from corpus_paths import corpus_files, corpus_sweep
from gcode_builders import png_bytes, thumbnail_block, tower_gcode
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sidecar_thumbs.errors import BadModelError, ModelError, NoGeometryError
from sidecar_thumbs.mesh.gcode import find_gcode_picture, load_gcode_bytes
from sidecar_thumbs.mesh.gcode_thumbs import HEAD_BYTES
from sidecar_thumbs.mesh.load import load_mesh_bytes
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.thumbnail import ThumbnailOptions, make_thumbnail
from sidecar_thumbs.types import ThumbSource

SMALL = RenderOptions(size=128)
EMBEDDED = ThumbnailOptions(render=SMALL)
RENDER_ONLY = ThumbnailOptions(render=SMALL, use_embedded=False, gcode_picture=False)
# The corpus README: a plasma cutter's moves (no extrusion) may be refused; "Theme Blue" holds only a
# picture; fdn_filename's toolpath was cut down to its end moves (retract, lift, park).
NOTHING_PRINTED = {"gcodepreview__mach3.gcode", "mriscoc__Theme Blue.gcode", "gcodemeta__fdn_filename.gcode"}
# Every corpus G-code file: those with nothing printed are small and run in the fast lane too.
GCODE_FILES = corpus_sweep(corpus_files("gcode", "bgcode"), also=NOTHING_PRINTED)
NO_PICTURE = {
    "gcodepreview__mach3.gcode",
    "gcodepreview__vase.gcode",
    "gcodepreview__duplo_tracks.gcode",
    "gcodenom__3DBenchy.gcode",
    "gcodenom__arc_demo.gcode",
}


def _alpha(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        assert im.size == (128, 128)
        return np.asarray(im.convert("RGBA"))[..., 3]


def _assert_centred_and_filling(png: bytes) -> None:
    alpha = _alpha(png)
    ys, xs = np.nonzero(alpha > 16)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    size = alpha.shape[0]
    assert max(x1 - x0, y1 - y0) + 1 >= 0.8 * size
    assert abs(x0 - (size - 1 - x1)) <= 4 and abs(y0 - (size - 1 - y1)) <= 4


@pytest.mark.parametrize("path", GCODE_FILES)
def test_every_corpus_gcode_gets_its_picture_or_its_toolpath(path: Path) -> None:
    if path.name == "gcodepreview__mach3.gcode":
        with pytest.raises(NoGeometryError):
            make_thumbnail(path, EMBEDDED)
        return
    thumb = make_thumbnail(path, EMBEDDED)
    assert thumb.source == (ThumbSource.RENDERED if path.name in NO_PICTURE else ThumbSource.EMBEDDED)
    alpha = _alpha(thumb.png)
    assert alpha.max() == 255


@pytest.mark.parametrize("path", GCODE_FILES)
def test_every_corpus_toolpath_renders_centred_and_filling_the_frame(path: Path) -> None:
    if path.name in NOTHING_PRINTED:
        if path.name in NO_PICTURE:
            with pytest.raises(NoGeometryError, match="no extruding moves"):
                make_thumbnail(path, RENDER_ONLY)
        else:  # nothing to draw: the slicer's picture, even when pictures are not preferred
            assert make_thumbnail(path, RENDER_ONLY).source == ThumbSource.EMBEDDED
        return
    thumb = make_thumbnail(path, RENDER_ONLY)
    assert thumb.source == ThumbSource.RENDERED and thumb.triangles and thumb.triangles >= 8
    _assert_centred_and_filling(thumb.png)


@pytest.mark.parametrize(
    "path", [p for p in corpus_files("bad") if p.suffix.lower() in (".gcode", ".bgcode")], ids=lambda p: p.name
)
def test_bad_gcode_is_refused_with_one_line(path: Path) -> None:
    if path.name == "buddy__mini_cube_binary.gcode":
        # Binary G-code under a .gcode name: read by its GCDE magic, as PrusaSlicer does (the README allows it).
        assert make_thumbnail(path, EMBEDDED).source == ThumbSource.EMBEDDED
        return
    for options in (EMBEDDED, RENDER_ONLY):
        with pytest.raises(ModelError) as info:
            make_thumbnail(path, options)
        assert "\n" not in info.value.message and info.value.message


def test_largest_of_several_pictures_is_chosen(corpus: Path) -> None:
    picture = find_gcode_picture((corpus / "gcode" / "buddy__box.gcode").read_bytes())
    assert picture is not None and (picture.format, picture.width, picture.height) == ("PNG", 440, 240)


def test_qoi_and_jpeg_pictures_are_read(corpus: Path) -> None:
    qoi = find_gcode_picture((corpus / "gcode" / "libbgcode__mini_cube_ps2.8.1.gcode").read_bytes())
    assert qoi is not None and (qoi.format, qoi.width, qoi.height) == ("QOI", 313, 173)
    jpeg = find_gcode_picture((corpus / "gcode" / "mriscoc__SimpleCuraTest.gcode").read_bytes())
    assert jpeg is not None and (jpeg.format, jpeg.width, jpeg.height) == ("JPEG", 190, 190)


@pytest.mark.parametrize("blank", ["flat", "clear"])
def test_blank_picture_is_never_used(tmp_path: Path, blank: str) -> None:
    path = tmp_path / "blank.gcode"
    path.write_bytes(thumbnail_block(png_bytes(300, 200, blank), 300, 200) + tower_gcode())
    thumb = make_thumbnail(path, EMBEDDED)
    assert thumb.source == ThumbSource.RENDERED


def test_picture_is_found_in_the_tail_of_a_big_file_but_not_in_its_middle(tmp_path: Path) -> None:
    filler = b"; filler comment line of a long print\n" * (HEAD_BYTES // 38 + 1)
    tail = tower_gcode() + filler + thumbnail_block(png_bytes(64, 48), 64, 48, "thumbnail_PNG")
    picture = find_gcode_picture(tail)
    assert picture is not None and (picture.width, picture.height) == (64, 48)
    middle = tower_gcode() + filler + thumbnail_block(png_bytes(64, 48), 64, 48) + filler
    assert find_gcode_picture(middle) is None


def test_orca_bambu_thumbnail_block_wrapper_is_read() -> None:
    data = b"; THUMBNAIL_BLOCK_START\n" + thumbnail_block(png_bytes(96, 96), 96, 96) + b"; THUMBNAIL_BLOCK_END\n"
    picture = find_gcode_picture(data + tower_gcode())
    assert picture is not None and picture.width == 96


def test_shorter_block_than_declared_is_skipped_not_used() -> None:
    block = thumbnail_block(png_bytes(80, 60), 80, 60).replace(b"begin 80x60 ", b"begin 80x60 9")
    assert find_gcode_picture(block + tower_gcode()) is None


def test_gcode_without_picture_renders_its_toolpath_with_pixels_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "block.gcode"
    path.write_bytes(tower_gcode(solid=True))
    thumb = make_thumbnail(path, EMBEDDED)
    assert thumb.source == ThumbSource.RENDERED and thumb.triangles and thumb.triangles > 8 * 4 * 20
    assert _alpha(thumb.png)[56:72, 56:72].min() == 255
    _assert_centred_and_filling(thumb.png)


def test_toolpath_of_a_solid_cube_has_opaque_middle(corpus: Path) -> None:
    thumb = make_thumbnail(corpus / "gcode" / "buddy__box.gcode", RENDER_ONLY)
    assert _alpha(thumb.png)[56:72, 56:72].min() == 255


def test_load_mesh_dispatches_gcode_by_extension_in_any_case() -> None:
    mesh = load_mesh_bytes(tower_gcode(), "Tower.GCODE")
    assert mesh.format == "gcode" and mesh.triangle_count == 8 * 4 * 20
    lo, hi = mesh.bounds()
    assert np.allclose(lo[2], 0.0, atol=0.06) and math.isclose(float(hi[2]), 4.0, abs_tol=1e-4)


def test_empty_gcode_is_refused() -> None:
    with pytest.raises(BadModelError):
        find_gcode_picture(b"")
    with pytest.raises(NoGeometryError):
        load_gcode_bytes(b"")


def test_worker_job_renders_gcode_and_reports_a_bad_one_as_a_one_line_failure(corpus: Path) -> None:
    from sidecar_thumbs.work.jobs import RenderJob, render_job

    good = render_job(RenderJob(str(corpus / "bgcode" / "gcodenom__benchy2-mk4s.bgcode"), EMBEDDED))
    assert good.ok and good.source == ThumbSource.EMBEDDED and good.content_hash
    bad = render_job(RenderJob(str(corpus / "bad" / "buddy__test_bad_crc_gcode.bgcode"), EMBEDDED))
    assert not bad.ok and bad.error and "CRC-32" in bad.error and "\n" not in bad.error and not bad.transient


@pytest.mark.integration  # a bomb or a cost bound, like the reliability suite's: out of the fast lane
def test_thousands_of_unterminated_begin_lines_cost_little() -> None:
    head = b"; thumbnail begin 1x1 9999999999\n" * 100_000
    data = head + tower_gcode() + b"; padding\n" * (4 << 20)  # 40 MiB in all: no block reaches the end
    start = time.process_time()
    assert find_gcode_picture(data) is None
    assert time.process_time() - start < 5.0


PIECES = st.sampled_from(
    [
        b"; thumbnail begin 64x48 ",
        b"; thumbnail_QOI begin 16x16 ",
        b"; thumbnail_JPG begin 9x9 ",
        b"; thumbnail end\n",
        b"; thumbnail_QOI end\n",
        b"; iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk\n",
        b"; qoif\n",
        b"; /9j/4AAQSkZJRgABAQ\n",
        b"G1 X10 Y10 E1\n",
        b"\n",
        b";\n",
        b"99999999999\n",
        b"12\n",
    ]
)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.lists(PIECES, max_size=30), st.binary(max_size=64))
def test_fuzzed_thumbnail_blocks_give_a_picture_none_or_the_cut_off_reason(pieces: list, noise: bytes) -> None:
    data = b"".join(pieces) + noise + tower_gcode(layers=1)
    try:
        picture = find_gcode_picture(data)
    except BadModelError as exc:
        assert "cut off" in exc.message
        return
    assert picture is None or picture.pixels > 0


def test_an_icon_alone_gives_way_to_the_toolpath_but_beats_nothing(tmp_path: Path) -> None:
    icon = thumbnail_block(png_bytes(16, 16), 16, 16)
    with_moves = tmp_path / "icon and moves.gcode"
    with_moves.write_bytes(icon + tower_gcode())
    assert make_thumbnail(with_moves, EMBEDDED).source == ThumbSource.RENDERED
    icon_only = tmp_path / "icon only.gcode"
    icon_only.write_bytes(icon + b"G28\nM84\n")
    assert make_thumbnail(icon_only, EMBEDDED).source == ThumbSource.EMBEDDED
