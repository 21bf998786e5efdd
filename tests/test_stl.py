"""STL loading: every corpus STL, the binary/ASCII decision, ASCII variants and hostile inputs."""

from __future__ import annotations

import csv
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from corpus_paths import CORPUS, corpus_files

from sidecar_thumbs import numba_cache
from sidecar_thumbs.errors import BadModelError, LimitExceededError, NoGeometryError
from sidecar_thumbs.mesh import LoadLimits
from sidecar_thumbs.mesh.load import detect_format, load_mesh, load_mesh_bytes


def _manifest_triangles() -> dict[str, int]:
    path = CORPUS / "MANIFEST.tsv"
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t")
        return {r["path"]: int(r["triangles"]) for r in rows if r["triangles"].strip()}


EXPECTED = _manifest_triangles()


def _binary_stl(tris: np.ndarray, header: bytes = b"binary", count: int | None = None) -> bytes:
    tris = np.asarray(tris, np.float32).reshape(-1, 3, 3)
    rec = np.zeros(len(tris), np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")]))
    rec["v"] = tris
    n = len(tris) if count is None else count
    return header.ljust(80, b" ")[:80] + struct.pack("<I", n) + rec.tobytes()


ASCII_TWO = b"""solid one
 facet normal 0 0 1
  outer loop
   vertex 0 0 0
   vertex 1 0 0
   vertex 0 1 0
  endloop
 endfacet
endsolid one
solid two
 facet normal 0 0 1
  outer loop
   vertex 1.5e+01 0 0
   vertex 1 2E-1 0
   vertex -0 1 +3
  endloop
 endfacet
endsolid two
"""


@pytest.mark.parametrize("path", corpus_files("stl-binary", "stl-ascii"), ids=lambda p: p.name)
def test_corpus_stl_loads_with_manifest_triangle_count(corpus: Path, path: Path) -> None:
    mesh = load_mesh(path)
    rel = f"{path.parent.name}/{path.name}"
    assert mesh.format == ("stl-binary" if path.parent.name == "stl-binary" else "stl-ascii")
    assert mesh.triangles.dtype == np.float32 and mesh.triangles.flags.c_contiguous
    assert mesh.triangles.ndim == 3 and mesh.triangles.shape[1:] == (3, 3)
    assert np.isfinite(mesh.triangles).all()
    assert mesh.triangle_count == EXPECTED[rel]


def test_binary_with_solid_header_is_binary() -> None:
    tri = np.arange(9, dtype=np.float32).reshape(1, 3, 3)
    mesh = load_mesh_bytes(_binary_stl(tri, header=b"solid looks like ascii"), "x.stl")
    assert mesh.format == "stl-binary"
    np.testing.assert_array_equal(mesh.triangles, tri)


def test_binary_with_short_tail_is_tolerated_but_whole_extra_record_is_not() -> None:
    tri = np.ones((2, 3, 3), np.float32)
    assert load_mesh_bytes(_binary_stl(tri) + b"\0" * 49, "x.stl").triangle_count == 2
    with pytest.raises(BadModelError, match="does not match"):
        load_mesh_bytes(_binary_stl(tri) + b"\0" * 50, "x.stl")


def test_truncated_binary_is_refused() -> None:
    data = _binary_stl(np.ones((3, 3, 3), np.float32))[:-1]
    with pytest.raises(BadModelError, match="truncated: header says 3 triangles, file holds 2"):
        load_mesh_bytes(data, "x.stl")


def test_absurd_triangle_count_is_refused_without_allocating() -> None:
    data = _binary_stl(np.ones((1, 3, 3), np.float32), count=2**32 - 1)
    with pytest.raises(BadModelError, match="4294967295"):
        load_mesh_bytes(data, "x.stl")


def test_triangle_cap_is_checked_before_parsing() -> None:
    data = _binary_stl(np.ones((5, 3, 3), np.float32))
    with pytest.raises(LimitExceededError, match="5 triangles"):
        load_mesh_bytes(data, "x.stl", LoadLimits(max_triangles=4))
    with pytest.raises(LimitExceededError, match="bytes"):
        load_mesh_bytes(data, "x.stl", LoadLimits(max_file_bytes=100))


def test_non_finite_triangles_are_dropped() -> None:
    tri = np.ones((3, 3, 3), np.float32)
    tri[1, 2, 0] = np.nan
    tri[2, 0, 1] = np.inf
    mesh = load_mesh_bytes(_binary_stl(tri), "x.stl")
    assert mesh.triangle_count == 1
    only_nan = np.full((2, 3, 3), np.nan, np.float32)
    with pytest.raises(NoGeometryError, match="non-finite"):
        load_mesh_bytes(_binary_stl(only_nan), "x.stl")


def test_ascii_multiple_solids_exponents_and_signs() -> None:
    mesh = load_mesh_bytes(ASCII_TWO, "x.stl")
    assert mesh.format == "stl-ascii"
    np.testing.assert_array_equal(mesh.triangles[1], np.float32([[15, 0, 0], [1, 0.2, 0], [0, 1, 3]]))


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda d: d.replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(lambda d: d.replace(b"\n", b"\r"), id="cr-only"),
        pytest.param(lambda d: d.upper(), id="upper-case"),
        pytest.param(lambda d: d.replace(b"facet normal", b"Facet Normal"), id="mixed-case"),
        pytest.param(lambda d: d.replace(b"solid one", b"solid caf\xe9 \xff\xfe"), id="non-utf8-name"),
        pytest.param(lambda d: d.replace(b"\n", b" "), id="one-line"),
    ],
)
def test_ascii_variants_parse_identically(variant) -> None:  # type: ignore[no-untyped-def]
    expected = load_mesh_bytes(ASCII_TWO, "x.stl").triangles
    np.testing.assert_array_equal(load_mesh_bytes(variant(ASCII_TWO), "x.stl").triangles, expected)


