"""The winding hint (``Mesh.winding``): the faces of a 3MF and of an STL are wound outward by their specs, so
the renderer may skip the enclosed-volume pass that finds out which faces look at the camera. The hint
decides only the speed: right, wrong or absent, every mesh draws the same picture, to the last bit; and
the 3MF reader gives it only as far as the build's placements keep it (a mirror turns outward into inward)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from test_render_indexed import MESHES, _arrays, _colours

from bench import meshgen
from sidecar_thumbs.mesh.stl import load_stl_mesh
from sidecar_thumbs.mesh.threemf import load_3mf_mesh
from sidecar_thumbs.render import RenderOptions, render_indexed, render_mesh, render_triangles, resolve_kernel
from sidecar_thumbs.render.camera import VIEW_XY, shading_for

pytestmark = [
    pytest.mark.skipif(resolve_kernel("auto") != "numba", reason="numba not installed"),
    pytest.mark.timeout(300, method="thread"),
]


@pytest.mark.parametrize("colours", [None, "corner"])
@pytest.mark.parametrize("name", sorted(MESHES))
def test_any_winding_hint_draws_the_picture_of_one_pass_over_every_face(name: str, colours: str | None) -> None:
    from sidecar_thumbs.render import kernel_numba
    from sidecar_thumbs.render.colors import kernel_colors

    v, f = _arrays(name)
    cols = _colours(len(f), colours)
    packed = None if cols is None else kernel_colors(cols)[0]
    shading = shading_for((92, 143, 219))
    one_pass = kernel_numba.render(v, 128, 2, 0.06, shading, packed, cull=False, faces=f)
    assert one_pass is not None and one_pass[..., 3].any()
    for winding in (1, -1, 0):
        hinted = kernel_numba.render(v, 128, 2, 0.06, shading, packed, faces=f, winding=winding)
        assert np.array_equal(hinted, one_pass), winding


@pytest.mark.parametrize("colours", [None, "corner"])
@pytest.mark.parametrize("name", sorted(MESHES))
def test_any_winding_hint_draws_a_soup_like_one_pass_over_every_face(name: str, colours: str | None) -> None:
    from sidecar_thumbs.render import kernel_numba
    from sidecar_thumbs.render.colors import kernel_colors

    v, f = _arrays(name)
    soup = v[f].reshape(-1, 9)
    cols = _colours(len(f), colours)
    packed = None if cols is None else kernel_colors(cols)[0]
    shading = shading_for((92, 143, 219))
    one_pass = kernel_numba.render(soup, 128, 2, 0.06, shading, packed, cull=False)
    assert one_pass is not None and one_pass[..., 3].any()
    for winding in (1, -1, 0):
        hinted = kernel_numba.render(soup, 128, 2, 0.06, shading, packed, winding=winding)
        assert np.array_equal(hinted, one_pass), winding


def test_without_the_volume_the_soups_framing_pass_frames_and_counts_the_same() -> None:
    from sidecar_thumbs.render.kernel_numba import _extents

    v, f = _arrays("rock-20k")
    soup = v[f].reshape(-1, 9)
    soup[7, 4] = np.nan  # one triangle not drawable, not counted finite
    origin = np.array(soup[0, :3], dtype=np.float32)
    with_volume = _extents(soup, origin, VIEW_XY, True)
    without = _extents(soup, origin, VIEW_XY, False)
    assert with_volume[5] == 1 and without[5] == 0
    assert with_volume[:5] + with_volume[6:] == without[:5] + without[6:]
    assert without[4] == without[6] == len(f) - 1


@pytest.mark.parametrize("inside_out", [False, True])
def test_the_stl_reader_hints_outward_and_an_inside_out_stl_still_draws_its_picture(inside_out: bool) -> None:
    tri = meshgen.rock(5_000)
    if inside_out:
        tri = tri[:, ::-1].copy()
    opts = RenderOptions(size=256)
    for data in (meshgen.binary_stl_bytes(tri), meshgen.ascii_stl_text(tri).encode()):
        mesh = load_stl_mesh(data)
        assert mesh.winding == 1  # the reader trusts the spec (counter-clockwise seen from outside)
        picture = render_mesh(mesh, opts)
        assert picture[..., 3].any()
        assert np.array_equal(picture, render_triangles(mesh.triangles, opts))  # no hint: the volume


def test_without_the_volume_the_framing_pass_frames_and_counts_the_same() -> None:
    from sidecar_thumbs.render.numba_indexed import _extents_indexed

    v, f = _arrays("unused-vertices")
    origin = np.array(v[f[0, 0]], dtype=np.float32)
    state = np.empty(len(v), np.uint8)
    with_volume = _extents_indexed(v, f, origin, VIEW_XY, state, True)
    without = _extents_indexed(v, f, origin, VIEW_XY, state, False)
    assert with_volume[5] == 1 and without[5] == 0
    assert with_volume[:5] == without[:5]


def _placed_3mf(v: np.ndarray, f: np.ndarray, transforms: list[str]) -> bytes:
    """The mesh placed once per 3MF transform (12 numbers, row vectors as in the spec)."""
    xml = meshgen.model_xml((v, f)).decode()
    items = "".join(f'<item objectid="1" transform="{t}"/>\n' for t in transforms)
    xml = xml.replace('<item objectid="1"/>\n', items)
    src, buf = zipfile.ZipFile(io.BytesIO(meshgen.threemf_bytes((v, f)))), io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for name in src.namelist():
            out.writestr(name, xml if name == "3D/3dmodel.model" else src.read(name))
    return buf.getvalue()


PLAIN = "1 0 0 0 1 0 0 0 1 0 0 0"
MIRROR = "-1 0 0 0 1 0 0 0 1 80 0 0"


@pytest.mark.parametrize(
    ("transforms", "winding"), [([PLAIN], 1), ([MIRROR], -1), ([MIRROR, MIRROR], -1), ([PLAIN, MIRROR], 0)]
)
def test_the_3mf_reader_hints_outward_unless_a_placement_mirrors(transforms: list[str], winding: int) -> None:
    v, f = meshgen.rock_indexed(2_000)
    mesh = load_3mf_mesh(_placed_3mf(v, f, transforms))
    assert mesh.indexed and mesh.winding == winding
    assert mesh.vertices is not None and mesh.faces is not None
    opts = RenderOptions(size=128)
    picture = render_mesh(mesh, opts)
    assert np.array_equal(picture, render_indexed(mesh.vertices, mesh.faces, opts))  # no hint: the volume
    assert np.array_equal(picture, render_triangles(mesh.triangles, opts))


def test_an_inside_out_3mf_breaks_the_rule_and_still_draws_its_picture() -> None:
    v, f = meshgen.rock_indexed(5_000)
    mesh = load_3mf_mesh(meshgen.threemf_bytes((v, f[:, ::-1])))
    assert mesh.winding == 1  # the reader trusts the spec; the file does not keep it
    assert mesh.vertices is not None and mesh.faces is not None
    opts = RenderOptions(size=256)
    picture = render_mesh(mesh, opts)
    assert picture[..., 3].any()
    assert np.array_equal(picture, render_indexed(mesh.vertices, mesh.faces, opts, winding=0))
    assert np.array_equal(picture, render_triangles(mesh.triangles, opts))
