"""An indexed mesh (vertices and faces) draws the same picture as its triangle soup, to the last bit: closed,
open and mixed meshes, in the base colour and with colours per triangle and per corner, both kernels; and
the 3MF reader hands the renderer that form without building a soup."""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Callable

import numpy as np
import pytest

from bench import meshgen
from sidecar_thumbs.errors import NoGeometryError
from sidecar_thumbs.mesh import Mesh
from sidecar_thumbs.mesh.threemf import load_3mf_mesh
from sidecar_thumbs.render import RenderOptions, render_indexed, render_mesh, render_triangles, resolve_kernel

KERNELS = ["numba", "numpy"] if resolve_kernel("auto") == "numba" else ["numpy"]
pytestmark = pytest.mark.timeout(300, method="thread")

Indexed = tuple[np.ndarray, np.ndarray]


def _mixed() -> Indexed:
    # A closed rock wound outward beside a smaller copy wound inward (its visible faces are back faces).
    v, f = meshgen.rock_indexed(3_000)
    return np.vstack([v, v * 0.6 + 40.0]), np.vstack([f, f[:, ::-1] + len(v)])


def _shared_corners_unused_vertices() -> Indexed:
    # Vertices no face uses, far away: a soup would not hold them, so they must not move the framing.
    v, f = meshgen.gear_indexed()
    return np.vstack([v, [[1e4, 1e4, 1e4], [-1e4, 0, 0]]]), f


MESHES: dict[str, Callable[[], Indexed]] = {
    "rock-80": lambda: meshgen.rock_indexed(80),
    "rock-20k": lambda: meshgen.rock_indexed(20_000),
    "knot-8k": lambda: meshgen.torus_knot_indexed(8_000),
    "gear": meshgen.gear_indexed,
    "rock-open": lambda: (meshgen.rock_indexed(5_000)[0], meshgen.rock_indexed(5_000)[1][40:]),
    "rock-inside-out": lambda: (meshgen.rock_indexed(5_000)[0], meshgen.rock_indexed(5_000)[1][:, ::-1]),
    "mixed-shells": _mixed,
    "unused-vertices": _shared_corners_unused_vertices,
}


def _arrays(name: str) -> Indexed:
    v, f = MESHES[name]()
    return np.ascontiguousarray(v, np.float32), np.ascontiguousarray(f, np.int32)


def _colours(n: int, kind: str | None) -> np.ndarray | None:
    rng = np.random.default_rng(7)
    if kind == "triangle":
        return rng.integers(0, 256, (n, 3), dtype=np.uint8)
    if kind == "corner":
        return rng.integers(0, 256, (n, 3, 3), dtype=np.uint8)
    return None


@pytest.mark.parametrize("colours", [None, "triangle", "corner"])
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", sorted(MESHES))
def test_indexed_and_soup_draw_the_same_picture(name: str, kernel: str, colours: str | None) -> None:
    v, f = _arrays(name)
    if kernel == "numpy" and len(f) > 6_000:
        f = f[:6_000]  # the numpy kernel is slow; a part of the mesh is as good a comparison
    cols = _colours(len(f), colours)
    for size in (96, 256):
        opts = RenderOptions(size=size, kernel=kernel)
        soup = render_triangles(v[f], opts, cols)
        assert soup[..., 3].any()
        assert np.array_equal(render_indexed(v, f, opts, cols), soup)


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_face_touching_a_non_finite_vertex_draws_nothing(kernel: str) -> None:
    v, f = _arrays("rock-80")
    opts = RenderOptions(size=96, kernel=kernel)
    touching = (f == f[5, 1]).any(axis=1)
    without = render_triangles(v[f[~touching]], opts)
    for value in (np.nan, np.inf, -np.inf, 3.3e38, 1e30):
        bad = v.copy()
        bad[f[5, 1], 2] = value
        img = render_indexed(bad, f, opts)
        assert np.array_equal(img, render_triangles(bad[f], opts)), value
        if not np.isfinite(value):
            assert np.array_equal(img, without), value
    # A non-finite vertex that no face uses changes nothing.
    loose = np.vstack([v, [[np.nan, np.inf, 0.0]]])
    assert np.array_equal(render_indexed(loose, f, opts), render_triangles(v[f], opts))