def test_ascii_facet_with_four_vertices_is_refused() -> None:
    data = ASCII_TWO.replace(b"   vertex 0 1 0\n", b"   vertex 0 1 0\n   vertex 2 2 2\n")
    with pytest.raises(BadModelError, match="malformed"):
        load_mesh_bytes(data, "x.stl")


def test_ascii_bad_number_is_refused() -> None:
    with pytest.raises(BadModelError, match="not a number: '1,5'"):
        load_mesh_bytes(ASCII_TWO.replace(b"vertex 1 0 0", b"vertex 1,5 0 0"), "x.stl")


def test_ascii_in_batches_reads_the_same_and_counts_every_facet(monkeypatch: pytest.MonkeyPatch) -> None:
    from sidecar_thumbs.mesh import stl

    rng = np.random.default_rng(4)
    tri = rng.normal(size=(10, 3, 3)).astype(np.float32)
    text = (
        "solid a\n"
        + "".join(
            "facet normal 0 0 1\nouter loop\n"
            + "".join(f"vertex {x!r} {y!r} {z!r}\n" for x, y, z in t.tolist())
            + "endloop\nendfacet\n"
            for t in tri
        )
        + "endsolid a\n"
    )
    data = text.encode()
    whole = stl.parse_ascii_stl(data)
    monkeypatch.setattr(stl, "_BATCH", 3)  # 10 facets: batches of 3, 3, 3 and 1
    np.testing.assert_array_equal(stl.parse_ascii_stl(data), whole)
    np.testing.assert_array_equal(whole, tri)
    with pytest.raises(LimitExceededError, match="has 10 facets, more than the limit of 4"):
        stl.parse_ascii_stl(data, LoadLimits(max_triangles=4))
    junk = data.replace(b"endfacet\nfacet", b"endfacet\njunk\nfacet", 1)  # between two facets of a batch
    with pytest.raises(BadModelError, match="malformed near 'junk'"):
        stl.parse_ascii_stl(junk)
    bad = data.replace(text.split("vertex ")[25].split()[0].encode(), b"1,5", 1)  # a number in the 3rd batch
    with pytest.raises(BadModelError, match="not a number: '1,5'"):
        stl.parse_ascii_stl(bad)


def _plain_facets(n: int, seed: int = 5, exported: bool = False) -> bytes:
    """Plain facets: float32 coordinates by ``repr`` (17 digits, which numpy converts), or ``exported`` as
    most exporters write them (``%e``: 7 digits, which the kernel converts itself)."""
    tri = np.random.default_rng(seed).normal(scale=40 if exported else 1, size=(n, 3, 3))
    number = "{:e}" if exported else "{!r}"
    facets = "".join(
        " facet normal 0 0 1\n  outer loop\n"
        + "".join("   vertex " + " ".join(number.format(v) for v in corner) + "\n" for corner in t.tolist())
        + "  endloop\n endfacet\n"
        for t in (tri if exported else tri.astype(np.float32))
    )
    return f"solid part\n{facets}endsolid part\n".encode()


PLAIN = _plain_facets(40)


