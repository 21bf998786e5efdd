"""Bad input: every corpus/bad file, then a seeded Hypothesis fuzzer over mutated STL and 3MF files
(issue #6, item 3). Invariants: nothing escapes ``render_job``; a sidecar-worthy result only for
input that loads; a one-line reason for everything else; no worker crash in a real pool."""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from corpus_paths import corpus_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mesh_builders import make_3mf, model_xml, unit_cube_mesh
from reliability_util import SMALL, binary_stl

from sidecar_thumbs.errors import ModelError, NoGeometryError
from sidecar_thumbs.files.fingerprint import hash_bytes
from sidecar_thumbs.files.sidecar import KEY_HASH
from sidecar_thumbs.mesh.load import load_mesh_bytes
from sidecar_thumbs.mesh.threemf import check_3mf_bytes
from sidecar_thumbs.work.executors.local import LocalPool, result_of
from sidecar_thumbs.work.jobs import RenderJob, RenderResult, render_job

pytestmark = pytest.mark.integration  # reliability suite: real processes, faults, many files

STL_EXAMPLES = 2600
TMF_EXAMPLES = 2600
SOAK_EXAMPLES = 40_000
REASONS: Counter[str] = Counter()


def _loads(data: bytes, name: str) -> bool:
    """The oracle: would the loader accept these bytes (what may get a sidecar)?"""
    try:
        load_mesh_bytes(data, name, SMALL.limits)
        return True
    except ModelError:
        pass
    if name.lower().endswith(".3mf"):
        try:  # a valid package whose build draws nothing may still show its embedded picture
            check_3mf_bytes(data, SMALL.limits)
        except NoGeometryError:
            return True
        except ModelError:
            return False
    return False


def check_result(result: RenderResult, data: bytes, name: str) -> None:
    """What every render of hostile input must satisfy."""
    if result.ok:
        assert _loads(data, name), f"a thumbnail was made for input that does not load: {name}"
        assert result.png is not None and KEY_HASH.encode() in result.png
        assert result.content_hash == hash_bytes(data)
        REASONS["ok"] += 1
        return
    assert result.error and "\n" not in result.error and len(result.error) < 600, result.error
    # An internal error means a loader bug reached the catch-all: a finding, never acceptable.
    assert not result.error.startswith("internal error"), result.error
    assert not result.transient, f"bad content must not be retried as transient: {result.error}"
    REASONS[result.error.split(":")[0][:40]] += 1


_counter = iter(range(1 << 62))


def render_bytes(folder: Path, name: str, data: bytes) -> RenderResult:
    # A fresh name each time, removed after: overwriting one file in place costs ~3 ms on ext4
    # (auto_da_alloc flushes on truncate), which would dominate 5,000 examples.
    stem, ext = os.path.splitext(name)
    path = folder / f"{stem}{next(_counter)}{ext}"
    path.write_bytes(data)
    try:
        return render_job(RenderJob(str(path), SMALL))  # must never raise
    finally:
        path.unlink()


# -- the corpus's bad files ----------------------------------------------------------------------


@pytest.mark.parametrize("path", corpus_files("bad"), ids=lambda p: p.name)
def test_bad_corpus_file_fails_with_one_line_or_loads(path: Path, tmp_path: Path) -> None:
    result = render_job(RenderJob(str(path), SMALL))
    check_result(result, path.read_bytes(), path.name)


def test_invalid_3mf_with_embedded_picture_gets_no_thumbnail(corpus: Path, tmp_path: Path) -> None:
    # Regression: a slicer picture used to be taken from a package whose model does not load.
    src = corpus / "bad" / "3mfsamples__MUSTFAIL_Chapter3.4b_MissingBuildElement.3mf"
    result = render_job(RenderJob(str(src), SMALL))
    assert not result.ok and result.error is not None and "<build>" in result.error


# -- seeds ---------------------------------------------------------------------------------------


def _ascii_stl(n: int) -> bytes:
    facets = "".join(
        f"facet normal 0 0 1\n outer loop\n  vertex {i} 0 0\n  vertex {i + 1} 0 0\n  vertex {i} 1 {i % 3}\n"
        " endloop\nendfacet\n"
        for i in range(n)
    )
    return f"solid fuzz\n{facets}endsolid fuzz\n".encode()


def _seed_files(rel: list[str], corpus_dir: Path) -> list[bytes]:
    out = []
    for r in rel:
        p = corpus_dir / r
        if p.is_file() and p.stat().st_size < 20_000:
            out.append(p.read_bytes())
    return out


def _tmf_with_thumbnail() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, "PNG")
    rel = (
        '<Relationship Target="/Metadata/thumbnail.png" Id="t" '
        'Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/thumbnail"/>'
    )
    model = model_xml(f'<object id="1">{unit_cube_mesh()}</object>', '<item objectid="1"/>')
    return make_3mf(model, {"Metadata/thumbnail.png": buf.getvalue()}, rels_extra=rel)


