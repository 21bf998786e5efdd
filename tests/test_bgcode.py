"""Binary G-code: every block's structure and CRC-32 checked, the largest good picture shown, a file
whose pictures are damaged drawn from its G-code (plain, MeatPack, deflate, heatshrink), anything
else broken refused with one line and bounded memory."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from corpus_paths import CORPUS, REPO_ROOT
from gcode_builders import bgcode_file, gcode_block, meta_block, picture_block, png_bytes, tower_gcode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar_thumbs.errors import BadModelError, LimitExceededError, ModelError
from sidecar_thumbs.mesh.bgcode import GCODE, PRINTER_METADATA, THUMBNAIL, read_bgcode
from sidecar_thumbs.mesh.bgcode_codecs import heatshrink_decode, meatpack_decode
from sidecar_thumbs.mesh.gcode import find_gcode_picture, load_gcode_bytes
from sidecar_thumbs.mesh.jit import COMPILED
from sidecar_thumbs.mesh.toolpath import scan_toolpath
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.thumbnail import ThumbnailOptions, make_thumbnail
from sidecar_thumbs.types import ThumbSource

EMBEDDED = ThumbnailOptions(render=RenderOptions(size=96))


def _bgcode(corpus: Path, name: str) -> bytes:
    return (corpus / "bgcode" / name).read_bytes()


def test_largest_good_picture_of_the_corpus_files(corpus: Path) -> None:
    expected = {
        "gcodenom__benchy2-mk4s.bgcode": ("PNG", 640, 480),
        "libbgcode__mini_cube_ps2.8.1.bgcode": ("QOI", 313, 173),
        "libbgcode__mini_cube_b.bgcode": ("PNG", 220, 124),
        "buddy__test_binary_meatpack.bgcode": ("PNG", 440, 240),
    }
    for name, (fmt, w, h) in expected.items():
        picture = find_gcode_picture(_bgcode(corpus, name))
        assert picture is not None and (picture.format, picture.width, picture.height) == (fmt, w, h), name


def test_file_metadata_is_read(corpus: Path) -> None:
    bg = read_bgcode(_bgcode(corpus, "gcodenom__benchy2-mk4s.bgcode"))
    assert bg.metadata()["Producer"].startswith("PrusaSlicer 2.9")
    assert bg.metadata(PRINTER_METADATA)  # deflate-compressed in newer files; read all the same


def test_meatpack_and_heatshrink_decode_to_the_same_moves_as_plain_gcode(corpus: Path) -> None:
    plain = read_bgcode(_bgcode(corpus, "buddy__test_binary_no_compression.bgcode"))
    packed = read_bgcode(_bgcode(corpus, "buddy__test_binary_meatpack.bgcode"))
    a = scan_toolpath(b"".join(plain.gcode_text()), 200_000).segments
    b = scan_toolpath(b"".join(packed.gcode_text()), 200_000).segments
    assert len(a) > 10_000 and np.array_equal(a, b)
    text = b"".join(read_bgcode(_bgcode(corpus, "libbgcode__mini_cube_b.bgcode")).gcode_text())
    assert b"G1X" in text and b";LAYER_CHANGE" in text  # heatshrink 12/4 + MeatPack keeping comments


def test_toolpath_of_binary_gcode_block_by_block_equals_the_joined_text(corpus: Path) -> None:
    bg = read_bgcode(_bgcode(corpus, "gcodenom__benchy2-mk4s.bgcode"))
    triangles, kind = load_gcode_bytes(bg.data)
    joined = scan_toolpath(b"".join(bg.gcode_text()), 150_000)
    assert kind == "bgcode" and len(triangles) > 8 * 1000 and len(joined.segments) > 1000


def _damage(data: bytes, block_type: int, which: int = -1) -> bytes:
    """Flip one data byte of a block of ``block_type`` (the ``which``-th of them)."""
    block = [b for b in read_bgcode(data).blocks if b.type == block_type][which]
    out = bytearray(data)
    out[(block.start + block.end) // 2] ^= 0x55
    return bytes(out)


def test_damaged_largest_picture_falls_back_to_the_next(corpus: Path) -> None:
    data = _damage(_bgcode(corpus, "buddy__test_binary_meatpack.bgcode"), THUMBNAIL)
    picture = find_gcode_picture(data)
    assert picture is not None and (picture.width, picture.height) == (313, 173)


def test_all_pictures_damaged_falls_back_to_the_toolpath(tmp_path: Path, corpus: Path) -> None:
    data = _bgcode(corpus, "libbgcode__mini_cube_ps2.8.1.bgcode")
    for i in range(2):
        data = _damage(data, THUMBNAIL, i)
    path = tmp_path / "damaged pictures.bgcode"
    path.write_bytes(data)
    thumb = make_thumbnail(path, EMBEDDED)
    assert thumb.source == ThumbSource.RENDERED and thumb.triangles


def test_damaged_gcode_block_is_refused_even_with_good_pictures(tmp_path: Path, corpus: Path) -> None:
    path = tmp_path / "bad.bgcode"
    path.write_bytes(_damage(_bgcode(corpus, "libbgcode__mini_cube_b.bgcode"), GCODE, 3))
    for options in (EMBEDDED, ThumbnailOptions(gcode_picture=False)):
        with pytest.raises(BadModelError, match=r"block \d+ \(G-code\) fails its CRC-32 check"):
            make_thumbnail(path, options)


def test_binary_gcode_named_gcode_is_read_by_its_magic(tmp_path: Path, corpus: Path) -> None:
    path = tmp_path / "binary.gcode"
    path.write_bytes(_bgcode(corpus, "libbgcode__mini_cube_b.bgcode"))
    assert make_thumbnail(path, EMBEDDED).source == ThumbSource.EMBEDDED
    assert make_thumbnail(path, ThumbnailOptions(gcode_picture=False)).source == ThumbSource.RENDERED


def _good() -> list[bytes]:
    return [meta_block(), picture_block(png_bytes(40, 30), 40, 30), gcode_block(tower_gcode(layers=3))]


def test_built_file_reads_and_renders(tmp_path: Path) -> None:
    data = bgcode_file(*_good())
    assert find_gcode_picture(data) is not None
    assert load_gcode_bytes(data)[1] == "bgcode"


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("no magic", b"GCDX" + bytes(20), "no GCDE header"),
        ("version 2", b"GCDE" + struct.pack("<IH", 2, 1), "version 2"),
        ("cut header", bgcode_file(*_good())[:-3] + b"\x01\x00", "cut off|past the end"),
        ("size past end", bgcode_file(meta_block(), gcode_block(b"G1 X1 E1\n", size=1 << 31)), "past the end"),
        ("cut file", bgcode_file(*_good())[:-40], "past the end"),
        ("unknown type", bgcode_file(meta_block(kind=9)), "unknown type 9"),
        ("unknown compression", bgcode_file(gcode_block(b"x", compression=7)), "unknown compression 7"),
        ("bad metadata crc", bgcode_file(meta_block())[:-1] + b"\x00", "fails its CRC-32"),
        ("nothing inside", bgcode_file(meta_block()), "neither G-code nor thumbnail"),
    ],
)
def test_broken_structure_is_refused_with_one_line(name: str, data: bytes, message: str) -> None:
    for attempt in (find_gcode_picture, load_gcode_bytes):
        with pytest.raises(ModelError, match=message) as info:
            attempt(data, binary=True)
        assert "\n" not in info.value.message


def test_text_named_bgcode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "text.bgcode"
    path.write_bytes(tower_gcode())
    with pytest.raises(BadModelError, match="no GCDE header"):
        make_thumbnail(path, EMBEDDED)


def test_decompression_bomb_is_refused_with_bounded_memory() -> None:
    bomb = zlib.compress(b"G1 X1 E1\n" * (8 << 20), 9)  # 72 MiB of G-code in ~70 KiB
    data = bgcode_file(meta_block(), gcode_block(bomb, compression=1, size=1 << 20))  # claims 1 MiB
    tracemalloc.start()
    with pytest.raises(BadModelError, match="other than its declared"):
        load_gcode_bytes(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # the toolpath buffer (4 MiB for the default 150k segments) plus the 1 MiB the block declared
    assert peak < 10 * 1024 * 1024
    claims_4gib = bgcode_file(meta_block(), gcode_block(b"\x00" * 100, compression=3, size=0xFFFFFFFF))
    with pytest.raises(LimitExceededError):
        load_gcode_bytes(claims_4gib)


def _bits(text: str) -> bytes:
    """A bit string, most significant bit first, padded with zeros to whole bytes."""
    return int(text.ljust(-(-len(text) // 8) * 8, "0"), 2).to_bytes(-(-len(text) // 8), "big")


@pytest.mark.parametrize("window", [11, 12])
def test_heatshrink_literals_and_back_references(window: int) -> None:
    # "ab", then copy 3 bytes from distance 2 ("aba"), then "c": window bits (distance - 1), 4 bits (count - 1)
    bits = "1" + format(ord("a"), "08b") + "1" + format(ord("b"), "08b")
    bits += "0" + format(1, f"0{window}b") + format(2, "04b") + "1" + format(ord("c"), "08b")
    assert heatshrink_decode(_bits(bits), 6, window) == b"ababac"


def test_heatshrink_never_writes_past_the_declared_size() -> None:
    # A literal "A" then a back-reference of 16 bytes at distance 1, repeated: more than declared.
    stream = _bits("1" + format(ord("A"), "08b") + ("0" + "0" * 12 + "1111") * 20)
    assert heatshrink_decode(stream, 1 + 16 * 20, 12) == b"A" * 321
    assert heatshrink_decode(stream, 100, 12) is None  # more than declared: refused, nothing written past
    assert heatshrink_decode(stream, 400, 12) is None  # fewer than declared


def test_meatpack_unpacks_pairs_whole_bytes_and_commands() -> None:
    # enable packing; "G1" = G(13) 1(1) -> 0x1D; " X" = space(11) X(14) -> 0xEB; "Y" unpackable with "5" -> 0x5F 'Y'
    packed = bytes([255, 255, 251, 0x1D, 0xEB, 0x5F]) + b"Y" + bytes([0xC1])  # "1\n"
    assert meatpack_decode(packed) == b"G1 XY51\n"
    no_spaces = bytes([255, 255, 251, 255, 255, 247, 0xB1])  # "1E" in no-spaces mode
    assert meatpack_decode(no_spaces) == b"1E"


@pytest.mark.integration
@pytest.mark.skipif(not COMPILED, reason="numba is not installed: only the Python kernels exist")
def test_python_codecs_decode_the_same_text_as_numba(corpus: Path) -> None:
    path = corpus / "bgcode" / "libbgcode__mini_cube_ps2.8.1.bgcode"
    code = (
        "import sys, hashlib\n"
        "from sidecar_thumbs.mesh.jit import COMPILED\n"
        "from sidecar_thumbs.mesh.bgcode import read_bgcode\n"
        "assert not COMPILED\n"
        "print(hashlib.sha256(b''.join(read_bgcode(open(sys.argv[1], 'rb').read()).gcode_text())).hexdigest())\n"
    )
    env = {**os.environ, "SIDECAR_THUMBS_NO_NUMBA": "1", "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, check=True, timeout=240)
    import hashlib

    expected = hashlib.sha256(b"".join(read_bgcode(path.read_bytes()).gcode_text())).hexdigest()
    assert out.stdout.decode().strip() == expected


def _recrc(data: bytearray) -> bytes:
    """Recompute every block's CRC-32, so that damage reaches the decoders instead of the checksum."""
    pos = 10
    while pos < len(data):
        kind, compression, size = struct.unpack_from("<HHI", data, pos)
        stored = struct.unpack_from("<I", data, pos + 8)[0] if compression else size
        end = pos + (12 if compression else 8) + (6 if kind == THUMBNAIL else 2) + stored
        struct.pack_into("<I", data, end, zlib.crc32(data[pos:end]))
        pos = end + 4
    return bytes(data)