# Each read by the plain path or handed to the facet expression; either way as the expression reads it.
ASCII_CASES = {
    "plain": PLAIN,
    "plain, as exporters write numbers": _plain_facets(40, seed=6, exported=True),
    "two solids on one line": ASCII_TWO.replace(b"\n", b" "),
    "a solid line between two facets' words": PLAIN.replace(
        b"  endloop\n endfacet", b"  endloop\nsolid x\n endfacet", 1
    ),
    "three solids, junk in the last": ASCII_TWO + ASCII_TWO.replace(b"endloop", b"endloop x", 1),
    "white space bytes.split splits on": PLAIN.replace(b"\n", b"\x0b").replace(b" ", b"\x0c"),
    "one line": PLAIN.replace(b"\n", b" "),
    "upper case, CRLF": PLAIN.upper().replace(b"\n", b"\r\n"),
    "two solids": ASCII_TWO,
    "comment after endloop": PLAIN.replace(b"endloop\n", b"endloop  made by MeshLab\n", 3),
    "comment after endfacet": PLAIN.replace(b"endfacet\n", b"endfacet  # 1\n", 1),
    "comment after the last endfacet": PLAIN.replace(b" endfacet\nendsolid", b" endfacet  done\nendsolid"),
    "facet in the solid's name": PLAIN.replace(b"solid part", b"solid my facet model", 1),
    "endfacet in a word": PLAIN.replace(b"endfacet\n", b"endfacet\nxendfacet\n", 1),
    "junk between facets": PLAIN.replace(b"endfacet\n", b"endfacet\njunk\n", 2),
    "junk after endsolid": PLAIN + b"junk\n",
    "a facet with four vertices": PLAIN.replace(b"  endloop", b"   vertex 0 0 0\n  endloop", 1),
    "a number that is not": re.sub(rb"vertex \S+", b"vertex 1,5", PLAIN, count=1),
    "over the limit": PLAIN,
    "a coordinate too large": re.sub(rb"vertex \S+", b"vertex 1e300", PLAIN, count=1),
    "truncated": PLAIN[: len(PLAIN) // 2],
    "normal words": PLAIN.replace(b"normal 0 0 1", b"normal facet outer loop", 1),
}


@pytest.mark.parametrize("case", sorted(ASCII_CASES))
def test_plain_ascii_reads_what_the_facet_expression_reads(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sidecar_thumbs.mesh import stl

    data = ASCII_CASES[case]
    got: object
    try:
        got = stl.parse_ascii_stl(data, LoadLimits(max_triangles=35 if case == "over the limit" else 10**6))
    except (BadModelError, LimitExceededError) as exc:
        got = (type(exc), str(exc))
    monkeypatch.setattr(stl, "_plain_ascii", lambda text, limits: None)
    want: object
    try:
        want = stl.parse_ascii_stl(data, LoadLimits(max_triangles=35 if case == "over the limit" else 10**6))
    except (BadModelError, LimitExceededError) as exc:
        want = (type(exc), str(exc))
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and np.array_equal(got, want, equal_nan=True)
    else:
        assert got == want


def numba_available() -> bool:
    return numba_cache.import_kernel("sidecar_thumbs.mesh.stlscan_numba") is not None


@pytest.mark.skipif(not numba_available(), reason="the plain path is the numba kernel")
def test_plain_ascii_takes_plain_files_a_chunk_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from sidecar_thumbs.mesh import stl

    exported = _plain_facets(40, seed=6, exported=True)
    for data in (PLAIN, exported, PLAIN.upper().replace(b"\n", b"\r\n"), PLAIN.replace(b"\n", b"\t\x0b\x0c")):
        whole = stl._plain_ascii(data, LoadLimits())
        assert whole is not None and whole.shape == (40, 3, 3)
        monkeypatch.setattr(stl, "_CHUNK", 3)  # chunks of 3 facets, the last of 1
        pieces = stl._plain_ascii(data, LoadLimits())
        monkeypatch.undo()
        assert pieces is not None and np.array_equal(pieces, whole)
        monkeypatch.setattr(stl, "_plain_ascii", lambda data, limits: None)
        assert np.array_equal(stl.parse_ascii_stl(data), whole)  # the expression's triangles, to the bit
        monkeypatch.undo()
    for case in ("two solids", "two solids on one line"):  # runs of facets between solid lines
        assert stl._plain_ascii(ASCII_CASES[case], LoadLimits()) is not None, case
    not_plain = ("comment after endloop", "facet in the solid's name", "junk between facets", "truncated")
    for case in (*not_plain, "a number that is not", "junk after endsolid", "endfacet in a word"):
        assert stl._plain_ascii(ASCII_CASES[case], LoadLimits()) is None, case
    assert stl._plain_ascii(PLAIN, LoadLimits(max_triangles=39)) is None  # the expression says how many
    assert stl._plain_ascii(PLAIN, LoadLimits(max_triangles=40)) is not None


def test_numbers_the_kernel_converts_are_pythons_floats() -> None:
    """Exact short numbers in every form; longer ones are left to numpy (the same values either way)."""
    numbers = [
        "0", "-0", "+0.0", "1", "-1.5", ".5", "5.", "1e5", "1E-5", "-2.5e+03", "123456789012345",
        "0.1", "3.4028235e38", "1e-45", "1.401298464324817e-45", "0.30000001192092896", "1e22", "1e23",
        "9007199254740993", "12345678901234567890123", "0.000000000000000000000000001", "007.25",
        "1.0000000000000000000000000001", "6.103515625e-05", "-1.17549435e-38", "2.5", "-3",
    ]  # fmt: skip
    text = "solid n\n"
    for i in range(0, len(numbers), 3):
        group = (numbers[i : i + 3] * 3)[:3]
        text += "facet normal 0 0 1\nouter loop\n" + "".join(f"vertex {x} {x} {x}\n" for x in group)
        text += "endloop\nendfacet\n"
    text += "endsolid n\n"
    from sidecar_thumbs.mesh import stl

    got = stl.parse_ascii_stl(text.encode())
    assert (stl._plain_ascii(text.encode(), LoadLimits()) is None) == (not numba_available())
    with np.errstate(over="ignore"):
        want = np.array([[float(x)] * 3 for x in numbers], np.float64).astype(np.float32)
    np.testing.assert_array_equal(got.reshape(-1, 3), want)


def _numbers_as_facets(numbers: list[str]) -> bytes:
    numbers = _numbers_as_facets_list(numbers)
    facets = "".join(
        "facet normal 0 0 1 outer loop "
        + " ".join("vertex " + " ".join(numbers[i + 3 * v : i + 3 * v + 3]) for v in range(3))
        + " endloop endfacet\n"
        for i in range(0, len(numbers), 9)
    )
    return f"solid n\n{facets}endsolid n\n".encode()


@pytest.mark.skipif(not numba_available(), reason="the plain path is the numba kernel")
def test_long_numbers_are_converted_in_the_kernel_unless_near_a_float32_boundary() -> None:
    """17-digit numbers (OpenSCAD writes float32s so) give float()'s float32 from the kernel; the exact
    midpoints between two float32s and numbers a hair from them are left to numpy, and come out the same."""
    from sidecar_thumbs.mesh import stl, stlscan_numba

    rng = np.random.default_rng(7)
    singles = (rng.standard_normal(3000) * 10.0 ** rng.integers(-40, 39, 3000)).astype(np.float32)
    singles = singles[np.isfinite(singles)]
    reprs = [repr(float(v)) for v in singles.tolist()]
    below = np.nextafter(singles, np.float32(-np.inf))
    mids = [(float(a) + float(b)) / 2 for a, b in zip(singles.tolist(), below.tolist(), strict=True)]
    exact_mids = [f"{m:.40e}" for m in mids[:300]]  # the midpoint itself: ties to even
    near_mids = [f"{m:.25e}" for m in mids[300:600]]  # within ~1e-25 of it, either side
    numbers = reprs + exact_mids + near_mids + ["3.4028235677973366e38", "3.4028236e38", "1e-46", "-7e-46"]
    data = _numbers_as_facets(numbers)
    got = stl.parse_ascii_stl(data)
    with np.errstate(over="ignore"):
        want = np.array([float(x) for x in _numbers_as_facets_list(numbers)], np.float64).astype(np.float32)
    np.testing.assert_array_equal(got.reshape(-1), want)  # (load_stl_bytes drops the two that overflow)
    buf = np.frombuffer(data, np.uint8)
    out = np.empty((len(numbers), 9), np.float32)
    slow = np.empty((9 * len(numbers), 3), np.int64)
    _, _, _, nslow = stlscan_numba.scan_facets(buf, data.index(b"facet"), out, slow)
    assert 300 <= nslow < 700  # the midpoints and their neighbours go to numpy, the 17-digit reprs do not


def _numbers_as_facets_list(numbers: list[str]) -> list[str]:
    return numbers + numbers[: -len(numbers) % 9]  # whole facets


@pytest.mark.parametrize("data", [b"", b"solid x\nendsolid x\n", _binary_stl(np.zeros((0, 3, 3)))])
def test_empty_stl_has_no_geometry(data: bytes) -> None:
    with pytest.raises(NoGeometryError):
        load_mesh_bytes(data, "x.stl")


def test_text_that_is_not_stl_is_refused() -> None:
    with pytest.raises(BadModelError, match="not an STL"):
        load_mesh_bytes(b"<html><body>" + b"x" * 200 + b"</body></html>", "x.stl")


def test_detect_format_by_extension_any_case() -> None:
    assert detect_format("a/b/Model.STL") == "stl"
    assert detect_format("plate.3Mf") == "3mf"
    assert detect_format("scan.OBJ") == "obj" and detect_format("cloud.Ply") == "ply"
    assert detect_format("old.amf") == "amf" and detect_format("old.Amf.XML") == "amf"
    with pytest.raises(BadModelError, match="extension"):
        detect_format("model.mtl")
