"""AMF: units, constellations and their transforms, colour precedence, zip-compressed files, and
the safe-XML rules (no DTD, no entities) and caps against hostile files."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sidecar_thumbs.errors import BadModelError, LimitExceededError, NoGeometryError
from sidecar_thumbs.mesh import LoadLimits
from sidecar_thumbs.mesh.load import detect_format, load_mesh_bytes


def _colour(r: float, g: float, b: float) -> str:
    return f"<color><r>{r}</r><g>{g}</g><b>{b}</b></color>"


def _object(oid: str = "1", *, obj_colour: str = "", volumes: str | None = None) -> str:
    """A right triangle (0,0,0) (1,0,0) (0,1,0) plus a point at z=1, as an AMF object."""
    verts = "".join(
        f"<vertex><coordinates><x>{x}</x><y>{y}</y><z>{z}</z></coordinates></vertex>"
        for x, y, z in [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)]
    )
    if volumes is None:
        volumes = "<volume><triangle><v1>0</v1><v2>1</v2><v3>2</v3></triangle></volume>"
    return f'<object id="{oid}">{obj_colour}<mesh><vertices>{verts}</vertices>{volumes}</mesh></object>'


def _amf(body: str, unit: str | None = None, prolog: str = '<?xml version="1.0" encoding="UTF-8"?>') -> bytes:
    attr = f' unit="{unit}"' if unit else ""
    return f"{prolog}\n<amf{attr}>{body}</amf>".encode()


def _load(data: bytes, name: str = "m.amf", limits: LoadLimits | None = None):  # type: ignore[no-untyped-def]
    return load_mesh_bytes(data, name, limits or LoadLimits())


@pytest.mark.parametrize(("unit", "scale"), [(None, 1.0), ("millimeter", 1.0), ("inch", 25.4), ("meter", 1000.0),
                                             ("feet", 304.8), ("micron", 0.001)])  # fmt: skip
def test_units_become_millimetres(unit: str | None, scale: float) -> None:
    mesh = _load(_amf(_object(), unit))
    np.testing.assert_allclose(mesh.bounds()[1], [scale, scale, 0], rtol=1e-6)


def test_unknown_unit_is_refused() -> None:
    with pytest.raises(BadModelError, match="unknown unit 'furlong'"):
        _load(_amf(_object(), "furlong"))


def test_amf_xml_double_extension_is_amf() -> None:
    assert detect_format("Thing.AMF.xml") == "amf" and detect_format("x.amf") == "amf"
    with pytest.raises(BadModelError, match="not a model file"):
        detect_format("notes.xml")


def test_constellation_instances_are_placed_by_their_transforms() -> None:
    body = _object() + (
        '<constellation id="10">'
        '<instance objectid="1"><deltax>10</deltax><rz>90</rz></instance>'
        '<instance objectid="1"><deltaz>5</deltaz><rx>180</rx></instance>'
        "</constellation>"
    )
    mesh = _load(_amf(body, "inch"))
    assert mesh.triangle_count == 2  # the object only through its two instances
    first, second = mesh.triangles.astype(np.float64) / 25.4
    # rz 90: (1,0,0) -> (0,1,0), (0,1,0) -> (-1,0,0); then +10 in x.
    np.testing.assert_allclose(first, [[10, 0, 0], [10, 1, 0], [9, 0, 0]], atol=1e-5)
    # rx 180: (0,1,0) -> (0,-1,0); then +5 in z.
    np.testing.assert_allclose(second, [[0, 0, 5], [1, 0, 5], [0, -1, 5]], atol=1e-5)


def test_nested_constellations_multiply_and_unplaced_objects_stand_where_they_are() -> None:
    body = (
        _object("1") + _object("2") + '<constellation id="3"><instance objectid="1"><deltax>2</deltax></instance>'
        '<instance objectid="1"><deltax>4</deltax></instance></constellation>'
        '<constellation id="4"><instance objectid="3"><deltay>10</deltay></instance>'
        '<instance objectid="3"><deltay>20</deltay></instance></constellation>'
    )
    mesh = _load(_amf(body))
    assert mesh.triangle_count == 5  # 2 x 2 instances of object 1, and object 2 at the origin
    np.testing.assert_allclose(mesh.bounds()[0], [0, 0, 0])
    np.testing.assert_allclose(mesh.bounds()[1], [5, 21, 0])


@pytest.mark.parametrize(
    ("constellations", "match"),
    [
        ('<constellation id="5"><instance objectid="9"/></constellation>', "missing id '9'"),
        (
            '<constellation id="5"><instance objectid="6"/></constellation>'
            '<constellation id="6"><instance objectid="5"/></constellation>',
            "contains itself",
        ),
    ],
)
def test_bad_constellations_fail_with_one_line(constellations: str, match: str) -> None:
    # A cycle has no root: give it one so the expansion walks into the cycle.
    root = '<constellation id="7"><instance objectid="5"/></constellation>' if "contains" in match else ""
    with pytest.raises(BadModelError, match=match):
        _load(_amf(_object() + constellations + root))


@pytest.mark.integration  # a bomb or a cost bound, like the reliability suite's: out of the fast lane
def test_exponential_instancing_is_capped() -> None:
    levels = "".join(
        f'<constellation id="c{i}">' + f'<instance objectid="c{i - 1}"/>' * 10 + "</constellation>" for i in range(1, 9)
    ).replace('objectid="c0"', 'objectid="1"')
    with pytest.raises(LimitExceededError):
        _load(_amf(_object() + levels), limits=LoadLimits(max_triangles=100_000))


@pytest.mark.integration  # a bomb or a cost bound, like the reliability suite's: out of the fast lane
def test_exponential_instancing_of_nothing_is_capped_too() -> None:
    empty = '<object id="e"/>'
    levels = "".join(
        f'<constellation id="c{i}">' + f'<instance objectid="c{i - 1}"/>' * 10 + "</constellation>"
        for i in range(1, 10)
    ).replace('objectid="c0"', 'objectid="e"')
    with pytest.raises(LimitExceededError):
        _load(_amf(_object() + empty + levels), limits=LoadLimits(max_triangles=100_000))


def test_colour_precedence_triangle_vertex_volume_material_object() -> None:
    red, green, blue, white, grey = _colour(1, 0, 0), _colour(0, 1, 0), _colour(0, 0, 1), _colour(1, 1, 1), "0.5"
    tri = "<triangle>{c}<v1>0</v1><v2>1</v2><v3>2</v3></triangle>"
    volumes = (
        f"<volume>{blue}{tri.format(c=red)}{tri.format(c='')}</volume>"  # own colour, then the volume's
        f'<volume materialid="7">{tri.format(c="")}</volume>'  # the material's
        f"<volume>{tri.format(c='')}</volume>"  # the object's
    )
    material = f'<material id="7">{_colour(grey, grey, grey)}</material>'
    mesh = _load(_amf(_object(obj_colour=white, volumes=volumes) + material))
    assert mesh.face_colors is not None
    assert mesh.face_colors.tolist() == [
        [255, 0, 0, 255],
        [0, 0, 255, 255],
        [128, 128, 128, 255],
        [255, 255, 255, 255],
    ]
    # Vertex colours beat the volume's; a triangle without any colour has alpha 0.
    verts = "".join(
        f"<vertex>{green}<coordinates><x>{x}</x><y>{y}</y><z>0</z></coordinates></vertex>"
        for x, y in [(0, 0), (1, 0), (0, 1)]
    )
    body = f'<object id="1"><mesh><vertices>{verts}</vertices><volume>{blue}{tri.format(c="")}</volume></mesh></object>'
    assert _load(_amf(body)).face_colors.tolist() == [[0, 255, 0, 255]]  # type: ignore[union-attr]
    assert _load(_amf(_object())).face_colors is None


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_zip_compressed_amf_draws_every_amf_entry_each_with_its_own_ids_and_unit() -> None:
    data = _zip({"a.amf": _amf(_object(), "inch"), "sub/b.AMF": _amf(_object()), "readme.txt": b"hello"})
    mesh = _load(data)
    assert mesh.format == "amf-zip" and mesh.triangle_count == 2
    np.testing.assert_allclose(mesh.bounds()[1], [25.4, 25.4, 0])


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE amf [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + ']>\n<amf><object id="1"><metadata>&j;</metadata></object></amf>'
)


@pytest.mark.parametrize(
    "data",
    [
        BILLION_LAUGHS.encode(),
        b'<?xml version="1.0"?><!DOCTYPE amf SYSTEM "http://example.com/evil.dtd"><amf/>',
        b'<?xml version="1.0"?><!DOCTYPE amf [<!ENTITY x SYSTEM "file:///etc/passwd">]><amf>&x;</amf>',
        # UTF-16: the byte check cannot see the declaration; expat's handlers stop it.
        BILLION_LAUGHS.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>').encode("utf-16"),
    ],
    ids=["billion-laughs", "external-dtd", "external-entity", "utf16-billion-laughs"],
)
def test_dtd_and_entities_are_refused_with_bounded_memory(data: bytes) -> None:
    for packed in (data, _zip({"x.amf": data})):
        tracemalloc.start()
        try:
            with pytest.raises(BadModelError, match="DTD/entities not allowed"):
                _load(packed)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 2 << 20


def test_zip_bomb_amf_is_refused_with_bounded_memory() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, z.open("bomb.amf", "w") as f:
        for _ in range(64):
            f.write(b" " * (1 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceededError, match="inflates to"):
            _load(buf.getvalue(), limits=LoadLimits(max_decompressed_bytes=1 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_entries_share_one_inflate_budget() -> None:
    entry = _amf(_object()) + b" " * 600_000
    with pytest.raises(LimitExceededError):
        _load(_zip({"a.amf": entry, "b.amf": entry}), limits=LoadLimits(max_decompressed_bytes=1_000_000))
    assert _load(_zip({"a.amf": entry}), limits=LoadLimits(max_decompressed_bytes=1_000_000)).triangle_count == 1


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (b"", BadModelError, "not well-formed"),
        (b"<model/>", BadModelError, "not an AMF document"),
        (b"<amf><object id='1'></amf>", BadModelError, "not well-formed"),
        (_amf(_object().replace("<x>1</x>", "<x>1,5</x>")), BadModelError, "'1,5' is not a number"),
        (_amf(_object().replace("<x>1</x>", "<x>inf</x>")), BadModelError, "is not a number"),
        (_amf(_object().replace("<v3>2</v3>", "<v3>-2</v3>")), BadModelError, "not a non-negative integer"),
        (_amf(_object().replace("<v3>2</v3>", "<v3>4</v3>")), BadModelError, "index 4 out of range"),
        (_amf(_object().replace("<v3>2</v3>", "")), BadModelError, "lacks v1, v2 or v3"),
        (_amf(_object().replace("<z>0</z>", "", 1)), BadModelError, "lacks an x, y or z"),
        (_amf(_object() + _object()), BadModelError, "defined twice"),
        (_amf(""), NoGeometryError, "places no triangles"),
        (b"PK\x03\x04 not really a zip", BadModelError, "not a AMF file: not a ZIP"),
        pytest.param(  # an id of its own: the zip's bytes hold the time they were made
            _zip({"readme.txt": b"hello"}), BadModelError, "AMF readme.txt: XML is not well-formed", id="zip-of-text"
        ),
    ],
)
def test_bad_files_fail_with_one_line(data: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match) as info:
        _load(data)
    assert "\n" not in str(info.value)


def test_coordinates_beyond_float32_drop_their_triangles_quietly() -> None:
    far = _object("2").replace("<x>1</x>", "<x>1e39</x>")
    mesh = _load(_amf(_object() + far))
    assert mesh.triangle_count == 1 and np.isfinite(mesh.triangles).all()


def test_geometry_outside_a_mesh_is_not_drawn() -> None:
    # Found by the fuzzer: <vertices> and <volume> straight in <object>, then a triangle pointing
    # past the vertices, escaped the range check done at </mesh> (an IndexError, not one line).
    body = _object().replace("<mesh>", "").replace("</mesh>", "").replace("<v3>2</v3>", "<v3>7</v3>")
    with pytest.raises(NoGeometryError):
        _load(_amf(body))


def test_triangle_cap_stops_the_parse() -> None:
    tri = "<triangle><v1>0</v1><v2>1</v2><v3>2</v3></triangle>"
    with pytest.raises(LimitExceededError):
        _load(_amf(_object(volumes=f"<volume>{tri * 50}</volume>")), limits=LoadLimits(max_triangles=10))


def _same_documents(data: bytes) -> None:
    """The bulk reader (amfbulk) and the element-by-element one give the same document."""
    from sidecar_thumbs.mesh.amfxml import parse_amf_xml

    results = []
    for use_bulk in (True, False):
        try:
            results.append(parse_amf_xml(data, "x", 10_000, use_bulk=use_bulk))
        except BadModelError as exc:
            results.append(type(exc))
    bulk, plain = results
    if isinstance(plain, type) or isinstance(bulk, type):
        assert bulk == plain
        return
    assert bulk.unit == plain.unit and bulk.materials == plain.materials
    assert bulk.constellations == plain.constellations and bulk.objects.keys() == plain.objects.keys()
    for key, a in bulk.objects.items():
        b = plain.objects[key]
        for name in ("vertices", "vertex_colors", "triangles", "triangle_colors", "triangle_volume"):
            np.testing.assert_array_equal(np.array(getattr(a, name)), np.array(getattr(b, name)), err_msg=name)
        assert (a.volumes, a.color) == (b.volumes, b.color) or np.isnan(a.color).all()


def test_bulk_and_element_readers_agree_on_the_corpus(corpus: Path) -> None:
    from sidecar_thumbs.mesh.amfbulk import cut_bulk

    cut = 0
    for path in sorted((corpus / "amf").iterdir()):
        data = path.read_bytes()
        if data.startswith(b"PK"):
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                entries = [z.read(n) for n in z.namelist() if n.lower().endswith(".amf")]
        else:
            entries = [data]
        for entry in entries:
            _same_documents(entry)
            cut += cut_bulk(entry) is not None
    assert cut >= 5  # the plain layout is common: most corpus files take the bulk path


@pytest.mark.parametrize(
    "vertex",
    [
        "<vertex><coordinates><x>1</x><y>2</y><z>3</z></coordinates></vertex>",
        "<vertex>\n <coordinates> <x> 1e-3</x><y>-2.5E+2 </y><z>+.5</z></coordinates>\n</vertex>",
        "<vertex><coordinates><x>1</x><y></y><z>2 3</z></coordinates></vertex>",  # empty and double slots
        "<vertex><coordinates><y>2</y><x>1</x><z>3</z></coordinates></vertex>",  # another order
        "<vertex><coordinates><x>1</x><y>2</y><z>1e999</z></coordinates></vertex>",
        "<vertex><coordinates><x>1.2.3</x><y>2</y><z>3</z></coordinates></vertex>",
        "<vertex><coordinates><x>1_0</x><y>2</y><z>3</z></coordinates></vertex>",
        "<vertex><color><r>1</r><g>0</g><b>0</b></color><coordinates><x>1</x><y>2</y><z>3</z></coordinates></vertex>",
    ],
)
@pytest.mark.parametrize(
    "triangle",
    [
        "<triangle><v1>0</v1><v2>1</v2><v3>2</v3></triangle>",
        "<triangle> <v1> 0 </v1>\n<v2>1</v2><v3>02</v3></triangle>",
        "<triangle><v2>1</v2><v1>0</v1><v3>2</v3></triangle>",
        "<triangle><v1>0</v1><v2></v2><v3>1 2</v3></triangle>",
        "<triangle><v1>0</v1><v2>1</v2><v3>99999999999999999999999</v3></triangle>",
        "<triangle><v1>0</v1><v2>1</v2><v3>-2</v3></triangle>",
        "<triangle><v1>0</v1><v2>1</v2><v3>0000000000000000002</v3></triangle>",
        "<triangle><v1>0</v1><v2>1</v2><v3>" + "9" * 5000 + "</v3></triangle>",
        "<triangle><v1>0</v1><v2>1</v2><v3>\u00b2</v3></triangle>",  # a superscript two
    ],
)
def test_bulk_reader_takes_only_what_the_element_reader_reads_the_same(vertex: str, triangle: str) -> None:
    plain = "<vertex><coordinates><x>0</x><y>0</y><z>0</z></coordinates></vertex>"
    verts = vertex + plain * 2 + vertex
    tris = f"<metadata type='name'>v</metadata>{triangle}{triangle}"
    body = f'<object id="1"><mesh><vertices>{verts}</vertices><volume>{tris}</volume></mesh></object>'
    _same_documents(_amf(body))