MINI = CORPUS / "bgcode" / "libbgcode__mini_cube_ps2.8.1.bgcode"  # heatshrink + MeatPack, QOI pictures


@pytest.mark.skipif(not MINI.is_file(), reason="shared corpus not found")
@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_garbage_inside_blocks_with_good_checksums_fails_with_one_line(data: st.DataObject) -> None:
    original = MINI.read_bytes()
    blocks = read_bgcode(original).blocks
    out = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        block = data.draw(st.sampled_from(blocks))
        if block.end > block.start:
            at = data.draw(st.integers(block.start, block.end - 1))
            out[at] = data.draw(st.integers(0, 255))
    damaged = _recrc(out)
    for attempt in (find_gcode_picture, load_gcode_bytes):
        try:
            result = attempt(damaged, binary=True)
        except ModelError as exc:
            assert exc.message and "\n" not in exc.message
            continue
        if attempt is load_gcode_bytes:
            assert np.isfinite(result[0]).all()


def test_millions_of_empty_blocks_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from sidecar_thumbs.mesh import bgcode

    monkeypatch.setattr(bgcode, "MAX_BLOCKS", 1000)
    data = bgcode_file(*[gcode_block(b"")] * 1001)
    with pytest.raises(LimitExceededError, match="more than 1000 blocks"):
        load_gcode_bytes(data)
    assert load_gcode_bytes(bgcode_file(*[gcode_block(b"")] * 999, gcode_block(tower_gcode())))[1] == "bgcode"


def test_deflated_gcode_blocks_draw_the_same_toolpath_as_plain_ones() -> None:
    text = tower_gcode(layers=5, solid=True)
    half = text.index(b"\n", len(text) // 2) + 40  # split inside a line: it continues in the next block
    plain = load_gcode_bytes(bgcode_file(meta_block(), gcode_block(text)))[0]
    deflated = bgcode_file(meta_block(), gcode_block(text[:half], compression=1), gcode_block(text[half:], 1))
    assert np.array_equal(load_gcode_bytes(deflated)[0], plain)
