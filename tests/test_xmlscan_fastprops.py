"""The numba scanner's fast path for coloured triangles (mesh.xmlscan_fastprops) reads what the general
path and the NumPy twin (mesh.xmlprops) read: the same triangles and the same pid/p1/p2/p3, value for value."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from mesh_builders import model_xml

from sidecar_thumbs.mesh.xmlscan import numba_available, scan_meshes
from sidecar_thumbs.mesh.xmlstream import scan_meshes_stream

pytestmark = pytest.mark.skipif(not numba_available(), reason="the fast path is part of the numba kernel")

INDICES = ["0", "1", "7", "12", "1234567", "12345678", "00000001", "+2", " 3", "3 ", "-1", "x", ""]
PAINTS = ["8", "4C3", "", "0C>", "1" * 300, "3F3F3F3F3F3F3F0C"]
COLOURED = [
    "3mfsamples__dodeca_chain_loop_color.3mf",
    "3mfsamples__rhombicuboctahedron_color.3mf",
    "3mfsamples__pyramid_vertexcolor.3mf",
    "lib3mf__Color_093.3mf",
    "boxturtle__tray_multicolor.3mf",
]


def coloured_triangles(rng: np.random.Generator, count: int) -> str:
    tags = []
    for _ in range(count):
        a, b, c = (str(int(v)) for v in rng.integers(0, 50, 3))
        pid, p1, p2, p3 = (INDICES[int(k)] if rng.random() < 0.2 else str(int(k)) for k in rng.integers(0, 9, 4))
        form = int(rng.integers(0, 8))
        if form == 0:
            tags.append(f'<triangle v1="{a}" v2="{b}" v3="{c}" pid="{pid}" p1="{p1}"/>\n')
        elif form == 1:
            tags.append(f'<triangle v1="{a}" v2="{b}" v3="{c}" pid="{pid}" p1="{p1}" p2="{p2}" p3="{p3}"/>\n')
        elif form == 2:  # handed back: p2 without p3, another order, a space, paint
            tags.append(f'<triangle v1="{a}" v2="{b}" v3="{c}" pid="{pid}" p1="{p1}" p2="{p2}"/>\n')
        elif form == 3:
            tags.append(f'<triangle v1="{a}" v2="{b}" v3="{c}" p1="{p1}" pid="{pid}" />\n')
        elif form == 4:
            tags.append(f'<triangle v1="{a}" v2="{b}" v3="{c}" pid="{pid}" p1="{p1}" paint_color="8"/>\n')
        elif form == 5:  # a slicer's paint: on the fast path, any length, empty (no paint)
            paint = PAINTS[int(rng.integers(0, len(PAINTS)))]
            tags.append(f'<triangle v1="{a}" v2="{b}" v3="{c}" paint_color="{paint}"/>\n')
        elif form == 6:
            tags.append(f'<triangle v1="{a}" v2="{b}" v3="{c}" paint_color="8" />\n')
        elif form == 7 and rng.random() < 0.5:  # the 2013 spelling of pid
            tags.append(f'<triangle v1="{a}" v2="{b}" v3="{c}" materialid="{pid}"/>\n')
        else:
            tags.append(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>\n')
        if rng.random() < 0.3:  # lib3mf's ' />' (fast path too), or another space before it (handed back)
            tags[-1] = tags[-1].replace('"/>', '" />' if rng.random() < 0.8 else '"\t/>')
    return "".join(tags)


def document(triangles: str) -> bytes:
    vertices = "".join(f'<vertex x="{k}" y="{k % 7}" z="{k % 3}"/>\n' for k in range(50))
    mesh = f"<mesh><vertices>\n{vertices}</vertices><triangles>\n{triangles}</triangles></mesh>"
    return model_xml(f'<object id="1">{mesh}</object>', '<item objectid="1"/>').encode()


def assert_agree(data: bytes) -> None:
    fast = scan_meshes(data, 10**8, use_numba=True, want_props=True)
    general = scan_meshes(data.replace(b'"', b"'"), 10**8, use_numba=True, want_props=True)
    twin = scan_meshes(data, 10**8, use_numba=False, want_props=True)
    for other in (general, twin):
        assert np.array_equal(fast.triangles, other.triangles)
        assert fast.props is not None and other.props is not None
        assert np.array_equal(fast.props.props, other.props.props)
        assert fast.props.paint == other.props.paint


@pytest.mark.parametrize("seed", range(4))
def test_random_coloured_triangles_read_the_same_three_ways(seed: int) -> None:
    assert_agree(document(coloured_triangles(np.random.default_rng(seed), 500)))


@pytest.mark.parametrize("seed", range(2))
def test_without_props_coloured_triangles_read_the_same_three_ways(seed: int) -> None:
    # Model colours off: the fast path reads coloured triangles and drops their properties (it used to hand
    # every one to the general path, which halved the scan's speed), and keeps no paint.
    data = document(coloured_triangles(np.random.default_rng(100 + seed), 500))
    fast = scan_meshes(data, 10**8, use_numba=True, want_props=False)
    general = scan_meshes(data.replace(b'"', b"'"), 10**8, use_numba=True, want_props=False)
    twin = scan_meshes(data, 10**8, use_numba=False, want_props=False)
    streamed, _ = scan_meshes_stream((data[at : at + 97] for at in range(0, len(data), 97)), 10**8, want_props=False)
    assert len(fast.triangles) == 500
    for other in (general, twin, streamed):
        assert np.array_equal(fast.triangles, other.triangles)
        assert other.props is None
    assert fast.props is None


def test_fast_path_values() -> None:
    data = document(
        '<triangle v1="6" v2="7" v3="8" paint_color="4C3"/>\n'
        '<triangle v1="6" v2="7" v3="8" paint_color=""/>\n'
        '<triangle v1="0" v2="1" v3="2"/>\n'
    )
    scan = scan_meshes(data, 10**8, use_numba=True, want_props=True)
    assert scan.props is not None and scan.props.paint == {0: "4C3"}
    assert scan.props.props.tolist() == [[-1, -1, -1, -1]] * 3
    data = document(
        '<triangle v1="0" v2="1" v3="2" pid="4" p1="1234567"/>\n'
        '<triangle v1="3" v2="4" v3="5" pid="2" p1="0" p2="9" p3="8"/>\n'
    )
    scan = scan_meshes(data, 10**8, use_numba=True, want_props=True)
    assert scan.props is not None
    assert scan.props.props.tolist() == [[4, 1234567, -1, -1], [2, 0, 9, 8]]
    assert scan.triangles.tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize("size", [1, 63, 127, 128, 129, 1000])
def test_coloured_fast_path_at_chunk_edges(size: int) -> None:
    data = document(coloured_triangles(np.random.default_rng(size), 200))
    whole = scan_meshes(data, 10**8, want_props=True)
    streamed, _ = scan_meshes_stream((data[at : at + size] for at in range(0, len(data), size)), 10**8, want_props=True)
    assert np.array_equal(whole.triangles, streamed.triangles)
    assert whole.props is not None and streamed.props is not None
    assert np.array_equal(whole.props.props, streamed.props.props)


@pytest.mark.parametrize("name", COLOURED)
def test_corpus_coloured_parts_read_the_same_as_the_twin(corpus: Path, name: str) -> None:
    with zipfile.ZipFile(corpus / "3mf" / name) as z:
        parts = [n for n in z.namelist() if n.lower().endswith(".model")]
        assert parts
        for part in parts:
            assert_agree(z.read(part))
