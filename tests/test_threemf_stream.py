"""3MF model parts scanned as they inflate: the same meshes, properties and skeleton as the
whole-buffer scan at every chunk size, and memory bounded by the mesh on a 1 GiB part."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import struct
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from corpus_paths import FAST_LANE, corpus_files
from mesh_builders import ROOT_RELS, make_3mf, model_xml, synthetic_3mf, unit_cube_mesh

from sidecar_thumbs.errors import BadModelError, LimitExceededError, ModelError
from sidecar_thumbs.mesh import opc
from sidecar_thumbs.mesh.modelpart import parse_model_part, parse_model_part_stream
from sidecar_thumbs.mesh.opc import Package
from sidecar_thumbs.mesh.threemf import load_3mf_mesh
from sidecar_thumbs.mesh.xmlscan import numba_available, scan_meshes

pytestmark = pytest.mark.skipif(not numba_available(), reason="streaming needs the numba kernel")

REPO = Path(__file__).resolve().parents[1]
# Comments, CDATA, a PI, '>' in attribute values, a colour group (a cut), namespaced paint, props, whitespace.
TRICKY = model_xml(
    '<!-- a comment with <mesh> and > in it --><m:colorgroup id="7" xmlns:m="urn:m">'
    '<m:color color="#FF0000"/><m:color color="#00FF00"/></m:colorgroup>'
    '<basematerials id="5"><base name="a&gt;b" displaycolor="#0000FF"/></basematerials>'
    f'<object id="1" name="x > y" pid="5" pindex="0">{unit_cube_mesh()}</object>'
    '<object id="2"><mesh ><vertices>\n  <vertex  x = "1e-3"\ty="-.5" z="+2.25E+1"  />'
    '<vertex x="0" y="1" z="0"/><vertex x="1" y="1" z="0"/></vertices><![CDATA[ <vertex/> ]]>'
    "<?pi data?><triangles><triangle v3='2' v2='1' v1='0' pid='7' p1='1' p2='0' p3='1'/></triangles></mesh></object>",
    '<item objectid="1"/><item objectid="2" transform="1 0 0 0 1 0 0 0 1 5 5 5"/>',
    extra_ns=' xmlns:slic3rpe="http://schemas.slic3r.org/3mf/2017/06"',
).encode()
TRICKY = TRICKY.replace(b'<triangle v1="0"', b'<triangle slic3rpe:mmu_segmentation="4C3" p1="1" pid="5" v1="0"', 2)


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


def assert_same(data: bytes, size: int, name: str = "part") -> None:
    whole = parse_model_part(data, name, 10**8, colors=True)
    streamed = parse_model_part_stream(chunked(data, size), name, 10**8, colors=True)
    a, b = whole.meshes, streamed.meshes
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.triangles, b.triangles)
    assert np.array_equal(a.spans[:, 2:], b.spans[:, 2:])
    assert a.skeleton(data) == b.skeleton(streamed_kept(data, size))
    assert whole.objects.keys() == streamed.objects.keys() and whole.scale == streamed.scale
    assert (whole.props is None) == (streamed.props is None)
    if whole.props is not None and streamed.props is not None:
        assert np.array_equal(whole.props.props, streamed.props.props)
        assert whole.props.paint == streamed.props.paint
    assert (whole.colors is None) == (streamed.colors is None)
    if whole.colors is not None and streamed.colors is not None:
        assert whole.colors.groups.keys() == streamed.colors.groups.keys()


def streamed_kept(data: bytes, size: int) -> bytes:
    from sidecar_thumbs.mesh.xmlstream import scan_meshes_stream

    return scan_meshes_stream(chunked(data, size), 10**8, want_props=True)[1]


def test_tricky_part_has_everything_the_cut_points_must_survive() -> None:
    scan = scan_meshes(TRICKY, 10**8, want_props=True)
    assert len(scan.spans) == 2 and len(scan.skippable) == 2
    assert scan.props is not None and set(scan.props.paint.values()) == {"4C3"}
    assert scan.props.props[-1].tolist() == [7, 1, 0, 1]


@pytest.mark.parametrize("size", range(1, 65))
def test_every_chunk_boundary_gives_the_whole_buffer_result(size: int) -> None:
    assert_same(TRICKY, size)


@pytest.mark.parametrize(
    "size",
    [
        # Seven-byte chunks of a 3,000-triangle part: 0.3 s of CPU; the tiny chunks' cut points are the
        # fast lane's test_every_chunk_boundary_gives_the_whole_buffer_result.
        pytest.param(7, marks=pytest.mark.integration),
        *(4096, 4097, 5003, 1 << 20),  # above 4 KiB: the head-then-in-place path
    ],
)
def test_synthetic_part(size: int) -> None:
    data = zipfile.ZipFile(io.BytesIO(synthetic_3mf(3000))).read("3D/3dmodel.model")
    assert_same(data, size)


def _corpus_parts() -> list[object]:
    # Every model part of every corpus 3MF: a corpus sweep, so the parts of the fast lane's 3MF
    # files run in the fast lane and the rest (seconds: three chunk sizes each) only in the full suite.
    out = []
    for path in corpus_files("3mf"):
        try:
            names = zipfile.ZipFile(path).namelist()
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
            continue
        marks = () if path.name in FAST_LANE else pytest.mark.integration
        out += [
            pytest.param(str(path), n, id=f"{path.name}-{Path(n).name}", marks=marks)
            for n in names
            if n.lower().endswith(".model")
        ]
    return out


@pytest.mark.parametrize(("path", "member"), _corpus_parts())
def test_corpus_parts_stream_like_whole(path: str, member: str) -> None:
    try:
        data = zipfile.ZipFile(path).read(member)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError):
        pytest.skip("member unreadable by zipfile")
    try:
        parse_model_part(data, member, 10**8, colors=True)
    except ModelError as exc:
        # A bad part is refused the same way streamed (the message may name the chunked position).
        with pytest.raises(type(exc)):
            parse_model_part_stream(chunked(data, 4096), member, 10**8, colors=True)
        return
    for size in (4093, 1 << 16, 1 << 20):
        assert_same(data, size, member)


def test_package_stream_checks_size_and_crc() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.xml", b"<a>" + b" " * 5_000_000 + b"</a>")
    good = buf.getvalue()
    assert b"".join(Package(good, 10**8).stream("a.xml")) == zipfile.ZipFile(io.BytesIO(good)).read("a.xml")
    pkg = Package(good, 10**8)
    pkg._by_name["a.xml"].CRC ^= 1  # the central directory's CRC-32 is the one checked
    with pytest.raises(BadModelError, match="CRC"):
        b"".join(pkg.stream("a.xml"))
    with pytest.raises(LimitExceededError):
        b"".join(Package(good, 1000).stream("a.xml"))


def _inflaters() -> list[object]:
    import zlib

    found: list[object] = [zlib]
    for name in ("isal.isal_zlib", "zlib_ng.zlib_ng"):
        with contextlib.suppress(ImportError):
            found.append(importlib.import_module(name))
    return found


@pytest.mark.parametrize("inflater", _inflaters(), ids=lambda m: m.__name__)
def test_damaged_deflate_stream_is_a_one_line_bad_model_error(
    inflater: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whichever inflater is installed (isal first, then zlib-ng, then zlib), a truncated member, a
    # corrupted one and one whose stream is invalid from its first block fail the whole read and
    # the streamed one alike, with one line naming the member.
    monkeypatch.setattr(opc, "_inflater", inflater)
    good = synthetic_3mf(3000)
    info = Package(good, 10**8).find("3D/3dmodel.model")
    assert info is not None and info.compress_size > 10_000
    name_len, extra_len = struct.unpack_from("<HH", good, info.header_offset + 26)
    at = info.header_offset + 30 + name_len + extra_len  # the member's deflate stream

    def truncated(pkg: Package) -> None:
        pkg._by_name["3D/3dmodel.model"].compress_size = info.compress_size // 2

    damaged: dict[str, bytes | Callable[[Package], None]] = {
        "truncated": truncated,
        "corrupted": good[: at + 5000] + bytes(b ^ 0x5A for b in good[at + 5000 : at + 5100]) + good[at + 5100 :],
        "invalid": good[:at] + bytes([good[at] | 0x06]) + good[at + 1 :],  # block type 3: reserved
    }
    for label, how in damaged.items():
        bad = Package(how if isinstance(how, bytes) else good, 10**8)
        if callable(how):
            how(bad)
        for read in (lambda b=bad: b.read("3D/3dmodel.model"), lambda b=bad: b"".join(b.stream("3D/3dmodel.model"))):
            with pytest.raises(BadModelError, match=r"^3MF part 3D/3dmodel.model is corrupt: ") as exc:
                read()
            assert "\n" not in str(exc.value), (label, str(exc.value))


def test_unclosed_mesh_and_bad_number_fail_like_whole() -> None:
    bad = TRICKY.replace(b'y="-.5"', b'y="-.5x"')
    with pytest.raises(BadModelError) as whole:
        parse_model_part(bad, "p", 10**8)
    assert "not a number (p line 3): '-.5x'" in str(whole.value)
    for size in (5, 64, 1 << 20):  # the same message, line number included
        with pytest.raises(BadModelError) as streamed:
            parse_model_part_stream(chunked(bad, size), "p", 10**8)
        assert str(streamed.value) == str(whole.value)
        with pytest.raises(BadModelError) as recounted:  # lines counted by reading the part again
            parse_model_part_stream(chunked(bad, size), "p", 10**8, restart=lambda size=size: chunked(bad, size))
        assert str(recounted.value) == str(whole.value)
    with pytest.raises(BadModelError) as packaged:  # through the package, as a worker reads it
        load_3mf_mesh(make_3mf(bad))
    assert str(packaged.value) == str(whole.value).replace("(p line", "(3D/3dmodel.model line")
    with pytest.raises(BadModelError):
        parse_model_part_stream(chunked(TRICKY[:-300], 5), "p", 10**8)


_BOMB_CHILD = textwrap.dedent(
    """
    import os, resource, sys
    from sidecar_thumbs.errors import ModelError
    from sidecar_thumbs.mesh import LoadLimits
    from sidecar_thumbs.mesh.threemf import load_3mf_mesh
    def load(path):
        try:
            return f"parsed {len(load_3mf_mesh(open(path, 'rb').read(), LoadLimits()).triangles)}"
        except ModelError as exc:
            return f"refused {type(exc).__name__}"
    # Warm up first (compiling the kernels takes more memory than the part may), then on Linux reset
    # the peak so that it is the load's own (VmHWM); elsewhere the process's peak, warm-up included.
    load(sys.argv[2])
    status = "/proc/self/status"
    if os.path.exists(status):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    outcome = load(sys.argv[1])
    if os.path.exists(status):
        peak_mb = next(int(l.split()[1]) for l in open(status) if l.startswith("VmHWM")) / 1024
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_mb = peak / 2**20 if sys.platform == "darwin" else peak / 1024
    print(outcome, round(peak_mb))
    """
)


def _write_bomb(path: Path, inside_mesh: bool) -> None:
    # 1 GiB of whitespace streamed through the compressor: never held in memory here either.
    head, tail = model_xml(f'<object id="1">{unit_cube_mesh()}</object>', '<item objectid="1"/>').split("<vertex ", 1)
    if not inside_mesh:
        head, tail = model_xml(f'<object id="1">{unit_cube_mesh()}</object>', '<item objectid="1"/>').split("<build>")
        tail = "<build>" + tail
    else:
        tail = "<vertex " + tail
    block = b" " * (1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("_rels/.rels", ROOT_RELS.format(extra=""))
        with z.open("3D/3dmodel.model", "w", force_zip64=True) as f:
            f.write(head.encode())
            for _ in range(1024):
                f.write(block)
            f.write(tail.encode())


@pytest.mark.integration
@pytest.mark.parametrize(("inside_mesh", "expect"), [(True, "parsed 12"), (False, "refused LimitExceededError")])
def test_gibibyte_part_peaks_under_300_mb(tmp_path: Path, inside_mesh: bool, expect: str) -> None:
    bomb = tmp_path / "bomb.3mf"
    _write_bomb(bomb, inside_mesh)
    assert zipfile.ZipFile(bomb).getinfo("3D/3dmodel.model").file_size > 1 << 30
    small = tmp_path / "small.3mf"
    small.write_bytes(synthetic_3mf(50))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", _BOMB_CHILD, str(bomb), str(small)],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    outcome, peak_mb = out.stdout.rsplit(maxsplit=1)
    assert outcome == expect
    assert int(peak_mb) < 300, out.stdout


def test_paint_values_are_the_slices_decoded_whichever_chunk_they_came_in() -> None:
    from sidecar_thumbs.mesh.paintvalues import PaintValues

    rng = np.random.default_rng(3)
    values = [
        b"8",
        b"4C3",
        b"",
        b"0C>",
        b"1" * 300,
        b"3F3F3F3F3F3F3F0C",
        b"\xff\xfe",
        b"1234567",
        b"12345678",
        b"8\x00",
    ]
    for _ in range(20):
        gathered, expected, triangle = PaintValues(), {}, 0
        for _window in range(int(rng.integers(1, 5))):
            window, ranges, triangles = b"", [], []
            for k in rng.integers(0, len(values), int(rng.integers(1, 40))).tolist():
                window += b' paint_color="'
                ranges.append((len(window), len(window) + len(values[k])))
                window += values[k] + b'"'
                triangle += int(rng.integers(1, 4))
                triangles.append(triangle)
            if rng.random() < 0.5:  # a value that ends the window
                window = window[:-1]
            for t, (s, e) in zip(triangles, ranges, strict=True):
                expected[t] = window[s:e].decode("ascii", "replace")
            gathered.add(window, np.array(triangles, dtype=np.int64), np.array(ranges, dtype=np.int64))
        got = gathered.result()
        assert got == expected and list(got) == list(expected)
    assert PaintValues().result() == {}
