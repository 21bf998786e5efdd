"""Thumbnails in the model's own colours: 3MF materials, slicer projects and paint, the look rules."""

from __future__ import annotations

import colorsys
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from mesh_builders import make_3mf, model_xml, unit_cube_mesh
from PIL import Image

from sidecar_thumbs.errors import NoGeometryError
from sidecar_thumbs.mesh.load import load_mesh_bytes
from sidecar_thumbs.mesh.paint import dominant_state
from sidecar_thumbs.mesh.threemf import load_3mf_mesh
from sidecar_thumbs.render import RenderOptions, render_triangles
from sidecar_thumbs.render.colors import LUMA_MAX, LUMA_MIN, pack_colors, readable
from sidecar_thumbs.render.thumbnail import ThumbnailOptions, make_thumbnail_from_bytes
from sidecar_thumbs.types import ThumbSource

SOURCE_EMBEDDED, SOURCE_RENDERED = ThumbSource.EMBEDDED, ThumbSource.RENDERED

MAT = "http://schemas.microsoft.com/3dmanufacturing/material/2015/02"
OURS = ThumbnailOptions(render=RenderOptions(size=128), use_embedded=False)


def _png_pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        rgba = np.asarray(im.convert("RGBA"))
    return rgba[rgba[..., 3] == 255][:, :3]


def _hue(rgb: tuple[int, int, int] | np.ndarray) -> tuple[float, float]:
    h, _, s = colorsys.rgb_to_hls(*(np.asarray(rgb, float) / 255.0))
    return h * 360.0, s


