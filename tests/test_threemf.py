"""3MF loading: corpus files, hostile packages, the mesh scanner (numba and NumPy) and thumbnails."""

from __future__ import annotations

import csv
import io
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from corpus_paths import CORPUS, corpus_files, corpus_sweep
from mesh_builders import ROOT_RELS, make_3mf, model_xml, synthetic_3mf, unit_cube_mesh
from PIL import Image

from sidecar_thumbs.errors import BadModelError, LimitExceededError, ModelError, NoGeometryError
from sidecar_thumbs.mesh import LoadLimits
from sidecar_thumbs.mesh.load import load_mesh, load_mesh_bytes, warm_up
from sidecar_thumbs.mesh.threemf import find_embedded_thumbnail
from sidecar_thumbs.mesh.xmlscan import numba_available, scan_meshes

CUBE = f'<object id="1">{unit_cube_mesh()}</object>'

# The manifest's `triangles` column counts the <triangle> elements in the package. What we draw
# is the build: meshes instanced by build items and components, without type="other" objects.
DRAWN_TRIANGLES = {
    "3mfsamples__multiple_cylinders.3mf": 6 * 88,  # one 88-triangle mesh placed by 6 build items
    "lib3mf__WagonWithWheels.3mf": 376,  # wheels instanced by nested components, 2 build items
    "trimesh__counterXP.3MF": 83750,  # 8 components instance the meshes several times
    "trimesh__pyramids.3mf": 3276,  # 9 build items over 7 objects
    "boxturtle__desiccant_lid_x4.3mf": 1146 - 96,  # a 96-triangle type="other" object is not drawn
}
NO_GEOMETRY = {"3mfsamples__pyramid.3mf"}  # beam lattice only

# corpus/bad files we read anyway, and why (every other bad file must raise a ModelError).
LENIENT_BAD = {
    # materials extension: a missing colour value does not change the geometry (not validated)
    "3mfsamples__MUSTFAIL_3MF100_Extension_Chapter2_MissingColorValue.3mf",
    # the root relationship's model part exists; the missing part is a texture we never read
    "3mfsamples__MUSTFAIL_Chapter2.1.1a_PartsRelationships_NonExist3DModelPart.3mf",
    # two root model relationships: the first one is used
    "3mfsamples__MUSTFAIL_Chapter2.1.2_PartsRelationships_MoreThanOne3DModelPart.3mf",
    # the undeclared 'ms' prefix is inside a material resource, which the structural parse skips
    "3mfsamples__multiprop-metallic.3mf",
    # invalid multiproperties (materials extension) do not change the geometry
    "lib3mf__MultiProperty_Out_incorrect.3mf",
    # binary G-code named .gcode: read by its GCDE magic, as PrusaSlicer does (the corpus README allows it)
    "buddy__mini_cube_binary.gcode",
}


def _manifest() -> dict[str, int]:
    path = CORPUS / "MANIFEST.tsv"
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as f:
        return {r["path"]: int(r["triangles"]) for r in csv.DictReader(f, delimiter="\t") if r["triangles"]}


MANIFEST = _manifest()


@pytest.mark.parametrize("path", corpus_sweep(corpus_files("3mf"), also=NO_GEOMETRY))
def test_corpus_3mf_loads_with_expected_triangle_count(corpus: Path, path: Path) -> None:
    if path.name in NO_GEOMETRY:
        with pytest.raises(NoGeometryError, match="no geometry"):
            load_mesh(path)
        return
    mesh = load_mesh(path)
    assert mesh.format == "3mf"
    assert mesh.triangles.dtype == np.float32 and mesh.triangles.flags.c_contiguous
    assert mesh.triangles.shape[1:] == (3, 3)
    assert np.isfinite(mesh.triangles).all()
    expected = DRAWN_TRIANGLES.get(path.name, MANIFEST[f"3mf/{path.name}"])
    assert mesh.triangle_count == expected


@pytest.mark.parametrize("path", corpus_files("bad"), ids=lambda p: p.name)
def test_bad_corpus_file_loads_leniently_or_fails_with_one_line_model_error(corpus: Path, path: Path) -> None:
    try:
        mesh = load_mesh(path)
    except ModelError as exc:
        assert path.name not in LENIENT_BAD
        assert exc.message == str(exc) and "\n" not in str(exc) and str(exc)
    else:
        assert path.name in LENIENT_BAD, "loads: add it to LENIENT_BAD with the reason"
        assert mesh.triangle_count > 0 and np.isfinite(mesh.triangles).all()


