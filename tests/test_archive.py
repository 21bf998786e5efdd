"""Issue 15 item 8: .zip and .7z archives: the models inside, caps against hostile archives."""

from __future__ import annotations

import io
import os
import struct
import sys
import tracemalloc
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from corpus_paths import corpus_files, corpus_sweep
from PIL import Image

from sidecar_thumbs.errors import BadModelError, LimitExceededError, MissingExtraError, ModelError, NoGeometryError
from sidecar_thumbs.files.formats import extra_available
from sidecar_thumbs.mesh import DEFAULT_LIMITS
from sidecar_thumbs.mesh.archive import Budget, open_archive
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.archive_picture import grid_layout
from sidecar_thumbs.render.thumbnail import ThumbnailOptions, make_thumbnail, make_thumbnail_from_bytes

OPTIONS = ThumbnailOptions(render=RenderOptions(size=96, kernel="numpy"))
# The corpus README: archives with nothing to draw, refused with their reason.
NOTHING_TO_DRAW = {"klicky__Klipper_macros.zip", "stealthchanger__Xol_fan_splitter_v1_0_gerber.zip"}
ARCHIVES = [p for p in corpus_files("zip") if p.name not in NOTHING_TO_DRAW]
BAD_ARCHIVES = [p for p in corpus_files("bad") if p.suffix.lower() in (".zip", ".7z")]
needs_7z = pytest.mark.skipif(not extra_available("7z"), reason="the [7z] extra (py7zr) is not installed")


def _opaque(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGBA"))[:, :, 3] > 0


def _stl(corpus: Path) -> bytes:
    return (corpus / "stl-binary" / "admesh__binary.stl").read_bytes()


def _zip(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


def _thumb(data: bytes, name: str = "Thing.zip", options: ThumbnailOptions = OPTIONS):  # type: ignore[no-untyped-def]
    return make_thumbnail_from_bytes(data, name, len(data), 0, options)


def _one_line(exc: ModelError) -> str:
    assert "\n" not in exc.message and exc.message
    return exc.message


# --- the corpus ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", corpus_sweep(ARCHIVES))
def test_every_corpus_archive_gets_a_picture(path: Path) -> None:
    if path.suffix == ".7z" and not extra_available("7z"):
        pytest.skip("the [7z] extra is not installed")
    thumb = make_thumbnail(path, OPTIONS)
    assert _opaque(thumb.png).mean() > 0.02, "blank or nearly blank"


@pytest.mark.parametrize("name", sorted(NOTHING_TO_DRAW))
def test_archives_with_nothing_to_draw_are_refused_with_what_they_hold(corpus: Path, name: str) -> None:
    with pytest.raises(NoGeometryError) as err:
        make_thumbnail(corpus / "zip" / name, OPTIONS)
    assert _one_line(err.value).startswith("archive holds no model or picture (")


@pytest.mark.parametrize("path", BAD_ARCHIVES, ids=[p.name for p in BAD_ARCHIVES])
def test_bad_archives_are_refused_with_one_line(path: Path) -> None:
    with pytest.raises(BadModelError) as err:
        make_thumbnail(path, OPTIONS)
    _one_line(err.value)


def test_an_archive_of_two_models_shows_both_side_by_side(corpus: Path) -> None:
    thumb = make_thumbnail(corpus / "zip" / "klicky__BFP Unklicky.zip", OPTIONS)
    mask = _opaque(thumb.png)
    half = OPTIONS.render.size // 2
    assert mask[:, :half].any() and mask[:, half:].any()
    assert thumb.triangles == 15730  # both STLs were loaded


def test_the_model_inside_an_inner_zip_is_found(corpus: Path) -> None:
    thumb = make_thumbnail(corpus / "zip" / "constructed__zip-in-zip.zip", OPTIONS)
    assert thumb.source == "rendered" and thumb.triangles == 802  # voron2__Filament_Card.stl


def test_an_archive_of_images_only_shows_the_largest_image(corpus: Path) -> None:
    thumb = make_thumbnail(corpus / "zip" / "constructed__images-only.zip", OPTIONS)
    assert thumb.source == "embedded" and thumb.triangles is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("constructed__cp437-names.zip", {"Gehäuse_oben.stl", "Deckel_für_Gehäuse.stl"}),
        ("constructed__utf8-names-no-flag.zip", {"Würfel_20mm.stl", "説明書.txt"}),
    ],
)
def test_names_in_code_page_437_and_in_utf8_without_the_flag(corpus: Path, name: str, expected: set[str]) -> None:
    archive = open_archive((corpus / "zip" / name).read_bytes(), "zip", Budget(1 << 30), DEFAULT_LIMITS)
    assert expected <= {os.path.basename(e.name) for e in archive.entries}


