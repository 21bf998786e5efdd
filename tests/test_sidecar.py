"""Sidecar naming, PNG metadata, atomic writes, and never touching a file we did not write."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sidecar_thumbs.files.atomic import atomic_write
from sidecar_thumbs.files.sidecar import (
    SOFTWARE,
    SidecarWriteError,
    encode_png,
    is_sidecar_name,
    metadata_for,
    model_name_for_sidecar,
    read_sidecar,
    sidecar_path_for,
    write_sidecar,
)


def _png(path: Path, *, size: int = 10, mtime_ns: int = 1_700_000_000_123_456_789, h: str = "ab" * 16) -> bytes:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[2:6, 2:6] = (200, 100, 50, 255)
    meta = metadata_for(path, size=size, mtime_ns=mtime_ns, content_hash=h, source="rendered", settings="s=1")
    return encode_png(rgba, meta)


def test_sidecar_name_is_hidden_beside_the_model() -> None:
    assert sidecar_path_for("/lib/a/Gear v2.stl") == Path("/lib/a/.Gear v2.stl.thumbnail.png")
    assert is_sidecar_name(".Gear v2.stl.thumbnail.png")
    assert not is_sidecar_name("Gear v2.stl.thumbnail.png")
    assert not is_sidecar_name(".thumbnail.png")
    assert model_name_for_sidecar(".Gear v2.stl.thumbnail.png") == "Gear v2.stl"


def test_sidecar_path_never_leaves_the_models_folder() -> None:
    for name in ["..", "a/../../b.stl", "x.stl"]:
        p = sidecar_path_for(Path("/lib/folder") / name)
        assert p.parent == (Path("/lib/folder") / name).parent


def test_metadata_round_trips_through_png(tmp_path: Path) -> None:
    model = tmp_path / "Büchse ☠.3mf"
    sidecar = sidecar_path_for(model)
    sidecar.write_bytes(_png(model))
    info = read_sidecar(sidecar)
    assert info is not None and info.ours and info.readable
    assert info.content_hash == "ab" * 16 and info.size == 10 and info.mtime_ns == 1_700_000_000_123_456_789
    assert info.source == "rendered" and info.settings == "s=1"
    with Image.open(sidecar) as im:
        assert im.text["Software"] == SOFTWARE
        assert im.text["Thumb::MTime"] == "1700000000"
        assert im.text["Thumb::Mimetype"] == "model/3mf"
        assert im.text["Thumb::URI"] == "./B%C3%BCchse%20%E2%98%A0.3mf"


def test_invalid_utf8_name_gets_an_ascii_uri(tmp_path: Path) -> None:
    name = os.fsdecode(b"bad\xffname.stl")
    meta = metadata_for(tmp_path / name, size=1, mtime_ns=1, content_hash="x", source="rendered", settings="")
    assert meta["Thumb::URI"] == "./bad%FFname.stl"


def test_corrupt_sidecar_is_ours_but_unreadable(tmp_path: Path) -> None:
    model = tmp_path / "m.stl"
    data = _png(model)
    sidecar = sidecar_path_for(model)
    sidecar.write_bytes(data[: len(data) - 20])  # truncated: IEND and part of IDAT gone
    info = read_sidecar(sidecar)
    assert info is not None and info.ours and not info.readable


def test_reading_the_header_only_gives_the_same_facts_as_decoding(tmp_path: Path) -> None:
    model = tmp_path / "m.stl"
    sidecar = sidecar_path_for(model)
    sidecar.write_bytes(_png(model))
    decoded, header = read_sidecar(sidecar), read_sidecar(sidecar, decode=False)
    assert decoded is not None and decoded.readable and (decoded.width, decoded.height) == (8, 8)
    assert header == decoded


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[:-20],  # truncated
        lambda d: d[:40] + bytes([d[40] ^ 0xFF]) + d[41:],  # a flipped byte in a header chunk
        lambda d: b"GIF89a" + d[6:],  # not a PNG at all
    ],
    ids=["truncated", "header-crc", "not-png"],
)
def test_a_damaged_sidecar_is_unreadable_either_way(tmp_path: Path, damage: object) -> None:
    model = tmp_path / "m.stl"
    sidecar = sidecar_path_for(model)
    sidecar.write_bytes(damage(_png(model)))  # type: ignore[operator]
    for decode in (True, False):
        info = read_sidecar(sidecar, decode=decode)
        assert info is not None and not info.readable, decode


def test_a_flipped_bit_in_the_pixels_is_found_only_by_decoding(tmp_path: Path) -> None:
    model = tmp_path / "m.stl"
    sidecar = sidecar_path_for(model)
    data = bytearray(_png(model))
    idat = data.index(b"IDAT")
    data[idat + 6] ^= 0x01  # inside the compressed pixels: the chunk's CRC no longer matches
    sidecar.write_bytes(bytes(data))
    decoded, header = read_sidecar(sidecar), read_sidecar(sidecar, decode=False)
    assert decoded is not None and not decoded.readable
    assert header is not None and header.readable  # the cheap read trusts what it does not read


def test_atomic_write_leaves_no_temp_file_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / ".x.thumbnail.png"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".x.thumbnail.png"]


def test_atomic_write_failure_removes_temp_and_keeps_old(tmp_path: Path) -> None:
    target = tmp_path / "t.png"
    target.write_bytes(b"old")

    with pytest.raises(TypeError):
        atomic_write(target, object())  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.png"]


def test_write_sidecar_refuses_to_replace_a_foreign_file(tmp_path: Path) -> None:
    model = tmp_path / "m.stl"
    model.write_bytes(b"x")
    foreign = sidecar_path_for(model)
    Image.new("RGBA", (4, 4)).save(foreign)  # a PNG, but not ours (no Software key)
    before = foreign.read_bytes()
    with pytest.raises(SidecarWriteError, match="not written by sidecar-thumbs"):
        write_sidecar(model, _png(model))
    assert foreign.read_bytes() == before


def test_write_sidecar_does_not_follow_a_symlink_planted_at_the_sidecar_name(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    lib = tmp_path / "lib"
    lib.mkdir()
    model = lib / "m.stl"
    model.write_bytes(b"x")
    sidecar_path_for(model).symlink_to(outside)
    with pytest.raises(SidecarWriteError):
        write_sidecar(model, _png(model))
    assert outside.read_bytes() == b"precious"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_write_sidecar_in_read_only_folder_is_a_clear_failure(tmp_path: Path) -> None:
    model = tmp_path / "m.stl"
    model.write_bytes(b"x")
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(SidecarWriteError, match="permission denied"):
            write_sidecar(model, _png(model))
    finally:
        tmp_path.chmod(0o755)