STL_SEEDS: list[bytes] = [binary_stl(6, seed=1), _ascii_stl(4)]
TMF_SEEDS: list[bytes] = [
    make_3mf(model_xml(f'<object id="1">{unit_cube_mesh()}</object>', '<item objectid="1"/>')),
    make_3mf(
        model_xml(
            f'<object id="1">{unit_cube_mesh()}</object><object id="2"><components>'
            '<component objectid="1" transform="1 0 0 0 1 0 0 0 1 5 0 0"/></components></object>',
            '<item objectid="2" transform="2 0 0 0 2 0 0 0 2 0 0 0"/>',
        )
    ),
    _tmf_with_thumbnail(),
]


@pytest.fixture(scope="module", autouse=True)
def _corpus_seeds(corpus: Path) -> None:
    # Small real files join the generated seeds (read only; the mutants live in tmp folders).
    STL_SEEDS.extend(_seed_files(["stl-binary/admesh__binary.stl", "stl-ascii/admesh__block.stl"], corpus))
    TMF_SEEDS.extend(_seed_files(["3mf/3mfsamples__box.3mf", "3mf/3mfsamples__cylinder.3mf"], corpus))


# -- mutations -----------------------------------------------------------------------------------

ABSURD = [b"nan", b"NaN", b"inf", b"-inf", b"1e39", b"-1e400", b"1e-400", b"9" * 400, b"0x10", b"", b"--1", b"1e"]
FLOATS = [math.nan, math.inf, -math.inf, 3.4e38, -3.4e38, 1e-45, 0.0]
COUNTS = [0, 1, 2**31, 2**32 - 1, 0x7FFFFFFF, 123456789]


def _mutate_bytes(data: bytes, draw: st.DrawFn) -> bytes:
    """Generic byte-level damage: truncation, bit flips, spliced or duplicated spans."""
    kind = draw(st.sampled_from(["truncate", "flip", "splice", "duplicate", "zero"]))
    n = len(data)
    if n == 0:
        return data
    if kind == "truncate":
        return data[: draw(st.integers(0, n - 1))]
    if kind == "flip":
        buf = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, n - 1))
            buf[i] ^= 1 << draw(st.integers(0, 7))
        return bytes(buf)
    i = draw(st.integers(0, n - 1))
    j = draw(st.integers(i, min(n, i + 64)))
    if kind == "splice":
        return data[:i] + draw(st.binary(max_size=16)) + data[j:]
    if kind == "duplicate":
        return data[:j] + data[i:j] * draw(st.integers(1, 50)) + data[j:]
    return data[:i] + b"\0" * (j - i) + data[j:]


def _mutate_text(text: bytes, draw: st.DrawFn) -> bytes:
    """Token-level damage for ASCII STL and 3MF XML: absurd numbers, cut tags, repeated elements."""
    kind = draw(st.sampled_from(["number", "number", "cut", "repeat", "bytes"]))
    if kind == "number":
        import re

        numbers = [m.span() for m in re.finditer(rb"-?\d+(\.\d+)?([eE][-+]?\d+)?", text)]
        if numbers:
            i, j = numbers[draw(st.integers(0, len(numbers) - 1))]
            return text[:i] + draw(st.sampled_from(ABSURD)) + text[j:]
    if kind == "cut":
        i = draw(st.integers(0, len(text)))
        return text[:i] + text[min(len(text), i + draw(st.integers(1, 40))) :]
    if kind == "repeat":
        tag = draw(st.sampled_from([b"<vertex", b"<triangle", b"<item", b"<object", b"facet", b"<component"]))
        k = text.find(tag)
        if k >= 0:
            end = text.find(b">", k) + 1
            return text[:k] + text[k:end] * draw(st.integers(2, 30)) + text[k:]
    return _mutate_bytes(text, draw)


