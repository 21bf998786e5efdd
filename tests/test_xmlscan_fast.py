"""The numba scanner's fast path (mesh.xmlscan_fast) reads exactly what the general path reads.

Every document is scanned three ways: as written (the fast path takes the tags in the common
spelling), with single quotes (which the fast path never takes, so the general path reads every
tag) and by the NumPy twin; the arrays must be identical, bit for bit, including the tags the fast
path hands back (exponents, long digit runs, extra attributes, prefixes) and the errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from mesh_builders import model_xml

from sidecar_thumbs.errors import BadModelError, LimitExceededError
from sidecar_thumbs.mesh.xmlscan import numba_available, scan_meshes
from sidecar_thumbs.mesh.xmlstream import scan_meshes_stream

pytestmark = pytest.mark.skipif(not numba_available(), reason="the fast path is part of the numba kernel")

# Spellings around every edge of the fast path: digit runs of 0..9 (8 or more go to the general
# path), signs, a lone point, negative zero, exponents, spaces, more digits than float32 keeps.
NUMBERS = [
    "0", "-0", "-0.0", "0.00000", "7", "-7", ".5", "-.5", "5.", "-5.", "1234567", "12345678", "123456789",
    "0.1234567", "0.12345678", "1234567.1234567", "-9999999.9999999", "12345678.5", "+1", "1e5", "1.5E-3",
    " 1", "1 ", "00012.500", "3.14159265358979", "-0.00001", "1000000.0000001", "16777217", "0.30000000000000004",
    "4.14039612", "-8.50836182", "15.8286819", "1234567.12345678", "12345.1234567890", "1.123456789012345",
    "0.000000000000001", "-.123456789012345", "0.1234567890123456", "1.12345678e1", "9999999.99999999",
    # 19 and more significant digits: the 19th once overflowed the int64 mantissa (9.72 read as -8.73).
    "9.7206668853759765625", "-9.7206668853759765625e-3", "12345678901234567890", "9999999999999999999.5",
]  # fmt: skip
INDICES = ["0", "1", "7", "12", "123", "1234567", "00000001", "000000012", "+2", " 3", "3 "]


def vertex_tags(rng: np.random.Generator, count: int) -> str:
    tags = []
    for _ in range(count):
        x, y, z = (NUMBERS[k] for k in rng.integers(0, len(NUMBERS), 3))
        end = "/>" if rng.random() < 0.6 else " />" if rng.random() < 0.8 else "  />"  # ' />': lib3mf's
        tags.append(f'<vertex x="{x}" y="{y}" z="{z}"{end}\n')
    return "".join(tags)


def triangle_tags(rng: np.random.Generator, count: int, vertices: int) -> str:
    spellings = [s for s in INDICES if int(s) < vertices]
    tags = []
    for _ in range(count):
        a, b, c = (str(int(v)) for v in rng.integers(0, vertices, 3))
        if rng.random() < 0.3:
            a = spellings[int(rng.integers(0, len(spellings)))]
        end = "/>" if rng.random() < 0.6 else " />" if rng.random() < 0.8 else "\n/>"
        tags.append(f'<triangle v1="{a}" v2="{b}" v3="{c}"{end}\n')
    return "".join(tags)


def document(vertices: str, triangles: str) -> bytes:
    mesh = f"<mesh><vertices>\n{vertices}</vertices><triangles>\n{triangles}</triangles></mesh>"
    return model_xml(f'<object id="1">{mesh}</object>', '<item objectid="1"/>').encode()


def assert_three_ways_agree(data: bytes, want_props: bool = False) -> None:
    fast = scan_meshes(data, 10**8, use_numba=True, want_props=want_props)
    general = scan_meshes(data.replace(b'"', b"'"), 10**8, use_numba=True, want_props=want_props)
    twin = scan_meshes(data, 10**8, use_numba=False)
    for other in (general, twin):
        assert fast.vertices.tobytes() == other.vertices.tobytes()
        assert np.array_equal(fast.triangles, other.triangles)
        assert np.array_equal(fast.spans[:, 2:], other.spans[:, 2:])
    if want_props:
        assert fast.props is not None and general.props is not None
        assert np.array_equal(fast.props.props, general.props.props)


@pytest.mark.parametrize("seed", range(6))
def test_random_spellings_read_the_same_on_both_paths(seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = document(vertex_tags(rng, 400), triangle_tags(rng, 600, 400))
    assert_three_ways_agree(data, want_props=bool(seed % 2))


def test_every_number_spelling_reads_the_same() -> None:
    tags = "".join(f'<vertex x="{v}" y="{v}" z="-{v.strip().lstrip("+-")}"/>\n' for v in NUMBERS)
    assert_three_ways_agree(document(tags * 3, '<triangle v1="0" v2="1" v3="2"/>\n'))


def test_tags_the_fast_path_hands_back_read_the_same() -> None:
    # Another order, extra attributes, a prefix, spaces, a property: all read by the general path (but
    # ' />', lib3mf's spelling, and the property, which the fast path reads too).
    vertices = (
        '<vertex y="2" x="1" z="3"/>\n<vertex x="1" y="2" z="3" extra="1"/>\n<vertex x="1" y="2" z="3" />\n'
        '<vertex  x="1" y="2" z="3"/>\n<vertex x ="1" y="2" z="3"/>\n<vertex x="1" y="2" z="3"></vertex>\n'
    ) * 5
    triangles = (
        '<triangle v1="0" v2="1" v3="2" pid="4" p1="1"/>\n<triangle v2="1" v1="0" v3="2"/>\n'
        '<triangle v1="0" v2="1" v3="2" />\n<triangle v1="0"  v2="1" v3="2"/>\n'
    ) * 5
    assert_three_ways_agree(document(vertices, triangles), want_props=True)
    scan = scan_meshes(document(vertices, triangles), 10**8, want_props=True)
    assert scan.props is not None and scan.props.props[0].tolist() == [4, 1, -1, -1]
    assert scan.props.props[1].tolist() == [-1, -1, -1, -1]


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ('<vertex x="1.2.3" y="0" z="0"/>', "not a number"),
        ('<vertex x="-" y="0" z="0"/>', "not a number"),
        ('<vertex x="." y="0" z="0"/>', "not a number"),
        ('<vertex x="1" y="0"/>', "lacks an x, y or z"),
        ('<triangle v1="0" v2="1" v3="-1"/>', "not a non-negative integer"),
        ('<triangle v1="0" v2="1" v3="99"/>', "out of range"),
    ],
)
def test_bad_tags_fail_as_before(tag: str, message: str) -> None:
    # Padded so the bad tag is far from the end of the buffer, where the fast path runs.
    pad = '<vertex x="0" y="0" z="0"/>\n' * 3
    tri = '<triangle v1="0" v2="1" v3="2"/>\n' * 3
    data = document(pad + tag + pad, tri) if tag.startswith("<vertex") else document(pad, tri + tag + tri)
    with pytest.raises(BadModelError, match=message):
        scan_meshes(data, 10**8)


def test_triangle_limit_holds_on_the_fast_path() -> None:
    rng = np.random.default_rng(7)
    data = document(vertex_tags(rng, 50), '<triangle v1="0" v2="1" v3="2"/>\n' * 200)
    assert len(scan_meshes(data, 200).triangles) == 200
    with pytest.raises(LimitExceededError, match="more than the limit of 199 triangles"):
        scan_meshes(data, 199)


@pytest.mark.parametrize("size", [1, 7, 63, 64, 79, 80, 81, 1000])
def test_fast_path_at_chunk_edges(size: int) -> None:
    rng = np.random.default_rng(size)
    data = document(vertex_tags(rng, 120), triangle_tags(rng, 150, 120))
    whole = scan_meshes(data, 10**8)
    streamed, _ = scan_meshes_stream((data[at : at + size] for at in range(0, len(data), size)), 10**8)
    assert whole.vertices.tobytes() == streamed.vertices.tobytes()
    assert np.array_equal(whole.triangles, streamed.triangles)


@pytest.mark.parametrize("seed", range(4))
def test_runs_of_vertices_with_any_gap_read_the_same(seed: int) -> None:
    # A run of vertices is read by one loop that expects the next tag where the last gap ended:
    # gaps that change, that are empty, 15 or 16 bytes and more (no '<' in sight), text between
    # tags (which the scanner skips), and text that spells a vertex without a '<' before it.
    rng = np.random.default_rng(seed)
    gaps = ["", "\n", "\r\n", "\n\t\t\t\t\t", "\r\n" + " " * 10, " " * 15, " " * 16, " " * 20, "\n x ", "\n"]
    tags = vertex_tags(rng, 300).splitlines(keepends=False)
    parts = []
    for k, tag in enumerate(tags):
        parts.append(tag)
        gap = gaps[int(rng.integers(0, len(gaps)))] if rng.random() < 0.3 else gaps[1]
        if k % 50 == 7:
            gap = " " * 17 + 'vertex x="5" y="5" z="5"/>'  # no '<' before it: text, not a tag
        parts.append(gap)
    data = document("".join(parts), triangle_tags(rng, 100, len(tags)))
    assert_three_ways_agree(data, want_props=bool(seed % 2))
    assert len(scan_meshes(data, 10**8).vertices) == len(tags)
