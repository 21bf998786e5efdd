"""Per-file overhead outside the render (issue 17 item 4): what a file costs the pipeline besides drawing it.

Scans ``--count`` 12-triangle cubes (20 a folder, distinct content) into a fresh database on a ``--workers``
pool, the way ``scan`` does, and reports CPU time, not wall time (the machine is shared):

- ``stub``: the worker reads and hashes the file like ``render_job`` and returns a fixed 24 KB PNG (the size of
  a real thumbnail) without parsing or rendering: everything it costs is overhead — the hand-out, pickling, the
  pool's round trips, the sidecar write, the commit;
- ``render``: the real ``render_job`` (a 12-triangle model: the render kernel's per-file floor only).

For each: files/s (wall), coordinator CPU per file (this process, all threads: ``time.process_time``), worker
CPU per file (the reaped children's ``getrusage``, less a pool that starts, warms up and stops with no file),
and the load average. Runs alternate between the modes (``--repeat`` each), medians are printed.

Run: ``python bench/overhead.py [--count 2000] [--workers 2] [--repeat 3] [--mode stub --mode render]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from durability import make_library

from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.work.executors.local import LocalPool
from sidecar_thumbs.work.jobs import RenderJob, RenderResult, render_job
from sidecar_thumbs.work.scan import scan

FOLDER_SIZE = 20
# A real 256 px thumbnail is ~24 KB (see files/pngwrite.py): the stub returns as many bytes, so the
# transport and the write cost what they cost for a real one. Valid PNG bytes are not needed: the
# coordinator writes them as they are.
_STUB_PNG = b"\x89PNG\r\n\x1a\n" + bytes(24_000)


def stub_job(job: RenderJob) -> RenderResult:
    """Read and hash like ``render_job``, skip parse and render: the worker's own overhead only."""
    from sidecar_thumbs.files.fingerprint import hash_bytes
    from sidecar_thumbs.render.thumbnail import read_model_bytes
    from sidecar_thumbs.types import ThumbSource

    data, size, mtime_ns = read_model_bytes(job.path, job.options.limits)
    digest = hash_bytes(data)
    return RenderResult(job.path, _STUB_PNG, ThumbSource.RENDERED, digest, size, mtime_ns, 12, 0.0)


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _pool(workers: int, mode: str, options: ThumbnailOptions) -> LocalPool:
    job = stub_job if mode == "stub" else render_job
    return LocalPool(workers, timeout=300.0, max_tasks=500, options=options, job=job)


def idle_pool_cpu(workers: int, options: ThumbnailOptions) -> float:
    """Children CPU of a pool that starts, warms up and stops with no file: the fixed cost to subtract."""
    c0 = _children_cpu()
    pool = _pool(workers, "render", options)
    time.sleep(0.5)
    pool.shutdown()
    return _children_cpu() - c0


def one_run(work: Path, count: int, workers: int, mode: str, options: ThumbnailOptions) -> dict[str, float]:
    root = work / f"lib-{mode}"
    shutil.rmtree(root, ignore_errors=True)
    make_library(root, count, max(1, count // FOLDER_SIZE))
    db_path = work / f"state-{mode}.sqlite3"
    for p in work.glob(f"state-{mode}.sqlite3*"):
        p.unlink()
    load = os.getloadavg()[0]
    c0, p0, t0 = _children_cpu(), time.process_time(), time.perf_counter()
    with StateDB(db_path) as db:
        s = scan([str(root)], db=db, make_executor=lambda: _pool(workers, mode, options), options=options)
    wall, coord, kids = time.perf_counter() - t0, time.process_time() - p0, _children_cpu() - c0
    if s.rendered != count:
        raise SystemExit(f"{mode}: rendered {s.rendered} of {count} ({s.failed} failed: {s.failures[:3]})")
    return {
        "wall_s": wall,
        "render_phase_s": s.render_elapsed,
        "files_per_s": count / s.render_elapsed,
        "coordinator_cpu_s": coord,
        "children_cpu_s": kids,
        "load": load,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mode", action="append", choices=["stub", "render"], default=None)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args(argv)
    modes = args.mode or ["stub", "render"]
    options = ThumbnailOptions()
    options = replace(options)  # the defaults, as a scan without settings uses them
    work = Path(tempfile.mkdtemp(prefix="sidecar-overhead-", dir=args.dir))
    try:
        # The smaller of two: the first start of a fresh checkout also compiles numba's cache (~30 s of CPU).
        idle = min(idle_pool_cpu(args.workers, options) for _ in range(2))
        runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
        for i in range(args.repeat):
            for m in modes:
                r = one_run(work, args.count, args.workers, m, options)
                runs[m].append(r)
                print(
                    f"[{i + 1}/{args.repeat}] {m}: {r['files_per_s']:.0f} files/s, coordinator "
                    f"{r['coordinator_cpu_s']:.2f} s CPU, workers {r['children_cpu_s']:.2f} s CPU, "
                    f"load {r['load']:.1f}",
                    file=sys.stderr,
                    flush=True,
                )
        print(f"{args.count} cubes, {args.workers} workers, idle pool start+warm-up+stop: {idle:.2f} s CPU")
        print("| mode | files/s (render phase) | coordinator CPU / file | worker CPU / file | load average |")
        print("|---|---|---|---|---|")
        for m, rs in runs.items():
            med: dict[str, Any] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            per = 1e3 / args.count
            loads = f"{min(r['load'] for r in rs):.1f}–{max(r['load'] for r in rs):.1f}"
            print(
                f"| {m} | {med['files_per_s']:.0f} | {med['coordinator_cpu_s'] * per:.2f} ms "
                f"| {(med['children_cpu_s'] - idle) * per:.2f} ms | {loads} |"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