def _shows_hue(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: float = 14.0) -> bool:
    """Some opaque, saturated pixel has the colour's hue (shading changes lightness, not hue)."""
    hsv = np.array([colorsys.rgb_to_hls(*(p / 255.0)) for p in pixels[:: max(1, len(pixels) // 4000)]])
    want, _ = _hue(readable(np.array([colour], np.uint8))[0])
    diff = np.abs((hsv[:, 0] * 360.0 - want + 180.0) % 360.0 - 180.0)
    return bool(((diff <= tolerance) & (hsv[:, 2] > 0.2)).any())


def _file_colours_3mf(path: Path) -> list[tuple[int, int, int]]:
    """The colours a 3MF names, read independently of the loader (plain regular expressions)."""
    with zipfile.ZipFile(path) as z:
        out = []
        for name in z.namelist():
            if name.endswith(".model"):
                text = z.read(name).decode("utf-8", "replace")
                values = re.findall(r'(?:displaycolor|color|value)="#([0-9A-Fa-f]{6})', text)
                out += [tuple(int(v[i : i + 2], 16) for i in (0, 2, 4)) for v in values]
            if name.endswith("project_settings.config"):
                values = json.loads(z.read(name))["filament_colour"]
                out += [tuple(int(v[1 + i : 3 + i], 16) for i in (0, 2, 4)) for v in values]
    return out  # type: ignore[return-value]


def _chromatic(colours: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    return [c for c in set(colours) if _hue(c)[1] > 0.3]


COLOURED_3MF = [
    "3mfsamples__dodeca_chain_loop_color.3mf",
    "3mfsamples__pyramid_vertexcolor.3mf",
    "3mfsamples__rhombicuboctahedron_color.3mf",
    "lib3mf__Color_093.3mf",
    "boxturtle__tray_multicolor.3mf",
]


@pytest.mark.parametrize("name", COLOURED_3MF)
def test_coloured_3mf_shows_its_colours(corpus: Path, name: str) -> None:
    path = corpus / "3mf" / name
    thumb = make_thumbnail_from_bytes(path.read_bytes(), name, 0, 0, ThumbnailOptions(use_embedded=False))
    assert thumb.source == SOURCE_RENDERED
    pixels = _png_pixels(thumb.png)
    wanted = _chromatic(_file_colours_3mf(path))
    assert wanted, "the file names chromatic colours"
    shown = [c for c in wanted if _shows_hue(pixels, c)]
    # Every colour of the file that faces the camera shows; at least all but one (a colour can be on
    # hidden faces only) and never fewer than two for a multi-colour file.
    assert len(shown) >= max(min(2, len(wanted)), len(wanted) - 1), (wanted, shown)


def test_bambu_paint_takes_the_dominant_filament(corpus: Path) -> None:
    mesh = load_3mf_mesh((corpus / "3mf" / "boxturtle__tray_multicolor.3mf").read_bytes())
    cols = mesh.colors_for((0, 0, 0))
    assert cols is not None and cols.shape == (mesh.triangle_count, 3)  # one colour per triangle
    unique, counts = np.unique(cols, axis=0, return_counts=True)
    assert {tuple(u) for u in unique.tolist()} == {(0x1E, 0x84, 0x51), (0xB9, 0xA4, 0x6A)}
    # The body is the object's filament; the painted logo (1,048 triangles) the second one.
    assert counts.min() == 1048


def test_plain_stl_looks_as_before(corpus: Path) -> None:
    path = corpus / "stl-binary" / "voron2__Filament_Card.stl"
    a = make_thumbnail_from_bytes(path.read_bytes(), path.name, 0, 0, OURS)
    b = make_thumbnail_from_bytes(
        path.read_bytes(), path.name, 0, 0, ThumbnailOptions(render=RenderOptions(size=128), model_colors=False)
    )
    assert np.array_equal(_png_pixels(a.png), _png_pixels(b.png))


def test_model_colors_off_draws_the_configured_colour(corpus: Path) -> None:
    data = (corpus / "3mf" / "3mfsamples__rhombicuboctahedron_color.3mf").read_bytes()
    off = ThumbnailOptions(render=RenderOptions(size=128, color=(200, 40, 40)), model_colors=False)
    pixels = _png_pixels(make_thumbnail_from_bytes(data, "x.3mf", 0, 0, off).png)
    hues = {round(_hue(p)[0]) for p in pixels[::50] if _hue(p)[1] > 0.2}
    assert hues and all(h <= 5 or h >= 355 for h in hues)
    assert "colors=0" in off.describe() and "colors=1" in OURS.describe()


def test_materials_extension_object_and_triangle_properties() -> None:
    res = (
        '<m:basematerials id="5"><m:base name="red" displaycolor="#FF0000"/>'
        '<m:base name="green" displaycolor="#00FF00FF"/></m:basematerials>'
        + '<object id="1" type="model" pid="5" pindex="1">'
        + unit_cube_mesh().replace(
            '<triangle v1="0" v2="2" v3="1"/>', '<triangle v1="0" v2="2" v3="1" pid="5" p1="0"/>'
        )
        + "</object>"
    )
    data = make_3mf(model_xml(res, '<item objectid="1"/>', extra_ns=f' xmlns:m="{MAT}"'))
    mesh = load_3mf_mesh(data)
    cols = mesh.colors_for((0, 0, 255))
    assert cols is not None and cols.shape == (12, 3)
    assert tuple(cols[0]) == (255, 0, 0)  # the triangle's own property
    assert all(tuple(c) == (0, 255, 0) for c in cols[1:])  # the object's default


def test_components_inherit_their_objects_property() -> None:
    res = (
        '<m:colorgroup id="7"><m:color color="#2040FF"/></m:colorgroup>'
        f'<object id="1" type="model">{unit_cube_mesh()}</object>'
        '<object id="2" type="model" pid="7" pindex="0"><components><component objectid="1"/></components></object>'
    )
    data = make_3mf(model_xml(res, '<item objectid="2"/>', extra_ns=f' xmlns:m="{MAT}"'))
    cols = load_3mf_mesh(data).colors_for((0, 0, 0))
    assert cols is not None and {tuple(c) for c in cols.reshape(-1, 3).tolist()} == {(0x20, 0x40, 0xFF)}


def test_bad_colour_data_never_fails_the_model() -> None:
    res = (
        '<m:colorgroup id="7"><m:color color="not a colour"/></m:colorgroup>'
        '<object id="1" type="model" pid="99" pindex="x">'
        + unit_cube_mesh().replace(
            '<triangle v1="0" v2="2" v3="1"/>', '<triangle v1="0" v2="2" v3="1" pid="7" p1="55"/>'
        )
        + "</object>"
    )
    data = make_3mf(model_xml(res, '<item objectid="1"/>', extra_ns=f' xmlns:m="{MAT}"'))
    mesh = load_3mf_mesh(data)
    assert mesh.triangle_count == 12
    assert mesh.face_colors is None or mesh.colors_for((1, 2, 3)) is not None


def test_uncoloured_3mf_has_no_colours() -> None:
    data = make_3mf(model_xml(f'<object id="1" type="model">{unit_cube_mesh()}</object>', '<item objectid="1"/>'))
    assert load_3mf_mesh(data).face_colors is None
    assert load_mesh_bytes(data, "x.3mf", colors=True).face_colors is None


@pytest.mark.parametrize(
    ("code", "state"),
    [("4", 1), ("8", 2), ("0C", 3), ("1C", 4), ("", 0), ("not hex", 0), ("4843", 1), ("3" + "8" * 4, 2)],
)
def test_paint_dominant_state(code: str, state: int) -> None:
    assert dominant_state(code) == state


def test_paint_never_loops_on_hostile_input() -> None:
    assert dominant_state("3" * 100_000) in (0, 1, 2, 3)


def test_readable_band_keeps_hue_and_lifts_black_and_white() -> None:
    rgb = np.array([[0, 0, 0], [255, 255, 255], [20, 10, 60], [92, 143, 219]], np.uint8)
    out = readable(rgb).astype(float)
    luma = out @ np.array([0.2126, 0.7152, 0.0722])
    assert (luma >= LUMA_MIN - 1).all() and (luma <= LUMA_MAX + 1).all()
    assert np.array_equal(out[3], rgb[3])  # already readable: unchanged
    assert abs(_hue(tuple(out[2].astype(int)))[0] - _hue((20, 10, 60))[0]) < 6


@pytest.mark.parametrize("per_corner", [False, True])
def test_numba_and_numpy_draw_the_same_colours(per_corner: bool) -> None:
    pytest.importorskip("numba")
    rng = np.random.default_rng(3)
    tri = rng.uniform(0, 10, (400, 3, 3)).astype(np.float32)
    cols = rng.integers(0, 255, (400, 3, 3) if per_corner else (400, 3), dtype=np.uint8)
    a = render_triangles(tri, RenderOptions(size=96, kernel="numba"), cols).astype(int)
    b = render_triangles(tri, RenderOptions(size=96, kernel="numpy"), cols).astype(int)
    assert np.abs(a - b).max() <= 2 and (np.abs(a - b) > 1).mean() < 0.01
    assert pack_colors(cols).shape == ((400, 3) if per_corner else (400, 1))


def test_slicer_picture_is_the_fallback_when_nothing_can_be_drawn() -> None:
    picture = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").save(picture, "PNG")
    lattice_only = model_xml('<object id="1" type="other">' + unit_cube_mesh() + "</object>", '<item objectid="1"/>')
    data = make_3mf(lattice_only, {"Metadata/thumbnail.png": picture.getvalue()})
    thumb = make_thumbnail_from_bytes(data, "x.3mf", 0, 0, OURS)
    assert thumb.source == SOURCE_EMBEDDED


def test_blank_slicer_picture_is_never_used() -> None:
    blank = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 40, 40)).save(blank, "PNG")
    drawable = make_3mf(
        model_xml(f'<object id="1" type="model">{unit_cube_mesh()}</object>', '<item objectid="1"/>'),
        {"Metadata/thumbnail.png": blank.getvalue()},
    )
    with_picture = ThumbnailOptions(render=RenderOptions(size=64), use_embedded=True)
    assert make_thumbnail_from_bytes(drawable, "x.3mf", 0, 0, with_picture).source == SOURCE_RENDERED
    nothing = make_3mf(
        model_xml('<object id="1" type="other">' + unit_cube_mesh() + "</object>", '<item objectid="1"/>'),
        {"Metadata/thumbnail.png": blank.getvalue()},
    )
    for options in (with_picture, OURS):
        with pytest.raises(NoGeometryError):
            make_thumbnail_from_bytes(nothing, "x.3mf", 0, 0, options)


EXAMPLE_COLOURS = {
    # The project's own examples (examples/make_examples.py) and the colours they were written with.
    "material blocks.obj": [(219, 41, 41), (250, 199, 31), (41, 107, 230)],
    "two colours.amf": [(26, 153, 89), (217, 89, 26)],
    "calibration plate.3mf": [(0xD6, 0x28, 0x28), (0x2A, 0x9D, 0x8F), (0x83, 0x38, 0xEC)],
    "painted gear (Bambu project).3mf": [(0xEF, 0x23, 0x3C)],
    "two colours.step": [(219, 41, 41), (41, 107, 230)],  # COLOUR_RGB 0.86 0.16 0.16 and 0.16 0.42 0.90
}


@pytest.mark.parametrize("name", sorted(EXAMPLE_COLOURS))
def test_example_models_show_their_colours(name: str) -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "models" / "colors" / name
    if name.endswith(".step"):
        pytest.importorskip("cascadio")
        path = path.parents[2] / "extras" / name
    thumb = make_thumbnail_from_bytes(
        path.read_bytes(), name, 0, 0, OURS, resolve_sibling=lambda n: (path.parent / n).read_bytes()
    )
    pixels = _png_pixels(thumb.png)
    for colour in EXAMPLE_COLOURS[name]:
        assert _shows_hue(pixels, colour), (name, colour)


def test_corpus_obj_takes_its_mtl_colours_and_amf_its_triangle_colours(corpus: Path) -> None:
    from sidecar_thumbs.render.thumbnail import make_thumbnail

    # The Cornell box seen from outside: white walls, and the red one (Kd 1 0 0 in cornell_box.mtl) facing us.
    box = _png_pixels(make_thumbnail(corpus / "obj" / "tinyobj__cornell_box.obj", OURS).png)
    assert _shows_hue(box, (255, 0, 0))
    tetra = _png_pixels(make_thumbnail(corpus / "amf" / "openscad__tetra_multicolor.amf", OURS).png)
    hues = {round(_hue(p)[0] / 20) for p in tetra[::7] if _hue(p)[1] > 0.3}
    assert len(hues) >= 2, hues


def _step_colours(path: Path) -> list[tuple[int, int, int]]:
    """The ``COLOUR_RGB`` values a STEP file names, read independently of the loader."""
    values = re.findall(rb"COLOUR_RGB\s*\(\s*'[^']*'\s*,([^)]*)\)", path.read_bytes())
    return [tuple(round(float(v) * 255) for v in value.split(b",")) for value in values]  # type: ignore[misc]


def test_glb_material_colours_become_srgb_triangle_colours() -> None:
    from mesh_builders import one_triangle_glb

    from sidecar_thumbs.mesh.glb import glb_triangles

    # OpenCASCADE writes COLOUR_RGB 0.8667 0.3216 0.1569 as the linear factor 0.7231 0.0844 0.0212.
    red = {"pbrMetallicRoughness": {"baseColorFactor": [0.7230551, 0.0843762, 0.0212190, 1.0]}}
    plain = {"name": "no base colour"}
    glb = one_triangle_glb({}, [{"material": 0}, {}, {"material": 1}, {"material": 7}], materials=[red, plain])
    tri, rgba = glb_triangles(glb, 100)
    assert tri.shape == (4, 3, 3) and rgba is not None
    assert rgba.tolist() == [[221, 82, 40, 255], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]  # bad index: no colour
    assert glb_triangles(one_triangle_glb({}, [{"material": 0}], materials=[plain]), 100)[1] is None


@pytest.mark.integration  # OpenCASCADE tessellates (about a second)
def test_step_xcaf_colours_show(corpus: Path) -> None:
    pytest.importorskip("cascadio")
    path = corpus / "step" / "cadquery__red_cube_blue_cylinder.step"
    mesh = load_mesh_bytes(path.read_bytes(), path.name)
    wanted = set(_step_colours(path))
    assert wanted == {(221, 82, 40), (59, 97, 180)}
    cols = mesh.colors_for((0, 0, 0))
    assert cols is not None and {tuple(c) for c in cols.tolist()} == wanted
    pixels = _png_pixels(make_thumbnail_from_bytes(path.read_bytes(), path.name, 0, 0, OURS).png)
    assert all(_shows_hue(pixels, c) for c in wanted)
    off = ThumbnailOptions(render=RenderOptions(size=128, color=(40, 200, 40)), model_colors=False)
    plain = _png_pixels(make_thumbnail_from_bytes(path.read_bytes(), path.name, 0, 0, off).png)
    assert not any(_shows_hue(plain, c) for c in wanted) and _shows_hue(plain, (40, 200, 40))


@pytest.mark.integration
def test_step_without_colours_keeps_the_default_colour(corpus: Path) -> None:
    pytest.importorskip("cascadio")
    path = corpus / "step" / "trimesh__base_interface_AP203.STEP"
    assert not _step_colours(path)
    assert load_mesh_bytes(path.read_bytes(), path.name).face_colors is None
    green = ThumbnailOptions(render=RenderOptions(size=128, color=(40, 200, 40)), use_embedded=False)
    pixels = _png_pixels(make_thumbnail_from_bytes(path.read_bytes(), path.name, 0, 0, green).png)
    assert _shows_hue(pixels, (40, 200, 40))
