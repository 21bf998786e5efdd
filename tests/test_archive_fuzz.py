"""Hostile archives by mutation: a seeded Hypothesis fuzzer over small zips (and 7z when py7zr is
there). Invariant: a thumbnail, or a one-line ModelError; never another exception, never a retry."""

from __future__ import annotations

import functools
import io
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from sidecar_thumbs.errors import ModelError
from sidecar_thumbs.files.formats import extra_available
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.thumbnail import ThumbnailOptions, make_thumbnail_from_bytes

OPTIONS = ThumbnailOptions(render=RenderOptions(size=32, kernel="numpy"))


def _stl() -> bytes:
    tri = np.array([[[0, 0, 0], [10, 0, 0], [0, 10, 0]], [[0, 0, 0], [0, 10, 0], [0, 0, 10]]], dtype="<f4")
    rec = np.zeros(2, dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    rec["v"] = tri
    return b"fuzz".ljust(80, b"\0") + np.uint32(2).tobytes() + rec.tobytes()


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def _seed_zip(method: int) -> bytes:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", method) as z:
        z.writestr("inner/part.stl", _stl())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        z.writestr("files/a.stl", _stl())
        z.writestr("files/b.STL", _stl())
        z.writestr("images/preview.png", _png())
        z.writestr("more.zip", inner.getvalue())
        z.writestr("README.txt", b"hello")
    return buf.getvalue()


SEEDS = [_seed_zip(zipfile.ZIP_DEFLATED), _seed_zip(zipfile.ZIP_STORED)]


def _check(data: bytes, name: str) -> None:
    try:
        thumb = make_thumbnail_from_bytes(data, name, len(data), 0, OPTIONS)
    except ModelError as exc:
        assert exc.message and "\n" not in exc.message and not exc.transient, exc.message
        return
    assert thumb.png.startswith(b"\x89PNG")


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.integers(0, 3))
        pos = draw(st.integers(0, len(data) - 1))
        if kind == 0:  # flip a byte
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == 1:  # a 32-bit field set to something extreme (sizes, offsets, counts)
            value = draw(st.sampled_from([0, 1, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, len(data)]))
            data[pos : pos + 4] = value.to_bytes(4, "little")
        elif kind == 2:  # cut
            del data[pos:]
            if not data:
                data = bytearray(b"PK")
        else:  # duplicate a slice
            end = min(len(data), pos + draw(st.integers(1, 64)))
            data[pos:pos] = data[pos:end]
    return bytes(data)


@seed(15)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_zips_give_a_thumbnail_or_one_line(data: bytes) -> None:
    _check(data, "Fuzz.zip")


@functools.cache
def _seed_7z() -> bytes:
    # Built once: py7zr stamps the time into the archive, and Hypothesis needs the same seed each run.
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writestr(_stl(), "files/a.stl")
        z.writestr(_png(), "images/p.png")
    return buf.getvalue()


@seed(15)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_7z_give_a_thumbnail_or_one_line(data: st.DataObject) -> None:
    if not extra_available("7z"):
        return
    raw = bytearray(_seed_7z())
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] ^= data.draw(st.integers(1, 255))
    _check(bytes(raw), "Fuzz.7z")
