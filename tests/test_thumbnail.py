"""Every real model in the corpus gets a good thumbnail: non-empty, centred, filling most of the frame;
3MF slicer pictures are used when present and recorded as such; bad files fail with one line."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from corpus_paths import corpus_files, corpus_sweep
from PIL import Image

from sidecar_thumbs.errors import ModelError, NoGeometryError
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.thumbnail import ThumbnailOptions, make_thumbnail
from sidecar_thumbs.types import ThumbSource

RENDER_ONLY = ThumbnailOptions(render=RenderOptions(size=128), use_embedded=False)
NO_GEOMETRY = {"3mfsamples__pyramid.3mf"}  # a beam lattice: nothing to draw
# Files whose picture is thin or flat by nature (a single triangle seen edge-on, a flat plate):
# they must be visible and centred, but may fill less of the square.
THIN = {"assimp__triangle_with_empty_solid.stl", "assimp__triangle_with_two_solids.stl", "trimesh__soup.stl"}


def _alpha_box(png: bytes) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    with Image.open(io.BytesIO(png)) as im:
        a = np.asarray(im.convert("RGBA"))[..., 3]
    ys, xs = np.nonzero(a > 16)
    return a, (int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max()))


@pytest.mark.parametrize(
    "path", corpus_sweep(corpus_files("stl-binary", "stl-ascii", "3mf"), also=[*NO_GEOMETRY, "trimesh__soup.stl"])
)
def test_every_corpus_model_renders_centred_and_filling_the_frame(path: Path) -> None:
    if path.name in NO_GEOMETRY:
        with pytest.raises(NoGeometryError):
            make_thumbnail(path, RENDER_ONLY)
        return
    thumb = make_thumbnail(path, RENDER_ONLY)
    assert thumb.source is ThumbSource.RENDERED and thumb.triangles and thumb.triangles > 0
    alpha, (x0, x1, y0, y1) = _alpha_box(thumb.png)
    size = alpha.shape[0]
    assert alpha.shape == (128, 128)
    assert alpha[0, 0] == alpha[0, -1] == alpha[-1, 0] == alpha[-1, -1] == 0  # transparent background
    extent = max(x1 - x0, y1 - y0) + 1
    assert extent >= (0.5 if path.name in THIN else 0.8) * size, f"fills only {extent}px of {size}"
    # centred: the margins on opposite sides differ by a few pixels at most
    assert abs(x0 - (size - 1 - x1)) <= 4 and abs(y0 - (size - 1 - y1)) <= 4


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("prusaslicer__chess.3mf", ThumbSource.EMBEDDED),  # a PrusaSlicer project's picture
        ("lib3mf__Thumbnail_Package.3mf", ThumbSource.EMBEDDED),  # lib3mf's thumbnail sample
        ("lib3mf__WagonWithWheels.3mf", ThumbSource.RENDERED),  # no picture: drawn
    ],
)
def test_slicer_picture_is_used_when_present_and_the_sidecar_says_so(
    corpus: Path, name: str, source: ThumbSource
) -> None:
    thumb = make_thumbnail(corpus / "3mf" / name, ThumbnailOptions(render=RenderOptions(size=128), use_embedded=True))
    assert thumb.source is source
    with Image.open(io.BytesIO(thumb.png)) as im:
        assert im.size == (128, 128)
        assert im.text["X-SidecarThumbs::Source"] == thumb.source


@pytest.mark.integration  # every corpus 3MF, the big ones without a picture drawn: a corpus sweep
def test_slicer_3mf_uses_its_embedded_picture_and_says_so(corpus: Path) -> None:
    embedded = []
    for path in corpus_files("3mf"):
        if path.name in NO_GEOMETRY:
            continue
        thumb = make_thumbnail(path, ThumbnailOptions(render=RenderOptions(size=128), use_embedded=True))
        with Image.open(io.BytesIO(thumb.png)) as im:
            assert im.size == (128, 128)
            assert im.text["X-SidecarThumbs::Source"] == thumb.source
        if thumb.source is ThumbSource.EMBEDDED:
            embedded.append(path.name)
    # PrusaSlicer and Bambu projects and lib3mf's thumbnail sample carry a picture.
    assert any(n.startswith("prusaslicer__") for n in embedded)
    assert "lib3mf__Thumbnail_Package.3mf" in embedded


@pytest.mark.parametrize("path", corpus_files("bad"), ids=lambda p: p.name)
def test_bad_files_render_or_fail_with_one_line(path: Path) -> None:
    try:
        thumb = make_thumbnail(path, RENDER_ONLY)
    except ModelError as exc:
        assert exc.message and "\n" not in exc.message
        return
    _, (x0, x1, y0, y1) = _alpha_box(thumb.png)  # lenient-readable ones still draw something
    assert x1 > x0 and y1 > y0
