"""OBJ: the statements the loader understands, the numba scanner against its Python twin, polygon
triangulation (concave n-gons, degenerate and huge polygons), material libraries read beside the
file and nowhere else."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from corpus_paths import corpus_files, corpus_sweep
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar_thumbs.errors import BadModelError, LimitExceededError, NoGeometryError
from sidecar_thumbs.mesh import LoadLimits
from sidecar_thumbs.mesh.load import load_mesh_bytes
from sidecar_thumbs.mesh.objscan import numba_available, scan_obj
from sidecar_thumbs.mesh.polygons import plane_coords, triangulate
from sidecar_thumbs.mesh.siblings import sibling_reader

OBJS = [p for p in corpus_files("obj") if p.suffix.lower() == ".obj"]
SCANNERS = [False, True] if numba_available() else [False]

FEATURES = (
    b"# a comment\r\n"
    b"mtllib  my materials.mtl \r\n"
    b"o first\r\n"
    b"v 0 0 0\r\n"
    b"v 1 0 0 # trailing comment\r\n"
    b"\tv 1 1 0\r\n"
    b"v 0 1 0 1.0\r\n"  # x y z w
    b"vt 0.5 0.5\r\nvn 0 0 1\r\n"
    b"g group one\r\n"
    b"usemtl red\r\n"
    b"f 1/1/1 2/1/1 3/1/1\r\n"
    b"f -4//1 -2//1 -1//1\r\n"  # negative (relative) indices, v//vn
    b"l 1 2\r\np 3\r\ns off\r\n"
    b"o second\r\n"
    b"v 0 0 1 1 0 0\nv 1 0 1 0 1 0\nv 1 1 1 0 0 1\nv 0 1 1 1 1 1\n"  # v x y z r g b
    b"usemtl\n"
    b"f 5 6 \\\n7 8\n"  # a continued line: one quad
    b"f 5 6\n"  # two corners: not drawable, skipped
)


@pytest.mark.parametrize("use_numba", SCANNERS)
def test_statements_of_a_hand_written_obj(use_numba: bool) -> None:
    from sidecar_thumbs.mesh.obj import join_continuations

    scan = scan_obj(join_continuations(FEATURES), 100, use_numba=use_numba)
    assert scan.vertices.shape == (8, 3)
    assert scan.corners.tolist() == [0, 1, 2, 0, 2, 3, 4, 5, 6, 7]
    assert scan.starts.tolist() == [0, 3, 6, 10]
    assert scan.short_faces == 1
    assert np.isnan(scan.colors[:4]).all() and scan.colors[4:].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]
    names = [FEATURES[a:b] for _, a, b in scan.materials.tolist()]
    assert names == [b"red", b""] and scan.materials[:, 0].tolist() == [0, 2]
    (lib,) = scan.libraries.tolist()
    assert FEATURES[lib[0] : lib[1]] == b"my materials.mtl"


def test_obj_loads_with_colours_from_vertices_and_its_material_library() -> None:
    mtl = b"newmtl red\nKd 1 0 0\nnewmtl other\nKd spectral x.rfl\n"
    asked: list[str] = []

    def resolve(name: str) -> bytes | None:
        asked.append(name)
        return mtl if name == "my materials.mtl" else None

    mesh = load_mesh_bytes(FEATURES, "m.obj", resolve_sibling=resolve)
    assert mesh.format == "obj" and mesh.triangle_count == 4
    assert asked == ["my materials.mtl"]
    assert mesh.face_colors is not None
    assert mesh.face_colors.tolist() == [
        [255, 0, 0, 255],  # usemtl red
        [255, 0, 0, 255],
        [85, 85, 85, 255],  # the quad's vertex colours (red, green, blue, white), averaged per triangle
        [170, 85, 170, 255],
    ]
    # Without a resolver, only the vertex colours remain.
    plain = load_mesh_bytes(FEATURES, "m.obj")
    assert plain.face_colors is not None and plain.face_colors[:2, 3].tolist() == [0, 0]


@pytest.mark.parametrize("path", corpus_sweep(OBJS))
def test_numba_and_python_scanners_give_identical_arrays(path: Path) -> None:
    if len(SCANNERS) < 2:
        pytest.skip("numba not installed")
    from sidecar_thumbs.mesh.obj import join_continuations

    data = join_continuations(path.read_bytes())
    a, b = scan_obj(data, 10**7, use_numba=True), scan_obj(data, 10**7, use_numba=False)
    for field in ("vertices", "colors", "corners", "starts", "materials", "libraries"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert a.short_faces == b.short_faces
    ta, oa = triangulate(a.vertices, a.corners, a.starts, use_numba=True)
    tb, ob = triangulate(b.vertices, b.corners, b.starts, use_numba=False)
    np.testing.assert_array_equal(ta, tb)
    np.testing.assert_array_equal(oa, ob)


@pytest.mark.parametrize("use_numba", SCANNERS)
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"v 1 2 x\n", r"not a number \(line 1\): 'x'"),
        (b"v 1 2\n", "fewer than 3 coordinates"),
        (b"v 1 2 3\nv 1 2 3\nv 1 2 3\nf 1 2 0\n", r"not a valid index \(line 4\): '0'"),
        (b"v 1 2 3\nf 1 2 -3\n", "not a valid index"),
        (b"v 1 2 3\nf 1 2 x3\n", "not a valid index"),
        (b"v 1 2 3\nf 1 2 99999999999\n", "not a valid index"),
        (b"v 1 2 3\nf 1 1 4\n", "refers to vertex 4, but the file has 1 vertices"),
    ],
)
def test_bad_numbers_and_indices_fail_with_one_line(use_numba: bool, text: bytes, message: str) -> None:
    with pytest.raises(BadModelError, match=message) as info:
        scan_obj(text, 100, use_numba=use_numba)
    assert "\n" not in str(info.value)


def test_every_library_of_an_mtllib_line_is_read() -> None:
    libs = {"a.mtl": b"newmtl a\nKd 1 0 0\n", "b.mtl": b"newmtl b\nKd 0 0 1\n"}
    text = b"mtllib a.mtl b.mtl missing.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nusemtl b\nf 1 2 3\nusemtl a\nf 1 2 3\n"
    mesh = load_mesh_bytes(text, "x.obj", resolve_sibling=libs.get)
    assert mesh.face_colors is not None and mesh.face_colors[:, :3].tolist() == [[0, 0, 255], [255, 0, 0]]


def test_faces_may_use_vertices_defined_after_them() -> None:
    mesh = load_mesh_bytes(b"f 1 2 3\nv 0 0 0\nv 1 0 0\nv 0 1 0\n", "x.obj")
    assert mesh.triangle_count == 1


def test_no_faces_is_no_geometry_with_its_reason() -> None:
    with pytest.raises(NoGeometryError, match="only vertices, lines or points"):
        load_mesh_bytes(b"v 0 0 0\nv 1 0 0\nl 1 2\n", "x.obj")
    with pytest.raises(NoGeometryError, match="fewer than 3 vertices"):
        load_mesh_bytes(b"v 0 0 0\nv 1 0 0\nf 1 2\n", "x.obj")


def test_triangle_cap_counts_triangulated_polygons() -> None:
    text = b"v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n" + b"f 1 2 3 4\n" * 3
    assert load_mesh_bytes(text, "x.obj", LoadLimits(max_triangles=6)).triangle_count == 6
    with pytest.raises(LimitExceededError):
        load_mesh_bytes(text, "x.obj", LoadLimits(max_triangles=5))


def _polygon_obj(points: np.ndarray) -> bytes:
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in points]
    lines.append("f " + " ".join(str(i + 1) for i in range(len(points))))
    return ("\n".join(lines) + "\n").encode()


def _area(tri: np.ndarray) -> float:
    t = tri.astype(np.float64)
    return float(np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1).sum() / 2)


@pytest.mark.parametrize("use_numba", SCANNERS)
def test_a_concave_polygon_in_a_tilted_plane_is_ear_clipped_inside_itself(use_numba: bool) -> None:
    # A comb (two notches), 34 units of area, tilted out of every coordinate plane.
    comb = [(0, 0), (10, 0), (10, 5), (8, 5), (8, 1), (6, 1), (6, 5), (4, 5), (4, 1), (2, 1), (2, 5), (0, 5)]
    c, s = np.cos(0.7), np.sin(0.7)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    points = np.array([(x, y, 0.0) for x, y in comb]) @ rot.T + [5, 6, 7]
    scan = scan_obj(_polygon_obj(points), 100)
    tris, owner = triangulate(scan.vertices, scan.corners, scan.starts, use_numba=use_numba)
    assert len(tris) == 10 and (owner == 0).all()
    # Every triangle inside the polygon: areas add up to the polygon's (a fan would overshoot).
    assert _area(scan.vertices[tris]) == pytest.approx(34.0, rel=1e-5)
    # Same winding as the polygon: every triangle's normal agrees with the plane's.
    t = scan.vertices[tris].astype(np.float64)
    normals = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    assert (normals @ (rot @ [0, 0, 1]) > 0).all()


@pytest.mark.parametrize("use_numba", SCANNERS)
def test_concave_quads_split_through_their_reflex_corner(use_numba: bool) -> None:
    dart = np.array([(0, 0, 0), (4, 0, 0), (1, 1, 0), (0, 4, 0)], np.float32)  # reflex at corner 2
    for shift in range(4):
        corners = np.roll(np.arange(4, dtype=np.int32), shift)
        tris, _ = triangulate(dart, corners, np.array([0, 4]), use_numba=use_numba)
        assert _area(dart[tris]) == pytest.approx(4.0)


def test_the_936_gon_gives_934_triangles(corpus: Path) -> None:
    mesh = load_mesh_bytes((corpus / "obj" / "assimp__box_longline.obj").read_bytes(), "x.obj")
    assert mesh.triangle_count == 944  # 934 from the long face, 10 from the others
    assert np.isfinite(mesh.triangles).all()


@pytest.mark.parametrize("use_numba", SCANNERS)
def test_degenerate_polygons_still_give_n_minus_2_triangles(use_numba: bool) -> None:
    line = np.array([(i, 2 * i, 0) for i in range(7)], np.float32)  # all corners on a line
    tris, _ = triangulate(line, np.arange(7, dtype=np.int32), np.array([0, 7]), use_numba=use_numba)
    assert len(tris) == 5 and set(tris.ravel().tolist()) <= set(range(7))


def test_plane_projection_refuses_a_polygon_without_area() -> None:
    pts = np.zeros((5, 3))
    assert not plane_coords(pts, np.arange(5), 0, 5, np.empty((5, 2)))


def _star(n: int) -> np.ndarray:
    angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
    radius = np.where(np.arange(n) % 2, 1.0, 3.0)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle), np.zeros(n)], axis=1).astype(np.float32)


@pytest.mark.integration  # a bomb or a cost bound, like the reliability suite's: out of the fast lane
@pytest.mark.parametrize("use_numba", SCANNERS)
def test_huge_and_spiky_polygons_cost_bounded_time(use_numba: bool) -> None:
    # A 20,000-corner star (concave everywhere) is above the ear-clipping size: fanned at once.
    star = _star(20_000)
    t = time.perf_counter()
    tris, _ = triangulate(star, np.arange(20_000, dtype=np.int32), np.array([0, 20_000]), use_numba=use_numba)
    assert len(tris) == 19_998 and time.perf_counter() - t < 2
    # Many stars under that size: the file's ear-clipping budget runs out, the rest is fanned.
    n, k = (4000, 50) if use_numba else (1000, 10)
    corners = np.tile(np.arange(n, dtype=np.int32), k)
    t = time.perf_counter()
    tris, _ = triangulate(_star(n), corners, np.arange(k + 1) * n, use_numba=use_numba)
    assert len(tris) == k * (n - 2)
    assert time.perf_counter() - t < 15  # measured: 1.2 s (numba), about 3 s (Python)


def test_sibling_reader_reads_only_plain_files_beside_the_model(tmp_path: Path) -> None:
    model = tmp_path / "lib" / "m.obj"
    model.parent.mkdir()
    model.write_bytes(b"")
    (model.parent / "ok.mtl").write_bytes(b"newmtl a\n")
    (tmp_path / "outside.mtl").write_bytes(b"secret")
    (model.parent / "big.mtl").write_bytes(b"x" * 2000)
    (model.parent / "folder.mtl").mkdir()
    os.symlink(tmp_path / "outside.mtl", model.parent / "link.mtl")
    os.mkfifo(model.parent / "fifo.mtl")  # would block a plain open() for ever
    read = sibling_reader(model, cap=1000)
    assert read("ok.mtl") == b"newmtl a\n"
    assert read("./ok.mtl") == b"newmtl a\n"
    for name in ["../outside.mtl", str(tmp_path / "outside.mtl"), "sub/ok.mtl", "..\\outside.mtl", "link.mtl"]:
        assert read(name) is None, name
    assert read("big.mtl") is None and read("folder.mtl") is None and read("missing.mtl") is None
    assert read("fifo.mtl") is None
    assert read("") is None and read("..") is None and read("a\x00b") is None


@pytest.mark.parametrize("use_numba", SCANNERS)
def test_triangles_beyond_float32_are_dropped_with_their_colours(use_numba: bool) -> None:
    text = (
        b"v 0 0 0 1 0 0\nv 1 0 0 1 0 0\nv 0 1 0 1 0 0\nv 0 0 1e39 0 0 1\n"  # 1e39 overflows float32
        b"f 1 2 3\nf 1 2 4\nf 2 3 4\n"
    )
    scan = scan_obj(text, 10, use_numba=use_numba)
    assert np.isinf(scan.vertices[3, 2])
    mesh = load_mesh_bytes(text, "x.obj")
    assert mesh.triangle_count == 1 and np.isfinite(mesh.triangles).all()
    assert mesh.face_colors is not None and mesh.face_colors.tolist() == [[255, 0, 0, 255]]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    radii=st.lists(st.floats(0.2, 5.0), min_size=5, max_size=60),
    tilt=st.tuples(st.floats(-3, 3), st.floats(-3, 3)),
    use_numba=st.sampled_from(SCANNERS),
)
def test_random_concave_polygons_are_covered_exactly(
    radii: list[float], tilt: tuple[float, float], use_numba: bool
) -> None:
    # A star-shaped polygon (random radius per corner) is simple but concave almost everywhere.
    n = len(radii)
    angle = np.arange(n) * 2 * np.pi / n
    flat = np.stack([np.cos(angle) * radii, np.sin(angle) * radii, np.zeros(n)], axis=1)
    a, b = tilt
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]]) @ np.array(
        [[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]]
    )
    verts = (flat @ rot.T).astype(np.float64)
    tris, _ = triangulate(verts, np.arange(n, dtype=np.int32), np.array([0, n]), use_numba=use_numba)
    assert len(tris) == n - 2
    x, y = flat[:, 0], flat[:, 1]
    area = 0.5 * abs(x @ np.roll(y, -1) - y @ np.roll(x, -1))
    t = verts[tris]
    normals = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    # Inside the polygon and not overlapping: the areas add up exactly; same winding as the polygon.
    assert np.linalg.norm(normals, axis=1).sum() / 2 == pytest.approx(area, rel=1e-6)
    assert (normals @ (rot @ [0, 0, 1]) >= -1e-9).all()