@pytest.mark.parametrize("kernel", KERNELS)
def test_no_drawable_face_is_no_geometry(kernel: str) -> None:
    v, f = _arrays("rock-80")
    opts = RenderOptions(size=32, kernel=kernel)
    with pytest.raises(NoGeometryError):
        render_indexed(np.full_like(v, np.nan), f, opts)
    with pytest.raises(NoGeometryError):
        render_indexed(v, f[:0], opts)


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_face_index_outside_the_vertices_is_refused(kernel: str) -> None:
    v, f = _arrays("rock-80")
    opts = RenderOptions(size=32, kernel=kernel)
    for bad_index in (len(v), -1):
        g = f.copy()
        g[len(g) // 2, 1] = bad_index
        with pytest.raises(ValueError, match="outside"):
            render_indexed(v, g, opts)
        with pytest.raises(ValueError, match="outside"):
            render_indexed(v, g.astype(np.int64), opts)


def test_an_indexed_mesh_still_gives_every_reader_its_soup() -> None:
    v, f = _arrays("gear")
    mesh = Mesh(format="3mf", vertices=v, faces=f)
    assert mesh.indexed and mesh.triangle_count == len(f)
    assert mesh.triangles.dtype == np.float32 and mesh.triangles.flags.c_contiguous
    assert np.array_equal(mesh.triangles, v[f])
    lo, hi = mesh.bounds()
    assert np.array_equal(lo, v[f].reshape(-1, 3).min(axis=0)) and np.array_equal(hi, v[f].reshape(-1, 3).max(axis=0))
    again = pickle.loads(pickle.dumps(mesh))
    assert again.triangle_count == len(f) and np.array_equal(again.triangles, mesh.triangles)
    soup = Mesh(triangles=v[f], format="stl-binary")
    assert not soup.indexed and soup.triangle_count == len(f) and soup.vertices is None
    opts = RenderOptions(size=64)
    assert np.array_equal(render_mesh(mesh, opts), render_mesh(soup, opts))
    with pytest.raises(ValueError):
        Mesh(format="stl-binary")


def test_a_3mf_loads_indexed_and_drops_faces_with_a_non_finite_corner() -> None:
    v, f = meshgen.rock_indexed(2_000)
    mesh = load_3mf_mesh(meshgen.threemf_bytes((v, f)))
    assert mesh.indexed and mesh.triangle_count == len(f)
    assert mesh.vertices is not None and mesh.faces is not None
    assert np.array_equal(mesh.faces, f) and np.allclose(mesh.vertices, v, atol=1e-4)
    assert np.array_equal(mesh.triangles, mesh.vertices[f])
    bad = np.asarray(v, np.float64).copy()
    bad[f[0, 0]] = [1e39, 0.0, 0.0]  # beyond float32: infinite once read, so every face touching it goes
    touching = (f == f[0, 0]).any(axis=1)
    dropped = load_3mf_mesh(meshgen.threemf_bytes((bad, f)))
    assert dropped.indexed and dropped.triangle_count == int((~touching).sum())
    assert np.array_equal(dropped.triangles, mesh.triangles[~touching])
    with pytest.raises(NoGeometryError, match="non-finite"):
        load_3mf_mesh(meshgen.threemf_bytes((np.full_like(bad, 1e39), f)))


def _instanced_3mf(n_items: int, loose_vertices: int) -> bytes:
    # One small tetrahedron (plus ``loose_vertices`` unused vertices) placed ``n_items`` times.
    v = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], np.float64)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    v = np.vstack([v, np.full((loose_vertices, 3), 5.0)])
    xml = meshgen.model_xml((v, f)).decode()
    items = "".join(f'<item objectid="1" transform="1 0 0 0 1 0 0 0 1 {20 * k} 0 0"/>\n' for k in range(n_items))
    xml = xml.replace('<item objectid="1"/>\n', items)
    data = meshgen.threemf_bytes((v, f))
    src, buf = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for name in src.namelist():
            out.writestr(name, xml if name == "3D/3dmodel.model" else src.read(name))
    return buf.getvalue()


def test_instances_are_placed_indexed_unless_their_vertices_outnumber_the_corners() -> None:
    few = load_3mf_mesh(_instanced_3mf(5, 0))
    assert few.indexed and few.triangle_count == 20 and few.vertices is not None and len(few.vertices) == 20
    # 5 copies of 2,004 vertices for 20 triangles: placed as a soup, bounded by the triangles.
    many = load_3mf_mesh(_instanced_3mf(5, 2_000))
    assert not many.indexed and many.triangle_count == 20
    assert np.array_equal(many.triangles, few.triangles)
    opts = RenderOptions(size=64)
    assert np.array_equal(render_mesh(many, opts), render_mesh(few, opts))
