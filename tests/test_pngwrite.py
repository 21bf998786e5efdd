"""Our PNG writer: Pillow reads back the same pixels and text, in the order given."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sidecar_thumbs.files.pngwrite import encode_rgba_png
from sidecar_thumbs.files.sidecar import encode_png


def _picture() -> np.ndarray:
    rng = np.random.default_rng(3)
    img = np.zeros((37, 53, 4), dtype=np.uint8)
    img[5:30, 8:45] = rng.integers(0, 256, (25, 37, 4), dtype=np.uint8)
    return img


def test_pixels_and_text_round_trip_through_pillow() -> None:
    img = _picture()
    data = encode_rgba_png(img, [("Software", "sidecar-thumbs"), ("Thumb::URI", "file:///a%20b.stl"), ("Zoë", "ü")])
    with Image.open(io.BytesIO(data)) as im:
        im.verify()
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGBA"
        assert np.array_equal(np.asarray(im), img)
        assert im.text == {"Software": "sidecar-thumbs", "Thumb::URI": "file:///a%20b.stl", "Zoë": "ü"}


def test_text_that_is_not_latin_1_goes_into_an_itxt_chunk() -> None:
    data = encode_rgba_png(_picture(), [("Title", "模型 Δ")])
    assert b"iTXtTitle" in data
    with Image.open(io.BytesIO(data)) as im:
        assert im.text["Title"] == "模型 Δ"


def test_software_chunk_comes_right_after_the_header() -> None:
    data = encode_png(_picture(), {"A": "1", "Software": "sidecar-thumbs x", "B": "2"})
    assert data[8 + 25 + 4 : 8 + 25 + 8 + len("Software")] == b"tEXtSoftware"


def test_compressed_about_as_well_as_pillow_did_on_real_thumbnails() -> None:
    from bench import meshgen
    from sidecar_thumbs.render import RenderOptions, render_triangles

    img = render_triangles(meshgen.torus_knot(20_000), RenderOptions(size=256))
    buf = io.BytesIO()
    Image.fromarray(img, "RGBA").save(buf, "PNG", compress_level=3)  # the old setting
    assert len(encode_rgba_png(img, [])) <= 1.10 * len(buf.getvalue())


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 4), np.float32)])
def test_only_rgba_bytes_are_accepted(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        encode_rgba_png(bad, [])
