"""Durability at the Mac's price (issue 17 item 6): the pipeline's rate with a slow flush injected.

A full drive-cache flush (``F_FULLFSYNC``) costs milliseconds to tens of milliseconds on a Mac and flushes
do not overlap at the device. This bench wraps the flush primitives with an added sleep (under one lock,
as the device serialises flushes) and scans ``--count`` small models (12-triangle cubes, so that rendering
is fast enough for the writes to matter, in ``--folders`` folders) into a fresh database, in process
(InlineExecutor) or on a ``--workers`` pool. Rows:

- ``no latency``: the primitives as they are on this machine;
- ``macOS default``: a full flush costs ``--latency`` ms; the per-file barrier (``F_BARRIERFSYNC``) and the
  folder fsync (plain ``fsync``: on macOS it reaches only the drive's cache) cost ``--barrier`` ms;
- ``macOS full_fsync``: the same costs with ``SIDECAR_THUMBS_FULL_FSYNC=true`` (a full flush per file);
- ``every fsync slow``: every call costs ``--latency`` (a disk where each fsync flushes the device cache,
  as on Linux with write barriers): the per-file order cannot be avoided, folders are per batch.

Run: ``python bench/durability.py [--count 300] [--workers 0] [--latency 20] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from sidecar_thumbs.files import atomic
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.work import pipeline
from sidecar_thumbs.work.executors.local import Executor, InlineExecutor, LocalPool
from sidecar_thumbs.work.scan import scan


def _cube(i: int) -> bytes:
    """A binary STL of a unit cube (12 triangles); ``i`` goes into the header: distinct content."""
    v = [(x, y, z) for x in (0.0, 1.0) for y in (0.0, 1.0) for z in (0.0, 1.0)]
    faces = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1)]
    faces += [(2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]
    out = bytearray(f"cube {i}".encode().ljust(80, b" ")) + struct.pack("<I", len(faces))
    for a, b, c in faces:
        out += struct.pack("<3f", 0, 0, 0) + struct.pack("<9f", *v[a], *v[b], *v[c]) + b"\0\0"
    return bytes(out)


def make_library(root: Path, count: int, folders: int) -> None:
    for i in range(count):
        folder = root / f"f{i % folders:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"m{i:05d}.stl").write_bytes(_cube(i))


@contextlib.contextmanager
def slow_flushes(full_s: float, barrier_s: float, folder_s: float) -> Iterator[dict[str, int]]:
    """Wrap the flush primitives with added sleeps, one at a time (a drive does not overlap flushes)."""
    device = threading.Lock()
    calls = {"full": 0, "barrier": 0, "folder": 0}
    real_order, real_dir_a, real_dir_p = atomic.order_fsync, atomic.fsync_dir, pipeline.fsync_dir

    def order(fd: int, *, full: bool = False) -> None:
        real_order(fd, full=full)
        with device:
            calls["full" if full else "barrier"] += 1
            time.sleep(full_s if full else barrier_s)

    def folder(path: object) -> None:
        real_dir_a(path)  # type: ignore[arg-type]
        with device:
            calls["folder"] += 1
            time.sleep(folder_s)

    atomic.order_fsync, atomic.fsync_dir, pipeline.fsync_dir = order, folder, folder  # type: ignore[assignment]
    try:
        yield calls
    finally:
        atomic.order_fsync, atomic.fsync_dir, pipeline.fsync_dir = real_order, real_dir_a, real_dir_p  # type: ignore[assignment]


def one_scan(lib: Path, work: Path, workers: int, full: bool) -> float:
    """Models per second of a full scan into a fresh database (sidecars removed first)."""
    for p in lib.rglob(".*.thumbnail.png"):
        p.unlink()
    db_path = work / f"db-{time.monotonic_ns()}.sqlite3"
    db = StateDB(db_path)

    def make() -> Executor:
        return InlineExecutor() if workers == 0 else LocalPool(workers)

    try:
        t0 = time.perf_counter()
        s = scan([str(lib)], db=db, options=ThumbnailOptions(), make_executor=make, durable=True, full_fsync=full)
        dt = time.perf_counter() - t0
        assert s.failed == 0 and s.rendered + s.embedded == s.found, s.as_dict()
        return s.found / dt
    finally:
        db.close()
        db_path.unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--folders", type=int, default=20)
    ap.add_argument("--workers", type=int, default=0, help="0: render in process (InlineExecutor)")
    ap.add_argument("--latency", type=float, default=20.0, help="ms per full flush")
    ap.add_argument(
        "--barrier", type=float, default=0.05, help="ms per barrier (F_BARRIERFSYNC) and macOS folder fsync"
    )
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-durability-"))
    try:
        lib = work / "lib"
        make_library(lib, args.count, args.folders)
        one_scan(lib, work, args.workers, False)  # warm-up: numba, caches
        lat, bar = args.latency / 1000, args.barrier / 1000
        cases = [
            ("no latency", None, False),
            ("macOS default", (lat, bar, bar), False),
            ("macOS full_fsync", (lat, bar, bar), True),
            ("every fsync slow", (lat, lat, lat), False),
        ]
        print(f"{args.count} models in {args.folders} folders, workers={args.workers}, latency {args.latency} ms")
        print(f"{'case':<18} {'models/s':>9} {'vs none':>8}  calls (full/barrier/folder)")
        # Cases interleaved within each repeat: a shared machine's load drifts; medians per case.
        rates: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        calls: dict[str, dict[str, int]] = {}
        for _ in range(args.repeat):
            for name, slow, full in cases:
                ctx = slow_flushes(*slow) if slow else contextlib.nullcontext({})
                with ctx as c:
                    rates[name].append(one_scan(lib, work, args.workers, full))
                    calls[name] = dict(c)
        base = statistics.median(rates[cases[0][0]])
        for name, _, _ in cases:
            rate = statistics.median(rates[name])
            counts = "/".join(str(calls[name].get(k, "-")) for k in ("full", "barrier", "folder"))
            print(f"{name:<18} {rate:9.1f} {rate / base:8.2f}  {counts}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