def test_macos_resource_forks_are_ignored(corpus: Path) -> None:
    data = (corpus / "zip" / "trimesh__ascii.stl.zip").read_bytes()
    archive = open_archive(data, "zip", Budget(1 << 30), DEFAULT_LIMITS)
    kinds = {e.name: e.kind for e in archive.entries}
    assert [n for n, k in kinds.items() if k == "model"] == ["fuji_obj.stl"]
    assert any(n.startswith("__MACOSX/") for n in kinds)


@needs_7z
def test_7z_shows_the_same_model_as_the_zip_of_the_same_download(corpus: Path) -> None:
    a = make_thumbnail(corpus / "zip" / "constructed__model-site-download.7z", OPTIONS)
    b = make_thumbnail(corpus / "zip" / "constructed__model-site-download.zip", OPTIONS)
    assert a.triangles == b.triangles == 802
    assert (_opaque(a.png) == _opaque(b.png)).all()


def test_7z_without_the_extra_needs_the_extra(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "py7zr", None)
    with pytest.raises(MissingExtraError, match=r"needs the \[7z\] extra"):
        make_thumbnail(corpus / "zip" / "constructed__model-site-download.7z", OPTIONS)


def test_a_zip_whose_only_model_needs_a_missing_extra_waits_for_it(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cascadio", None)
    data = _zip([("part.step", (corpus / "step" / "prusai3__plug-aligner.stp").read_bytes())])
    with pytest.raises(MissingExtraError, match=r"needs the \[step\] extra"):
        _thumb(data)


# --- layout -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_grid_cells_fit_and_do_not_overlap(n: int) -> None:
    cells = grid_layout(n, 256)
    assert len(cells) == n
    canvas = np.zeros((256, 256), dtype=int)
    for x, y, c in cells:
        assert x >= 0 and y >= 0 and x + c <= 256 and y + c <= 256
        canvas[y : y + c, x : x + c] += 1
    assert canvas.max() == 1


def test_four_models_fill_a_two_by_two_grid(corpus: Path) -> None:
    stl = _stl(corpus)
    thumb = _thumb(_zip([(f"files/part{i}.stl", stl) for i in range(6)]))
    mask = _opaque(thumb.png)
    h = OPTIONS.render.size // 2
    assert all(q.any() for q in (mask[:h, :h], mask[:h, h:], mask[h:, :h], mask[h:, h:]))
    assert thumb.triangles == 4 * 12


# --- hostile archives ---------------------------------------------------------------------------


def _refused_with_bounded_memory(data: bytes, limit_mib: float = 16, name: str = "Thing.zip") -> str:
    tracemalloc.start()
    try:
        with pytest.raises(ModelError) as err:
            _thumb(data, name=name)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit_mib * 2**20, f"peak {peak / 2**20:.1f} MiB"
    return _one_line(err.value)


def test_zip_bomb_entry_is_refused_before_inflating() -> None:
    bomb = _zip([("huge.stl", bytes(64 * 2**20))])  # 64 MiB of zeros in ~64 KB
    assert len(bomb) < 200_000
    assert "a zip bomb" in _refused_with_bounded_memory(bomb)


def test_nested_42_zip_like_bomb_is_refused_with_bounded_memory() -> None:
    layer = _zip([(f"{i}.stl", bytes(8 * 2**20)) for i in range(4)])  # each entry 8 MiB of zeros
    for _ in range(3):
        layer = _zip([(f"{i}.zip", layer) for i in range(8)])
    reason = _refused_with_bounded_memory(layer)
    assert "archive" in reason


def test_bomb_one_level_down_refuses_the_whole_archive() -> None:
    inner = _zip([("model.stl", bytes(32 * 2**20))])
    assert "a zip bomb" in _refused_with_bounded_memory(_zip([("STL files.zip", inner)]))


def _central_headers(data: bytes) -> list[int]:
    out, pos = [], data.find(b"PK\x01\x02")
    while pos >= 0:
        out.append(pos)
        pos = data.find(b"PK\x01\x02", pos + 4)
    return out


def test_overlapping_entries_quine_like_bomb_is_refused(corpus: Path) -> None:
    stl = _stl(corpus)
    data = bytearray(_zip([("a.stl", stl), ("b.stl", stl), ("c.stl", stl)], zipfile.ZIP_STORED))
    for cd in _central_headers(bytes(data))[1:]:
        struct.pack_into("<I", data, cd + 42, 0)  # every entry's data starts at the first one's header
    assert "overlap" in _refused_with_bounded_memory(bytes(data))


def test_declared_sizes_that_lie_cannot_inflate_past_them(corpus: Path) -> None:
    data = bytearray(_zip([("model.stl", bytes(4 * 2**20))]))  # ratio ~1000 but declared as 1 KB:
    (cd,) = _central_headers(bytes(data))
    struct.pack_into("<I", data, cd + 24, 1000)  # uncompressed size in the central directory
    struct.pack_into("<I", data, 22, 1000)  # and in the local header
    reason = _refused_with_bounded_memory(bytes(data), limit_mib=4)
    assert "different size than declared" in reason


def test_total_inflated_bytes_are_capped_across_entries(corpus: Path) -> None:
    stl = _stl(corpus)
    small = replace(OPTIONS, limits=replace(DEFAULT_LIMITS, max_decompressed_bytes=2 * len(stl) + 10))
    with pytest.raises(LimitExceededError, match="archive inflates to more than the limit"):
        _thumb(_zip([(f"p{i}.stl", stl) for i in range(4)]), options=small)


def test_too_many_entries_are_refused_from_the_directory_record(corpus: Path) -> None:
    data = bytearray(_zip([("a.stl", _stl(corpus))]))
    eocd = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, eocd + 8, 60000, 60000)  # claims 60,000 entries
    with pytest.raises(LimitExceededError, match="60000 entries"):
        _thumb(bytes(data), options=replace(OPTIONS, limits=replace(DEFAULT_LIMITS, max_archive_entries=1000)))
    many = _zip([(f"n{i}.txt", b"") for i in range(50)])
    with pytest.raises(LimitExceededError, match="50 entries"):
        _thumb(many, options=replace(OPTIONS, limits=replace(DEFAULT_LIMITS, max_archive_entries=20)))