def _bomb(size: int) -> bytes:
    """A 3MF whose root model part inflates to ``size`` bytes of spaces (compresses ~1000:1)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("_rels/.rels", ROOT_RELS.format(extra=""))
        with z.open(zipfile.ZipInfo("3D/3dmodel.model"), "w") as f:
            chunk = b" " * (1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
    return buf.getvalue()


def test_zip_bomb_is_refused_with_bounded_memory() -> None:
    data = _bomb(64 << 20)
    limits = LoadLimits(max_decompressed_bytes=1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceededError, match="inflates to 67108864 bytes"):
            load_mesh_bytes(data, "bomb.3mf", limits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_zip_bomb_with_lying_sizes_is_refused_with_bounded_memory() -> None:
    size = 64 << 20
    # Declare 100 bytes in both the local header and the central directory.
    data = _bomb(size).replace(struct.pack("<I", size), struct.pack("<I", 100))
    tracemalloc.start()
    try:
        with pytest.raises(BadModelError):
            load_mesh_bytes(data, "bomb.3mf", LoadLimits(max_decompressed_bytes=1 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_declared_size_within_cap_but_inflating_more_is_cut_at_the_cap() -> None:
    # A member inflating past the cap in reality is refused even if each chunk looks small.
    data = _bomb(4 << 20)
    with pytest.raises(LimitExceededError):
        load_mesh_bytes(data, "bomb.3mf", LoadLimits(max_decompressed_bytes=(4 << 20) - 1))


@pytest.mark.parametrize(
    "prolog",
    [
        '<!DOCTYPE model [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>',
        '<!DOCTYPE model SYSTEM "http://example.com/evil.dtd">',
    ],
)
def test_dtd_and_entities_are_refused(prolog: str) -> None:
    xml = model_xml(CUBE, '<item objectid="1"/>').replace("<model", prolog + "<model", 1)
    with pytest.raises(BadModelError, match="DTD/entities not allowed"):
        load_mesh_bytes(make_3mf(xml), "x.3mf")


def test_entity_in_relationships_is_refused() -> None:
    rels = '<!DOCTYPE r [<!ENTITY x "y">]>'
    data = make_3mf(model_xml(CUBE, '<item objectid="1"/>'))
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info.filename, rels.encode() + body if info.filename == "_rels/.rels" else body)
    with pytest.raises(BadModelError, match="DTD/entities"):
        load_mesh_bytes(buf.getvalue(), "x.3mf")


def test_non_utf8_model_is_refused() -> None:
    xml = model_xml(CUBE, '<item objectid="1"/>').replace("UTF-8", "UTF-16")
    with pytest.raises(BadModelError, match="UTF-8"):
        load_mesh_bytes(make_3mf(xml.encode("utf-16")), "x.3mf")


@pytest.mark.parametrize(
    ("resources", "build", "message"),
    [
        (CUBE, '<item objectid="7"/>', "object id 7"),
        (
            CUBE + '<object id="2"><components><component objectid="3"/></components></object>'
            '<object id="3"><components><component objectid="2"/></components></object>',
            '<item objectid="2"/>',
            "cycle",
        ),
        (CUBE.replace('v3="1"', 'v3="8"', 1), '<item objectid="1"/>', "index out of range"),
        (CUBE, '<item objectid="1" p:path="/3D/missing.model"/>', "missing"),
        (CUBE, '<item objectid="1" transform="1 0 0 0 1 0 0 0 1 0 0"/>', "bad transform"),
        (CUBE.replace('x="1"', 'x="1,5"', 1), '<item objectid="1"/>', "not a number.*'1,5'"),
        (CUBE.replace(' y="0"', "", 1), '<item objectid="1"/>', "lacks an x, y or z"),
        (CUBE.replace('id="1"', 'id="1" type="bogus"'), '<item objectid="1"/>', "invalid type"),
        (CUBE + CUBE, '<item objectid="1"/>', "twice"),
    ],
    ids=["missing-object", "cycle", "index", "missing-part", "transform", "number", "attr", "type", "dup"],
)
def test_reference_and_value_errors_are_bad_model_errors(resources: str, build: str, message: str) -> None:
    with pytest.raises(BadModelError, match=message):
        load_mesh_bytes(make_3mf(model_xml(resources, build)), "x.3mf")


def test_not_a_zip_and_missing_root_part_are_bad_model_errors() -> None:
    with pytest.raises(BadModelError, match="not a ZIP"):
        load_mesh_bytes(b"<model/>", "x.3mf")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(BadModelError, match="missing"):
        load_mesh_bytes(buf.getvalue(), "x.3mf")


def test_exponential_component_instancing_is_refused_quickly() -> None:
    # Each level places the previous one twice: 12 * 2**30 triangles if expanded naively.
    levels = [CUBE]
    for k in range(2, 32):
        refs = f'<component objectid="{k - 1}"/>' * 2
        levels.append(f'<object id="{k}"><components>{refs}</components></object>')
    xml = model_xml("".join(levels), '<item objectid="31"/>')
    with pytest.raises(LimitExceededError, match="triangles"):
        load_mesh_bytes(make_3mf(xml), "x.3mf")


def test_deep_component_nesting_is_refused() -> None:
    chain = [CUBE] + [
        f'<object id="{k}"><components><component objectid="{k - 1}"/></components></object>' for k in range(2, 60)
    ]
    with pytest.raises(BadModelError, match="nested deeper"):
        load_mesh_bytes(make_3mf(model_xml("".join(chain), '<item objectid="59"/>')), "x.3mf")


def test_triangle_cap_applies_to_the_scan_and_to_instancing() -> None:
    data = make_3mf(model_xml(CUBE, '<item objectid="1"/>' * 3))
    assert load_mesh_bytes(data, "x.3mf", LoadLimits(max_triangles=36)).triangle_count == 36
    with pytest.raises(LimitExceededError):
        load_mesh_bytes(data, "x.3mf", LoadLimits(max_triangles=35))
    with pytest.raises(LimitExceededError):
        load_mesh_bytes(data, "x.3mf", LoadLimits(max_triangles=11))


def test_non_finite_vertices_drop_their_triangles() -> None:
    xml = model_xml(CUBE.replace('x="1" y="1" z="1"', 'x="1e999" y="1" z="1"'), '<item objectid="1"/>')
    mesh = load_mesh_bytes(make_3mf(xml), "x.3mf")
    assert 0 < mesh.triangle_count < 12 and np.isfinite(mesh.triangles).all()


# ----------------------------------------------------------------- the scanner, both backends

BACKENDS = [pytest.param(True, id="numba"), pytest.param(False, id="numpy")]

ODD_BUT_VALID = b"""<?xml version='1.0' encoding='utf-8'?>
<!-- a comment with <mesh><vertex x="9" y="9" z="9"/></mesh> inside -->
<m:model xmlns:m="http://schemas.microsoft.com/3dmanufacturing/core/2015/02" xmlns:q="urn:q">
 <m:resources><m:object id="1"><m:mesh q:note='a > b'>
  <m:vertices>
   <m:vertex z="3" y='2' x = "1" q:extra="z"/><m:vertex
      x="+1E+2"
      y=" .5 " z="-7."></m:vertex>
   <!-- <m:vertex x="5" y="5" z="5"/> -->
   <m:vertex x="1e-3" y="0" z="-0"/>
  </m:vertices>
  <m:triangles><m:triangle pid="1" p1="0" v3="2" v2='1' v1="0"/><![CDATA[<m:triangle v1="9"/>]]>
  </m:triangles>
 </m:mesh></m:object></m:resources>
 <m:build><m:item objectid="1"/></m:build>
