"""Hostile OBJ, PLY and AMF: Hypothesis mutates the lines of small valid files (tricky statements,
random bytes, truncation). Invariant: a mesh that can be drawn (finite, colours aligned), or a
:class:`ModelError` with one short line; nothing else escapes, and nothing takes long. For OBJ the
numba kernels and their Python twins must also agree, array for array and message for message."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar_thumbs.errors import ModelError
from sidecar_thumbs.mesh import LoadLimits
from sidecar_thumbs.mesh.load import load_mesh_bytes
from sidecar_thumbs.mesh.obj import join_continuations
from sidecar_thumbs.mesh.objscan import numba_available, scan_obj
from sidecar_thumbs.mesh.polygons import PYTHON_EAR_BUDGET, triangulate

# Fuzzing, like the reliability suite's: thousands of generated files, out of the fast lane.
pytestmark = pytest.mark.integration

LIMITS = LoadLimits(max_triangles=20_000, max_decompressed_bytes=1 << 20)
EXAMPLES = 300

OBJ = (
    b"mtllib cube.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0 0.5 0.5 0.5\nv 0 0 1\nvt 0 0\nvn 0 0 1\n"
    b"usemtl red\nf 1 2 3 4\nf 1/1/1 2/1/1 5/1/1\nf -1 -2 -3\ng g\no o\nf 2 3 5\n"
)
OBJ_LINES = [
    b"f 1 2 3",
    b"f -1 -2 -3",
    b"f 0 1 2",
    b"f 1/2/3 4//5 2/",
    b"f 1 2 3 4 5 1 2 3 4 5 2 4",
    b"v 1e309 0 0",
    b"v 1e39 -1e39 0 1e39 0 0",
    b"v -1e-400 .5 5.",
    b"v nan 0 0",
    b"v 1 2 3 4 5 6 7 8",
    b"v 1 2",
    b"usemtl",
    b"mtllib ../../etc/passwd /abs",
    b"f 1 2 \\",
    b"\\",
    b"f 99999999999 1 2",
    b"f +1 +2 +3",
    b"f " + b"1 2 3 4 " * 300,
    b"#",
    b"\x00\xff\xfe",
    b"\r",
]

PLY_ASCII = (
    b"ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
    b"property uchar red\nproperty uchar green\nproperty uchar blue\n"
    b"element face 2\nproperty list uchar int vertex_indices\nend_header\n"
    b"0 0 0 255 0 0\n1 0 0 0 255 0\n1 1 0 0 0 255\n0 1 1 9 9 9\n3 0 1 2\n4 0 1 2 3\n"
)
PLY_LINES = [
    b"element vertex 999999999",
    b"element face 4294967296",
    b"element tristrips 1",
    b"property list uchar int vertex_indices",
    b"property list uint int vertex_indices",
    b"property double x",
    b"format binary_big_endian 1.0",
    b"format binary_little_endian 1.0",
    b"end_header",
    b"3 0 1 2",
    b"255 0 1 2",
    b"4 0 1 2 -1",
    b"3 0 1 9",
    b"nan inf -inf",
    b"1e400 0 0 0 0 0",
    b"1e39 -1e39 0 255 0 0",
    b"",
]

AMF = (
    b'<?xml version="1.0"?>\n<amf unit="inch">\n<object id="1">\n<color><r>1</r><g>0</g><b>0</b></color>\n'
    b"<mesh>\n<vertices>\n"
    b"<vertex><coordinates><x>0</x><y>0</y><z>0</z></coordinates></vertex>\n"
    b"<vertex><coordinates><x>1</x><y>0</y><z>0</z></coordinates></vertex>\n"
    b"<vertex><coordinates><x>0</x><y>1</y><z>0</z></coordinates></vertex>\n"
    b'</vertices>\n<volume materialid="2">\n<triangle><v1>0</v1><v2>1</v2><v3>2</v3></triangle>\n</volume>\n'
    b'</mesh>\n</object>\n<material id="2"><color><r>0</r><g>1</g><b>0</b></color></material>\n'
    b'<constellation id="3"><instance objectid="1"><deltax>5</deltax><rz>30</rz></instance></constellation>\n'
    b"</amf>\n"
)
AMF_LINES = [
    b"<vertex><coordinates><x>2</x><y></y><z>3 4</z></coordinates></vertex>",
    b"<vertex><coordinates><y>2</y><x>1</x><z>3</z></coordinates></vertex>",
    b"<triangle><v1>0</v1><v2>1</v2><v3>0000000000002</v3></triangle>",
    b"<triangle><v1>0</v1><v2>2</v2><v3>1 1</v3></triangle>",
    b"<triangle><v1>0</v1><v2>99999999999</v2><v3>1</v3></triangle>",
    b"<!-- <vertices> -->",
    b'<!DOCTYPE amf [<!ENTITY a "aaaa">]>',
    b"&a;",
    b'<constellation id="4"><instance objectid="4"/></constellation>',
    b'<constellation id="5"><instance objectid="9"/></constellation>',
    b"<triangle><v1>0</v1><v2>1</v2><v3>99</v3></triangle>",
    b"<vertex><coordinates><x>1e999</x><y>0</y><z>0</z></coordinates></vertex>",
    b"<vertex><coordinates><x>1e39</x><y>-1e39</y><z>0</z></coordinates></vertex>",
    b"<color><r>x*y</r><g>0</g><b>0</b></color>",
    b'<object id="1"><mesh><vertices></vertices></mesh></object>',
    b"<instance objectid='1'><rx>nan</rx></instance>",
    b"<![CDATA[ ]]>",
    b"</amf>",
    b"<amf>",
    b"<mesh>",
    b"</mesh>",
    b"<vertices>",
    b"<volume>",
    b'<object id="7">',
    b"</object>",
]


def _mutate(base: bytes, extra: list[bytes], data: st.DataObject) -> bytes:
    lines = base.split(b"\n")
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["replace", "insert", "delete", "bytes", "truncate"]))
        at = data.draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "replace":
            lines[at] = data.draw(st.sampled_from(extra))
        elif op == "insert":
            lines.insert(at, data.draw(st.sampled_from(extra)))
        elif op == "delete" and len(lines) > 1:
            del lines[at]
        elif op == "bytes":
            lines[at] = data.draw(st.binary(max_size=40))
        elif op == "truncate":
            cut = data.draw(st.integers(0, len(lines[at])))
            lines = [*lines[:at], lines[at][:cut]]
    return b"\n".join(lines)


def _check(data: bytes, name: str) -> None:
    try:
        mesh = load_mesh_bytes(data, name, LIMITS, resolve_sibling=lambda _name: b"newmtl red\nKd 1 0 0\n")
    except ModelError as exc:
        assert exc.message == str(exc) and "\n" not in str(exc) and 0 < len(str(exc)) < 600, str(exc)
        return
    tri = mesh.triangles
    assert tri.dtype == np.float32 and tri.flags.c_contiguous and tri.ndim == 3 and tri.shape[1:] == (3, 3)
    assert 0 < len(tri) <= LIMITS.max_triangles and np.isfinite(tri).all()
    if mesh.face_colors is not None:
        assert mesh.face_colors.shape == (len(tri), 4) and mesh.face_colors.dtype == np.uint8


FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@FUZZ
@given(st.data())
def test_fuzzed_obj_lines(data: st.DataObject) -> None:
    mutated = _mutate(OBJ, OBJ_LINES, data)
    _check(mutated, "f.obj")
    _same_with_and_without_numba(join_continuations(mutated))


def _scan_or_error(text: bytes, use_numba: bool) -> tuple[str, list[np.ndarray]]:
    try:
        scan = scan_obj(text, LIMITS.max_triangles, use_numba=use_numba)
    except ModelError as exc:
        return f"{type(exc).__name__}: {exc}", []
    arrays = [scan.vertices, scan.colors, scan.corners, scan.starts, scan.materials, scan.libraries]
    # One ear-clipping budget for both: by default the Python twin gets a smaller one.
    tris, owner = triangulate(scan.vertices, scan.corners, scan.starts, use_numba, PYTHON_EAR_BUDGET)
    return f"ok {scan.short_faces}", [*arrays, tris, owner]


def _same_with_and_without_numba(text: bytes) -> None:
    """The Python twins (OBJ scanner, triangulation) give what the numba kernels give."""
    if not numba_available():
        return
    (status_a, arrays_a), (status_b, arrays_b) = _scan_or_error(text, True), _scan_or_error(text, False)
    assert status_a == status_b
    for a, b in zip(arrays_a, arrays_b, strict=True):
        np.testing.assert_array_equal(a, b)


@FUZZ
@given(st.data())
def test_fuzzed_ascii_ply_lines(data: st.DataObject) -> None:
    _check(_mutate(PLY_ASCII, PLY_LINES, data), "f.ply")


@FUZZ
@given(st.data(), st.sampled_from(["<", ">"]))
def test_fuzzed_binary_ply(data: st.DataObject, order: str) -> None:
    fmt = b"binary_little_endian" if order == "<" else b"binary_big_endian"
    head = PLY_ASCII.split(b"end_header\n")[0].replace(b"ascii", fmt) + b"end_header\n"
    verts = np.zeros(4, np.dtype([("p", order + "f4", (3,)), ("c", "u1", (3,))]))
    verts["p"] = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 1)]
    faces = (
        bytes([3])
        + np.array([0, 1, 2], order + "i4").tobytes()
        + bytes([4])
        + np.arange(4, dtype=order + "i4").tobytes()
    )
    body = bytearray(verts.tobytes() + faces)
    for _ in range(data.draw(st.integers(0, 4))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    header = _mutate(head, PLY_LINES, data) if data.draw(st.booleans()) else head
    _check(header + bytes(body[:cut] if data.draw(st.booleans()) else body), "f.ply")


@FUZZ
@given(st.data(), st.booleans())
def test_fuzzed_amf_lines(data: st.DataObject, zipped: bool) -> None:
    mutated = _mutate(AMF, AMF_LINES, data)
    _same_amf_with_and_without_bulk(mutated)
    if zipped:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("m.amf", mutated)
        mutated = buf.getvalue()
    _check(mutated, "f.amf")


def _same_amf_with_and_without_bulk(data: bytes) -> None:
    """The bulk reader (amfbulk) and the element-by-element one read the same document."""
    from sidecar_thumbs.mesh.amfxml import parse_amf_xml

    results = []
    for use_bulk in (True, False):
        try:
            doc = parse_amf_xml(data, "x", LIMITS.max_triangles, use_bulk=use_bulk)
        except ModelError as exc:
            results.append(type(exc).__name__)
            continue
        arrays = []
        for key in sorted(doc.objects):
            obj = doc.objects[key]
            arrays += [key, obj.vertices.tolist(), obj.triangles.tolist(), obj.triangle_volume.tolist()]
            arrays += [np.array(obj.vertex_colors).tobytes(), np.array(obj.triangle_colors).tobytes()]
        results.append(repr((doc.unit, doc.constellations, arrays)))
    assert results[0] == results[1]