def test_encrypted_entries_are_refused_with_their_reason(corpus: Path) -> None:
    data = bytearray(_zip([("secret.stl", _stl(corpus))]))
    (cd,) = _central_headers(bytes(data))
    data[6] |= 1  # local header flags: encrypted
    data[cd + 8] |= 1  # central directory flags
    with pytest.raises(BadModelError, match=r"secret\.stl is encrypted"):
        _thumb(bytes(data))


def test_traversal_names_are_only_names_and_nothing_is_extracted(tmp_path: Path, corpus: Path) -> None:
    data = _zip([("../../escape.stl", _stl(corpus)), ("/etc/abs.stl", _stl(corpus))])
    archive = tmp_path / "sub" / "Thing.zip"
    archive.parent.mkdir()
    archive.write_bytes(data)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    thumb = make_thumbnail(archive, OPTIONS)
    assert thumb.triangles == 24
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not (tmp_path.parent / "escape.stl").exists()


def test_archives_nested_deeper_than_two_levels_are_not_opened(corpus: Path) -> None:
    deep = _zip([("level3.zip", _zip([("model.stl", _stl(corpus))]))])
    assert _thumb(_zip([("level2.zip", _zip([("model.stl", _stl(corpus))]))])).triangles == 12
    with pytest.raises(NoGeometryError, match="2 levels"):
        _thumb(_zip([("level2.zip", deep)]))


def test_a_bad_model_is_skipped_for_the_next_largest(corpus: Path) -> None:
    thumb = _thumb(_zip([("big.stl", b"solid x\n" + b"garbage " * 5000), ("small.stl", _stl(corpus))]))
    assert thumb.triangles == 12


def test_only_bad_models_fail_with_the_largest_ones_reason() -> None:
    with pytest.raises(BadModelError, match="no model in the archive could be read; the largest: "):
        _thumb(_zip([("big.stl", b"<html>" + b"x" * 500), ("empty.stl", b"")]))


def test_not_a_zip_at_all() -> None:
    with pytest.raises(BadModelError, match="not a ZIP archive"):
        _thumb(b"PK but not really" * 10)


@needs_7z
def test_7z_is_read_in_memory_and_writes_nothing(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # py7zr extracts relative to the working folder when it writes at all
    make_thumbnail(corpus / "zip" / "constructed__model-site-download.7z", OPTIONS)
    assert list(tmp_path.iterdir()) == []


def _7z(entries: list[tuple[str, bytes]], password: str | None = None, header_encryption: bool = False) -> bytes:
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password=password, header_encryption=header_encryption) as z:
        for name, data in entries:
            z.writestr(data, name)
    return buf.getvalue()


