"""PLY: every encoding gives the same mesh, any property order and list types, strips, colours,
and hostile headers and data fail with one line before they cost memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from sidecar_thumbs.errors import BadModelError, LimitExceededError, NoGeometryError
from sidecar_thumbs.mesh import LoadLimits
from sidecar_thumbs.mesh.load import load_mesh_bytes

# A square pyramid: 5 vertices, a quad base and 4 triangles (6 triangles once split).
VERTS = np.array([(0, 0, 0), (2, 0, 0), (2, 2, 0), (0, 2, 0), (1, 1, 3)], np.float64)
FACES = [[3, 2, 1, 0], [0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]]
VCOLOURS = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)], np.uint8)


def _ascii() -> bytes:
    # Face element first, properties in an odd order, extra properties, and a list of uint.
    head = (
        "ply\nformat ascii 1.0\ncomment hand made\nelement face 5\nproperty uchar flags\n"
        "property list uchar uint vertex_indices\nelement vertex 5\nproperty float confidence\n"
        "property double z\nproperty double x\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n"
        "property double y\nend_header\n"
    )
    faces = "".join(f"7 {len(f)} {' '.join(map(str, f))}\n" for f in FACES)
    verts = "".join(
        f"0.5 {z} {x} {r} {g} {b} {y}\n" for (x, y, z), (r, g, b) in zip(VERTS.tolist(), VCOLOURS.tolist(), strict=True)
    )
    return (head + faces + verts).encode()


def _binary(order: str) -> bytes:
    fmt = "binary_little_endian" if order == "<" else "binary_big_endian"
    head = (
        f"ply\nformat {fmt} 1.0\nelement vertex 5\nproperty float x\nproperty uchar red\nproperty float y\n"
        "property uchar green\nproperty float z\nproperty uchar blue\n"
        "element face 5\nproperty list int int vertex_indices\nend_header\n"
    ).encode()
    vdt = np.dtype(
        [("x", order + "f4"), ("r", "u1"), ("y", order + "f4"), ("g", "u1"), ("z", order + "f4"), ("b", "u1")]
    )
    v = np.zeros(5, vdt)
    v["x"], v["y"], v["z"] = VERTS.T
    v["r"], v["g"], v["b"] = VCOLOURS.T
    faces = b"".join(np.array([len(f), *f], order + "i4").tobytes() for f in FACES)
    return head + v.tobytes() + faces


@pytest.mark.parametrize("encoding", ["ascii", "<", ">"])
def test_every_encoding_and_property_order_gives_the_same_mesh(encoding: str) -> None:
    data = _ascii() if encoding == "ascii" else _binary(encoding)
    mesh = load_mesh_bytes(data, "p.PLY")
    assert mesh.format == ("ply-ascii" if encoding == "ascii" else "ply-binary")
    assert mesh.triangle_count == 6
    np.testing.assert_allclose(mesh.bounds()[0], [0, 0, 0])
    np.testing.assert_allclose(mesh.bounds()[1], [2, 2, 3])
    # Vertex colours: each triangle takes the mean of its corners.
    assert mesh.face_colors is not None and (mesh.face_colors[:, 3] == 255).all()
    assert mesh.face_colors[2, :3].tolist() == [85, 85, 0]  # red, green, black: triangle 0 1 4


def test_face_colours_win_over_vertex_colours_and_floats_are_0_to_1() -> None:
    data = (
        b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        b"property float red\nproperty float green\nproperty float blue\n"
        b"element face 1\nproperty list uchar int vertex_indices\nproperty uchar red\nproperty uchar green\n"
        b"property uchar blue\nend_header\n0 0 0 1 1 1\n1 0 0 1 1 1\n0 1 0 1 1 1\n3 0 1 2 0 128 255\n"
    )
    assert load_mesh_bytes(data, "c.ply").face_colors.tolist() == [[0, 128, 255, 255]]  # type: ignore[union-attr]


def test_sixteen_bit_colours_are_scaled_to_their_range() -> None:
    data = (
        b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        b"property ushort red\nproperty ushort green\nproperty ushort blue\n"
        b"element face 1\nproperty list uchar int vertex_indices\nend_header\n"
        b"0 0 0 65535 0 32768\n1 0 0 65535 0 32768\n0 1 0 65535 0 32768\n3 0 1 2\n"
    )
    assert load_mesh_bytes(data, "c.ply").face_colors.tolist() == [[255, 0, 128, 255]]  # type: ignore[union-attr]


def test_tristrips_with_restarts_alternate_winding_and_drop_joins() -> None:
    data = (
        b"ply\nformat ascii 1.0\nelement vertex 6\nproperty float x\nproperty float y\nproperty float z\n"
        b"element tristrips 1\nproperty list int int vertex_indices\nend_header\n"
        b"0 0 0\n1 0 0\n0 1 0\n1 1 0\n0 2 0\n1 2 0\n"
        b"9 0 1 2 3 -1 2 3 4 5\n"
    )
    mesh = load_mesh_bytes(data, "s.ply")
    assert mesh.triangle_count == 4  # strip 0 1 2 3 (2 triangles) and strip 2 3 4 5 (2)
    t = mesh.triangles.astype(np.float64)
    normals = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    assert (normals[:, 2] > 0).all()  # all with the first triangle's winding


def test_a_point_cloud_is_no_geometry_with_its_reason() -> None:
    data = (
        b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
        b"end_header\n0 0 0\n1 1 1\n"
    )
    with pytest.raises(NoGeometryError, match="point cloud"):
        load_mesh_bytes(data, "p.ply")


def _one_line(data: bytes, error: type[Exception] = BadModelError, match: str | None = None) -> str:
    with pytest.raises(error, match=match) as info:
        load_mesh_bytes(data, "h.ply", LoadLimits(max_triangles=1000))
    assert "\n" not in str(info.value)
    return str(info.value)


def test_huge_counts_in_the_header_are_refused_before_allocating() -> None:
    tracemalloc.start()
    try:
        for count in ("4000000000", "99999999999999999999"):
            _one_line(
                f"ply\nformat binary_little_endian 1.0\nelement vertex {count}\nproperty float x\nproperty float y\n"
                "property float z\nend_header\n".encode()
                + b"\0" * 64,
                match="only 64 bytes of data follow",
            )
        # A face list claiming 4 billion corners in its first record.
        head = (
            b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
            b"property float z\nelement face 1\nproperty list uint int vertex_indices\nend_header\n"
        )
        _one_line(head + b"\0" * 36 + b"\xff\xff\xff\xff" + b"\0" * 12, match="ends inside the face element")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n", "no end_header"),
        (b"plyx\n", "does not start with 'ply'"),
        (b"ply\nformat ascii 2.0 x\nelement vertex 1\nproperty float x\nend_header\n", None),
        (b"ply\nformat weird 1.0\nend_header\n", "unknown format"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty quad x\nend_header\n1\n", "bad property"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty list float int x\nend_header\n1\n", "bad list types"),
        (b"ply\nformat ascii 1.0\nbogus\nend_header\n", "unknown statement"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n0 0\n", "no z"),
    ],
)
def test_bad_headers_fail_with_one_line(data: bytes, match: str | None) -> None:
    with pytest.raises((BadModelError, NoGeometryError), match=match) as info:
        load_mesh_bytes(data, "h.ply")
    assert "\n" not in str(info.value)


def test_bad_data_fails_with_one_line() -> None:
    head = (
        b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        b"element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n"
    )
    _one_line(head + b"3 0 1 7\n", match="refers to vertex 7")
    _one_line(head + b"3 0 1 -1\n", match="refers to vertex -1")
    _one_line(head + b"3 0 1\n", match="shorter than its list")
    _one_line(head + b"3 0 1 x\n", match="not a number")
    _one_line(head + b"nan 0 1 2\n", match="bad length")
    _one_line(head, match="ends inside the face element")
    le = head.replace(b"ascii", b"binary_little_endian").split(b"end_header\n")[0] + b"end_header\n"
    _one_line(le + b"\0" * 35, match="ends inside the vertex element")


def test_triangle_cap_applies_to_polygons_and_strips() -> None:
    head = b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
    faces = b"element face 600\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n"
    _one_line(head + faces + b"4 0 1 2 0\n" * 600, LimitExceededError)  # 1,200 triangles
    strips = b"element tristrips 1\nproperty list int int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n"
    _one_line(head + strips + b"5000 " + b"0 1 2 " * 1666 + b"0 1\n", LimitExceededError)


def _mixed_binary(order: str, count_type: str = "uchar", index_type: str = "uint") -> bytes:
    fmt = "binary_little_endian" if order == "<" else "binary_big_endian"
    codes = {"uchar": "u1", "ushort": "u2", "int": "i4", "uint": "u4"}
    head = (
        f"ply\nformat {fmt} 1.0\nelement vertex 5\nproperty double x\nproperty double y\nproperty double z\n"
        f"element face 5\nproperty uchar flag\nproperty list {count_type} {index_type} vertex_indices\n"
        "property float quality\nend_header\n"
    ).encode()
    body = np.asarray(VERTS, order + "f8").tobytes()
    for k, face in enumerate(FACES):
        body += bytes([k]) + np.array([len(face)], order + codes[count_type]).tobytes()
        body += np.array(face, order + codes[index_type]).tobytes() + np.array([k / 2], order + "f4").tobytes()
    return head + body


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize(("count_type", "index_type"), [("uchar", "uint"), ("ushort", "int"), ("int", "uint")])
def test_binary_lists_of_mixed_lengths_read_the_same_with_and_without_numba(
    order: str, count_type: str, index_type: str
) -> None:
    from sidecar_thumbs.mesh.plydata import numba_available, read_elements
    from sidecar_thumbs.mesh.plyheader import parse_ply_header

    data = _mixed_binary(order, count_type, index_type)
    header = parse_ply_header(data)
    ways = [False, True] if numba_available() else [False]
    results = [read_elements(data, header, use_numba=way)["face"] for way in ways]
    for cols in results:
        flags, (flat, starts), quality = cols
        assert flags.tolist() == [0, 1, 2, 3, 4] and quality.tolist() == [0, 0.5, 1, 1.5, 2]
        assert flat.tolist() == [i for f in FACES for i in f] and starts.tolist() == [0, 4, 7, 10, 13, 16]
    mesh = load_mesh_bytes(data, "m.ply")
    assert mesh.triangle_count == 6
    np.testing.assert_allclose(mesh.bounds()[1], [2, 2, 3])


@pytest.mark.parametrize("use_numba", [False, True])
def test_mixed_binary_lists_cut_short_or_negative_fail_with_one_line(use_numba: bool) -> None:
    from sidecar_thumbs.mesh.plydata import numba_available, read_elements
    from sidecar_thumbs.mesh.plyheader import parse_ply_header

    if use_numba and not numba_available():
        pytest.skip("numba not installed")
    data = _mixed_binary("<", "int", "uint")
    # The last record: flag, int count, 3 uint indices, float quality (21 bytes); -1 as its count.
    negative = data[:-20] + b"\xff" * 4 + data[-16:]
    for bad, match in [(data[:-3], "ends inside the face element"), (negative, "negative length")]:
        with pytest.raises(BadModelError, match=match) as info:
            read_elements(bad, parse_ply_header(bad), use_numba=use_numba)
        assert "\n" not in str(info.value)


def test_ascii_lists_of_mixed_lengths_with_scalars_around_them() -> None:
    from sidecar_thumbs.mesh.plydata import read_elements
    from sidecar_thumbs.mesh.plyheader import parse_ply_header

    head = (
        "ply\nformat ascii 1.0\nelement vertex 5\nproperty double x\nproperty double y\nproperty double z\n"
        "element face 5\nproperty uchar flag\nproperty list uchar uint vertex_indices\nproperty float quality\n"
        "end_header\n"
    )
    verts = "".join(f"{x} {y} {z}\n" for x, y, z in VERTS.tolist())
    faces = "".join(f"{k} {len(f)} {' '.join(map(str, f))} {k / 2}\n" for k, f in enumerate(FACES))
    data = (head + verts + faces).encode()
    flags, (flat, starts), quality = read_elements(data, parse_ply_header(data))["face"]
    assert flags.tolist() == [0, 1, 2, 3, 4] and quality.tolist() == [0, 0.5, 1, 1.5, 2]
    assert flat.tolist() == [i for f in FACES for i in f] and starts.tolist() == [0, 4, 7, 10, 13, 16]
    # A line with a number too many (as VCGLIB writes) or too few is read line by line instead.
    longer = data.replace(b"\n2 3 1 2 4 1.0\n", b"\n2 3 1 2 4 1.0 99\n")
    assert read_elements(longer, parse_ply_header(longer))["face"][1][0].tolist() == flat.tolist()
    shorter = data.replace(b"\n2 3 1 2 4 1.0\n", b"\n2 3 1 2\n")
    with pytest.raises(BadModelError, match="shorter than its list"):
        read_elements(shorter, parse_ply_header(shorter))