</m:model>"""


@pytest.mark.parametrize("use_numba", BACKENDS)
def test_scanner_handles_prefixes_quotes_order_whitespace_comments_and_cdata(use_numba: bool) -> None:
    if use_numba and not numba_available():
        pytest.skip("numba not installed")
    scan = scan_meshes(ODD_BUT_VALID, 100, use_numba=use_numba)
    np.testing.assert_array_equal(scan.vertices, np.float32([[1, 2, 3], [100, 0.5, -7], [0.001, 0, 0]]))
    np.testing.assert_array_equal(scan.triangles, [[0, 1, 2]])
    assert len(scan.spans) == 1


@pytest.mark.parametrize("use_numba", BACKENDS)
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b'x="1" y="2" z="3"', None),
        (b'x="1" y="2" z="abc"', "not a number"),
        (b'x="1" y="2" z="1e"', "not a number"),
        (b'x="1" y="2" z="nan"', "not a number"),
        (b'x="1" y="2" z=""', "not a number"),
        (b'x="1" y="2"', "lacks"),
    ],
)
def test_scanner_rejects_bad_numbers_the_same_way(use_numba: bool, bad: bytes, message: str | None) -> None:
    if use_numba and not numba_available():
        pytest.skip("numba not installed")
    doc = b"<mesh><vertices><vertex " + bad + b"/></vertices></mesh>"
    if message is None:
        assert len(scan_meshes(doc, 10, use_numba=use_numba).vertices) == 1
    else:
        with pytest.raises(BadModelError, match=message):
            scan_meshes(doc, 10, use_numba=use_numba)


# The big parts (a 2 MB to 14 MB part scanned twice: up to 0.8 s each) run in the full suite only.
BIG_PART = pytest.mark.integration
EQUIVALENCE_FILES = [
    pytest.param("3mfsamples__cube_gears.3mf", marks=BIG_PART),
    "3mfsamples__dodeca_chain_loop_color.3mf",
    "3mfsamples__spinal implant.3mf",
    "lib3mf__P_XXM_0519_01.3mf",
    "prusaslicer__chess.3mf",
    pytest.param("boxturtle__tray_multicolor.3mf", marks=BIG_PART),
    "trimesh__P_XPM_0331_01.3mf",
    pytest.param(
        "3mfsamples__multipletextures.3mf", marks=BIG_PART
    ),  # large texture-coordinate resources (skipped ranges)
]


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
@pytest.mark.parametrize("name", EQUIVALENCE_FILES)
def test_numba_and_numpy_scanners_give_identical_arrays(corpus: Path, name: str) -> None:
    with zipfile.ZipFile(corpus / "3mf" / name) as z:
        parts = [z.read(n) for n in z.namelist() if n.endswith(".model")]
    for data in parts:
        a = scan_meshes(data, 10**8, use_numba=True)
        b = scan_meshes(data, 10**8, use_numba=False)
        np.testing.assert_array_equal(a.vertices, b.vertices)
        np.testing.assert_array_equal(a.triangles, b.triangles)
        np.testing.assert_array_equal(a.spans, b.spans)
        np.testing.assert_array_equal(a.skippable, b.skippable)


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
def test_numba_and_numpy_agree_on_a_generated_mesh() -> None:
    with zipfile.ZipFile(io.BytesIO(synthetic_3mf(5000, seed=3))) as z:
        data = z.read("3D/3dmodel.model")
    a, b = scan_meshes(data, 10**6, use_numba=True), scan_meshes(data, 10**6, use_numba=False)
    assert a.triangles.shape == (5000, 3)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.triangles, b.triangles)


def test_warm_up_runs() -> None:
    warm_up()


# ----------------------------------------------------------------- embedded thumbnails

THUMBNAILS = {
    "3mfsamples__box_prod.3mf": "Metadata/thumbnail.png",
    "lib3mf__Thumbnail_Package.3mf": "Metadata/thumbnail.png",
    "boxturtle__tray_multicolor.3mf": "Metadata/plate_1.png",  # Bambu: no thumbnail.png
    "boxturtle__desiccant_lid_x4.3mf": "Metadata/plate_1.png",
    "prusaslicer__seam_test_object.3mf": "Metadata/thumbnail.png",
    "lib3mf__P_XXM_0519_01.3mf": "Thumbnails/P_XXM_0519_01.png",  # via the package relationship
    "3mfsamples__box.3mf": None,
    "lib3mf__cam_51476_test.3mf": None,
}


@pytest.mark.parametrize(("name", "member"), THUMBNAILS.items())
def test_embedded_thumbnail_lookup_on_corpus(corpus: Path, name: str, member: str | None) -> None:
    found = find_embedded_thumbnail((corpus / "3mf" / name).read_bytes())
    if member is None:
        assert found is None
    else:
        assert found is not None and found[0] == member
        with Image.open(io.BytesIO(found[1])) as im:
            assert im.size[0] > 0


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG")
    return buf.getvalue()


def test_thumbnail_relationship_may_point_at_a_jpeg_in_any_case() -> None:
    rel = (
        '<Relationship Target="/Metadata/Cover.JPG" Id="t" '
        'Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/thumbnail"/>'
    )
    data = make_3mf(model_xml(CUBE, '<item objectid="1"/>'), {"metadata/cover.jpg": _jpeg()}, rel)
    found = find_embedded_thumbnail(data)
    assert found is not None and found[0] == "metadata/cover.jpg"


def test_unusable_thumbnails_are_skipped() -> None:
    parts = {
        "Metadata/thumbnail.png": b"\x89PNG\r\n\x1a\n not really",
        "Metadata/plate_1.png": _png(5000, 2),  # beyond the 4096 px cap
        "Auxiliaries/.thumbnails/thumbnail_middle.png": _png(4, 3),
    }
    found = find_embedded_thumbnail(make_3mf(model_xml(CUBE, '<item objectid="1"/>'), parts))
    assert found is not None and found[0] == "Auxiliaries/.thumbnails/thumbnail_middle.png"


# The cut-off bomb has an id of its own: pytest would spell its 2 MB into the test id (and into its
# cache, 13 MB of node ids), with the zip's timestamp in it.
@pytest.mark.parametrize("data", [b"", b"not a zip", pytest.param(_bomb(2 << 20)[:-30], id="cut-off-bomb")])
def test_thumbnail_lookup_never_raises(data: bytes) -> None:
    assert find_embedded_thumbnail(data) is None


def test_thumbnail_bomb_is_not_inflated() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("Metadata/thumbnail.png", b"\0" * (4 << 20))
    assert find_embedded_thumbnail(buf.getvalue(), LoadLimits(max_decompressed_bytes=1 << 20)) is None


def test_stored_bzip2_and_lzma_members_load_too() -> None:
    xml = model_xml(CUBE, '<item objectid="1"/>')
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        assert load_mesh_bytes(make_3mf(xml, compression=method), "x.3mf").triangle_count == 12