@pytest.mark.integration  # a bomb or a cost bound, like the reliability suite's: out of the fast lane
@needs_7z
def test_7z_bomb_is_refused_before_inflating() -> None:
    bomb = _7z([("huge.stl", bytes(64 * 2**20))])
    assert len(bomb) < 100_000
    # py7zr allocates a fixed ~16 MiB read buffer when it opens any archive (measured: the same 16.0 MiB
    # peak for 16, 64 and 256 MiB bombs); what matters is that the peak does not grow with the bomb.
    assert "a zip bomb" in _refused_with_bounded_memory(bomb, limit_mib=24, name="Thing.7z")


@needs_7z
def test_encrypted_7z_is_refused_with_its_reason(corpus: Path) -> None:
    for header_encryption in (False, True):
        data = _7z([("part.stl", _stl(corpus))], password="secret", header_encryption=header_encryption)
        with pytest.raises(BadModelError, match="7z archive is encrypted"):
            _thumb(data, name="Thing.7z")


@needs_7z
def test_damaged_7z_is_refused_with_one_line(corpus: Path) -> None:
    data = _7z([("part.stl", _stl(corpus))])
    with pytest.raises(BadModelError) as err:
        _thumb(data[: len(data) // 2], name="Thing.7z")
    _one_line(err.value)


def test_a_model_reads_the_files_it_names_from_its_own_folder_of_the_archive(corpus: Path) -> None:
    from sidecar_thumbs.mesh.archive import sibling_reader

    data = _zip(
        [
            ("kit/obj/box.obj", b"mtllib box.mtl\n"),
            ("kit/obj/box.mtl", b"newmtl red\nKd 1 0 0\n"),
            ("kit/other.mtl", b"newmtl other\n"),
            ("secret.mtl", b"x"),
        ]
    )
    archive = open_archive(data, "zip", Budget(1 << 20), DEFAULT_LIMITS)
    entry = next(e for e in archive.entries if e.name == "kit/obj/box.obj")
    read = sibling_reader(archive, entry)
    assert read("box.mtl") == b"newmtl red\nKd 1 0 0\n"
    assert read("./box.mtl") == b"newmtl red\nKd 1 0 0\n"
    for name in ("../other.mtl", "../../secret.mtl", "/secret.mtl", "missing.mtl", "", ".."):
        assert read(name) is None, name


def test_an_undecodable_largest_picture_gives_way_to_the_next() -> None:
    small = io.BytesIO()
    picture = Image.new("RGB", (40, 20), (10, 200, 10))
    picture.paste((200, 10, 10), (0, 0, 20, 20))  # two colours: a flat one counts as blank
    picture.save(small, "PNG")
    thumb = _thumb(_zip([("images/big.png", b"\x89PNG not really" * 1000), ("images/ok.png", small.getvalue())]))
    assert thumb.source == "embedded" and _opaque(thumb.png).any()


@needs_7z
def test_a_zip_whose_models_are_in_a_7z_waits_for_the_7z_extra(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inner = (corpus / "zip" / "constructed__model-site-download.7z").read_bytes()
    data = _zip([("download.7z", inner), ("README.txt", b"see inside")])
    assert _thumb(data).triangles == 802
    monkeypatch.setitem(sys.modules, "py7zr", None)
    with pytest.raises(MissingExtraError, match=r"needs the \[7z\] extra"):
        _thumb(data)


def test_a_blank_picture_is_never_an_archive_thumbnail() -> None:
    flat = io.BytesIO()
    Image.new("RGB", (40, 20), (10, 200, 10)).save(flat, "PNG")
    with pytest.raises(NoGeometryError, match="no model or picture"):
        _thumb(_zip([("images/flat.png", flat.getvalue())]))


def test_an_obj_inside_reads_its_mtl_from_its_own_folder_of_the_archive(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sidecar_thumbs.render.archive_picture as ap

    asked: list[tuple[str, bool]] = []
    real = ap.sibling_reader

    def spying(archive, entry):  # type: ignore[no-untyped-def]
        read = real(archive, entry)

        def spy(name: str) -> bytes | None:
            data = read(name)
            asked.append((name, data is not None))
            return data

        return spy

    monkeypatch.setattr(ap, "sibling_reader", spying)
    obj = (corpus / "obj" / "tinyobj__cornell_box.obj").read_bytes()
    mtl = (corpus / "obj" / "cornell_box.mtl").read_bytes()
    thumb = _thumb(_zip([("kit/box.obj", obj), ("kit/cornell_box.mtl", mtl)]))
    assert thumb.source == "rendered" and thumb.triangles
    assert ("cornell_box.mtl", True) in asked