def _mutate_stl(data: bytes, draw: st.DrawFn) -> bytes:
    if data[:5].lower() == b"solid" and b"facet" in data[:200]:
        return _mutate_text(data, draw)
    kind = draw(st.sampled_from(["count", "float", "bytes", "bytes"]))
    if kind == "count" and len(data) >= 84:
        return data[:80] + struct.pack("<I", draw(st.sampled_from(COUNTS))) + data[84:]
    if kind == "float" and len(data) >= 134:
        tri = draw(st.integers(0, (len(data) - 84) // 50 - 1))
        off = 84 + tri * 50 + 12 + 4 * draw(st.integers(0, 8))
        return data[:off] + struct.pack("<f", draw(st.sampled_from(FLOATS))) + data[off + 4 :]
    return _mutate_bytes(data, draw)


def _rezip(members: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, (data, compression) in members.items():
            z.writestr(name, data, compress_type=compression)
    return buf.getvalue()


def _mutate_3mf(data: bytes, draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["xml", "xml", "xml", "zipbytes", "member", "header"]))
    if kind == "zipbytes":
        return _mutate_bytes(data, draw)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = {i.filename: (z.read(i), i.compress_type) for i in z.infolist()}
    names = sorted(members)
    if kind == "xml":
        xml_names = [n for n in names if n.endswith((".model", ".rels"))]
        name = draw(st.sampled_from(xml_names))
        body, comp = members[name]
        members[name] = (_mutate_text(body, draw), comp)
        return _rezip(members)
    if kind == "member":
        action = draw(st.sampled_from(["drop", "rename", "stored", "empty"]))
        name = draw(st.sampled_from(names))
        body, comp = members.pop(name)
        if action == "rename":
            members[name.upper() + draw(st.sampled_from(["", "x", "/"]))] = (body, comp)
        elif action == "stored":
            members[name] = (body, zipfile.ZIP_STORED)
        elif action == "empty":
            members[name] = (b"", comp)
        return _rezip(members)
    # Damage a local-header field (method, flags, sizes, CRC) of a random member.
    buf = bytearray(data)
    heads = [i for i in range(len(buf) - 30) if buf[i : i + 4] == b"PK\x03\x04"]
    if not heads:
        return data
    h = draw(st.sampled_from(heads))
    field_off, width = draw(st.sampled_from([(6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2)]))
    value = draw(st.integers(0, 2 ** (8 * width) - 1))
    buf[h + field_off : h + field_off + width] = value.to_bytes(width, "little")
    return bytes(buf)


# -- the fuzzers ---------------------------------------------------------------------------------


def _fuzz(max_examples: int, derandomize: bool = True) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=derandomize,  # seeded: the same inputs every CI run
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def _fuzz_stl(folder: Path, data_strategy: st.DataObject) -> None:
    seed = data_strategy.draw(st.sampled_from(STL_SEEDS))
    mutant = seed
    for _ in range(data_strategy.draw(st.integers(1, 3))):
        mutant = _mutate_stl(mutant, data_strategy.draw)
    name = data_strategy.draw(st.sampled_from(["m.stl", "m.STL"]))
    check_result(render_bytes(folder, name, mutant), mutant, name)


def _fuzz_3mf(folder: Path, data_strategy: st.DataObject) -> None:
    mutant = data_strategy.draw(st.sampled_from(TMF_SEEDS))
    for _ in range(data_strategy.draw(st.integers(1, 2))):
        try:
            mutant = _mutate_3mf(mutant, data_strategy.draw)
        except Exception:  # an earlier mutation broke the zip for our own reader: damage bytes instead
            mutant = _mutate_bytes(mutant, data_strategy.draw)
    check_result(render_bytes(folder, "m.3mf", mutant), mutant, "m.3mf")


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_fuzz_stl(fuzz_dir: Path) -> None:
    @_fuzz(STL_EXAMPLES)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        _fuzz_stl(fuzz_dir, data)

    run()
    assert not list(fuzz_dir.glob(".*.png")), "the job wrote a file"


def test_fuzz_3mf(fuzz_dir: Path) -> None:
    @_fuzz(TMF_EXAMPLES)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        _fuzz_3mf(fuzz_dir, data)

    run()
    print("fuzz outcomes:", REASONS.most_common(25))
    assert not list(fuzz_dir.glob(".*.png")), "the job wrote a file"


@pytest.mark.soak
def test_fuzz_soak(fuzz_dir: Path) -> None:
    @_fuzz(SOAK_EXAMPLES, derandomize=False)
    @given(st.data(), st.booleans())
    def run(data: st.DataObject, stl: bool) -> None:
        (_fuzz_stl if stl else _fuzz_3mf)(fuzz_dir, data)

    run()


def test_mutants_through_a_real_pool_crash_no_worker(tmp_path: Path) -> None:
    """A smaller batch through real worker processes: every result comes back, none is a crash."""
    import random

    rng = random.Random(7)
    jobs = []
    for i in range(240):
        seed = rng.choice(STL_SEEDS + TMF_SEEDS)
        buf = bytearray(seed)
        for _ in range(rng.randint(1, 6)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.3:
            del buf[rng.randrange(len(buf)) :]
        ext = ".3mf" if seed[:2] == b"PK" else ".stl"
        path = tmp_path / f"mutant{i:03d}{ext}"
        path.write_bytes(bytes(buf))
        jobs.append(RenderJob(str(path), SMALL))
    pool = LocalPool(2, timeout=60, options=SMALL)
    try:
        futures = [(job, pool.submit(job)) for job in jobs]
        results = []
        for job, fut in futures:
            with contextlib.suppress(Exception):  # result_of turns pool errors into failures
                fut.result(timeout=120)
            results.append(result_of(job, fut, 60))
    finally:
        pool.shutdown()
    for job, r in zip(jobs, results, strict=True):
        assert r.ok or (r.error and "crashed" not in r.error and "timed out" not in r.error), r.error
        check_result(r, Path(job.path).read_bytes(), os.path.basename(job.path))
