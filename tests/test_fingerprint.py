"""Fingerprints: stat gate and streamed xxh3_128 hash, on real files in tmp_path."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
import xxhash
from corpus_paths import corpus_files

from sidecar_thumbs.errors import TransientModelError
from sidecar_thumbs.files import fingerprint as fp
from sidecar_thumbs.files.fingerprint import (
    FileChangedError,
    fingerprint,
    gate_moved,
    hash_bytes,
    hash_file,
    oversize_key,
    stat_key,
)
from sidecar_thumbs.files.safeio import LinkOutsideRootsError, NotRegularFileError
from sidecar_thumbs.types import Fingerprint


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_hash_is_xxh3_128_hex() -> None:
    assert hash_bytes(b"") == xxhash.xxh3_128(b"").hexdigest()
    assert hash_bytes(b"solid x\n") == xxhash.xxh3_128(b"solid x\n").hexdigest()
    assert len(hash_bytes(b"abc")) == 32


def test_hash_is_stable_across_calls_and_copies(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    a = _write(tmp_path / "a.stl", data)
    b = _write(tmp_path / "copy of a.stl", data)
    assert hash_file(a) == hash_file(a) == hash_file(b)


@pytest.mark.parametrize("chunk_size", [1, 7, 4096, 1 << 20, 10 << 20])
def test_streamed_hash_equals_one_shot(tmp_path: Path, chunk_size: int) -> None:
    # 3 MiB + a ragged tail so chunk boundaries never line up with the end.
    data = os.urandom((3 << 20) + 12345) if chunk_size > 1 else os.urandom(5000)
    path = _write(tmp_path / "m.stl", data)
    assert hash_file(path, chunk_size=chunk_size) == hash_bytes(data)
    assert hash_bytes(memoryview(data)) == hash_bytes(data)


def test_different_content_gives_different_hash(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.stl", b"\0" * 1000)
    b = _write(tmp_path / "b.stl", b"\0" * 999 + b"\1")
    assert hash_file(a) != hash_file(b)


def test_empty_file_hashes(tmp_path: Path) -> None:
    assert hash_file(_write(tmp_path / "e.stl", b"")) == hash_bytes(b"")


def test_hash_file_rejects_bad_chunk_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        hash_file(_write(tmp_path / "a.stl", b"x"), chunk_size=0)


def test_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        hash_file(tmp_path / "gone.stl")
    with pytest.raises(FileNotFoundError):
        fingerprint(tmp_path / "gone.stl")
    with pytest.raises(FileNotFoundError):
        stat_key(tmp_path / "gone.stl")


def test_fingerprint_records_stat_and_hash(tmp_path: Path) -> None:
    data = b"solid cube\nendsolid cube\n"
    path = _write(tmp_path / "cube.stl", data)
    os.utime(path, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    got = fingerprint(path)
    assert got == Fingerprint(size=len(data), mtime_ns=1_600_000_000_123_456_789, hash=hash_bytes(data))
    assert stat_key(path) == (got.size, got.mtime_ns)


def test_touch_moves_gate_but_not_hash(tmp_path: Path) -> None:
    path = _write(tmp_path / "part.3mf", os.urandom(10_000))
    first = fingerprint(path)
    os.utime(path, ns=(first.mtime_ns + 5_000_000_000, first.mtime_ns + 5_000_000_000))
    second = fingerprint(path)
    assert gate_moved(first.size, first.mtime_ns, second.size, second.mtime_ns)
    assert second.hash == first.hash


def test_same_size_rewrite_changes_hash(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.stl", b"A" * 100)
    first = fingerprint(path)
    path.write_bytes(b"B" * 100)
    os.utime(path, ns=(first.mtime_ns + 1, first.mtime_ns + 1))
    second = fingerprint(path)
    assert second.size == first.size
    assert second.hash != first.hash


@pytest.mark.parametrize(
    ("old_size", "old_mtime", "size", "mtime", "moved"),
    [
        (None, None, 10, 5, True),  # never seen
        (10, None, 10, 5, True),
        (None, 5, 10, 5, True),
        (10, 5, 10, 5, False),
        (10, 5, 11, 5, True),
        (10, 5, 10, 6, True),
        (10, 5, 10, 4, True),  # mtime going backwards (restored from backup) is a change too
    ],
)
def test_gate_moved(old_size: int | None, old_mtime: int | None, size: int, mtime: int, moved: bool) -> None:
    assert gate_moved(old_size, old_mtime, size, mtime) is moved


def test_change_during_hash_is_detected_deterministically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate a writer that appends exactly while the hash runs: wrap hash_file so the append
    # happens between the first stat and the re-stat, every time.
    path = _write(tmp_path / "copying.stl", b"x" * 1000)
    real_hash_file = fp.hash_file

    def hash_then_append(p: os.PathLike[str] | str, **kwargs: Any) -> str:
        digest = real_hash_file(p, **kwargs)
        with open(p, "ab") as f:
            f.write(b"more")
        return digest

    monkeypatch.setattr(fp, "hash_file", hash_then_append)
    with pytest.raises(FileChangedError, match="changed while hashing") as info:
        fingerprint(path)
    assert isinstance(info.value, TransientModelError)
    assert info.value.transient is True
    assert "\n" not in info.value.message


def test_change_by_a_real_writer_thread_is_detected(tmp_path: Path) -> None:
    # A real concurrent appender. Tiny chunks make each hash take thousands of reads (each
    # releases the GIL), so the writer gets in; we retry a few times rather than assume scheduling.
    path = _write(tmp_path / "growing.stl", os.urandom(1 << 20))
    stop = threading.Event()

    def append_until_stopped() -> None:
        with open(path, "ab", buffering=0) as f:
            while not stop.is_set():
                f.write(b"y" * 64)

    writer = threading.Thread(target=append_until_stopped)
    writer.start()
    try:
        detected = False
        for _ in range(50):
            try:
                fingerprint(path, chunk_size=256)
            except FileChangedError:
                detected = True
                break
    finally:
        stop.set()
        writer.join()
    assert detected
    # Once the writer stopped, the file settles and fingerprints cleanly.
    settled = fingerprint(path)
    assert settled.size == path.stat().st_size
    assert settled.hash == hash_bytes(path.read_bytes())


@pytest.mark.parametrize("model", corpus_files("stl-binary", "3mf")[:4], ids=lambda p: p.name)
def test_corpus_files_fingerprint(model: Path, corpus: Path) -> None:
    got = fingerprint(model)
    assert got.size == model.stat().st_size
    assert got.hash == hash_bytes(model.read_bytes())


def test_file_that_changed_since_the_callers_stat_is_unstable(tmp_path: Path) -> None:
    # The daemon decides on its own stat whether to hash; the hash must belong to that stat.
    path = _write(tmp_path / "a.stl", b"x" * 100)
    first = os.stat(path)
    _write(path, b"y" * 200)
    with pytest.raises(FileChangedError, match="size 100 -> 200"):
        fingerprint(path, first=first)
    assert fingerprint(path, first=os.stat(path)).hash == hash_bytes(b"y" * 200)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.stl"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFileError, match="FIFO"):
        fingerprint(fifo)  # opening it for reading would block for ever


def test_link_out_of_the_roots_is_refused(tmp_path: Path) -> None:
    outside = _write(tmp_path / "outside.stl", b"solid x\n")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.stl").symlink_to(outside)
    with pytest.raises(LinkOutsideRootsError):
        fingerprint(root / "link.stl", roots=[str(root)])
    assert fingerprint(root / "link.stl").hash == hash_bytes(b"solid x\n")  # no roots: followed


def test_file_over_the_size_cap_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "big.stl", b"z" * 1000)
    st = os.stat(path)

    def no_hashing() -> None:
        raise AssertionError("a file over the cap must not be read")

    with monkeypatch.context() as m:
        m.setattr(fp.xxhash, "xxh3_128", no_hashing)
        got = fingerprint(path, max_bytes=999)
    assert got == Fingerprint(size=1000, mtime_ns=st.st_mtime_ns, hash=oversize_key(1000, st.st_mtime_ns))
    assert fingerprint(path, max_bytes=1000).hash == hash_bytes(b"z" * 1000)  # at the cap: hashed
