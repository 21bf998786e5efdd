"""Dask executor vs the local pool, end to end on the shared corpus, in the same run (issue #7).

1. ``scan --force`` of a copy of the shared corpus with a warm ``LocalPool(N)`` (spawn workers);
2. the same with ``DaskExecutor`` on a warm ``LocalCluster`` of N worker processes (1 thread, RENDER=1),
   ``--batch`` files a Dask task (1: one task a file, as before batching);
   both repeated ``--repeat`` times, interleaved, on fresh databases; the overhead ratio is Dask / local.
   Both executors are made before the timed runs and have rendered every file once (so every worker has
   loaded every compiled kernel); their start-up costs are reported apart;
3. the coordinator's capacity: the same pipeline fed by an executor that replays finished results
   at once, over ``--copies`` hard-linked copies of the corpus, so what is measured is only what the
   coordinator does per file (sidecar write + fsync, stat, batched SQLite commits). No cluster of
   any size can finish files faster than this.

Run: ``python bench/dask.py [--workers 2] [--repeat 2] [--copies 20] [--batch 8] [--dir /tmp]``. Table to stdout.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.work.executors.local import LocalPool
from sidecar_thumbs.work.jobs import RenderJob, RenderResult
from sidecar_thumbs.work.scan import ScanSummary, scan

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("SIDECAR_THUMBS_CORPUS", REPO.parent / "shared" / "corpus"))
OPTIONS = ThumbnailOptions()


def copy_corpus(dest: Path) -> list[Path]:
    out = []
    for sub in ("stl-binary", "stl-ascii", "3mf", "bad"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
        for p in sorted((CORPUS / sub).iterdir()):
            if p.is_file():
                shutil.copy2(p, dest / sub / p.name)
                out.append(dest / sub / p.name)
    return out


def tree_cpu() -> float:
    """CPU seconds of this process and every live descendant (pool workers, Dask workers and nannies)."""
    import psutil  # a dependency of distributed

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def timed_scan(lib: Path, db_path: Path, make_executor, durable: bool = True) -> ScanSummary:  # type: ignore[no-untyped-def]
    if db_path.exists():
        db_path.unlink()
    with StateDB(db_path) as db:
        return scan([str(lib)], db=db, options=OPTIONS, make_executor=make_executor, force=True, durable=durable)


def cpu_scan(lib: Path, db_path: Path, make_executor, cpu: list[float]) -> ScanSummary:  # type: ignore[no-untyped-def]
    """timed_scan, noting the CPU time all the processes spent on it (the figure to trust on a shared machine)."""
    c0 = tree_cpu()
    s = timed_scan(lib, db_path, make_executor)
    cpu.append(tree_cpu() - c0)
    return s


class Recorder:
    """Wraps an executor and keeps every result (for the replay run)."""

    def __init__(self, inner, results: dict[str, RenderResult]) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.results, self.workers = inner, results, inner.workers

    def submit(self, job: RenderJob) -> cf.Future[RenderResult]:
        fut = self.inner.submit(job)
        fut.add_done_callback(lambda f: None if f.cancelled() or f.exception() else self._keep(f.result()))
        return fut

    def _keep(self, r: RenderResult) -> None:
        self.results[os.path.basename(r.path)] = r

    def shutdown(self, *, cancel: bool = False) -> None:
        self.inner.shutdown(cancel=cancel)


class Kept:
    """Keeps a warm executor across scans (scan() shuts its executor down at the end)."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.workers = inner, inner.workers

    def submit(self, job: RenderJob) -> cf.Future[RenderResult]:
        return self.inner.submit(job)

    def shutdown(self, *, cancel: bool = False) -> None:
        pass


class Replay:
    """An executor whose workers are infinitely fast: it hands back recorded results at once."""

    workers = 64

    def __init__(self, results: dict[str, RenderResult]) -> None:
        self.results = results

    def submit(self, job: RenderJob) -> cf.Future[RenderResult]:
        fut: cf.Future[RenderResult] = cf.Future()
        fut.set_result(replace(self.results[os.path.basename(job.path)], path=job.path))
        return fut

    def shutdown(self, *, cancel: bool = False) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--copies", type=int, default=20)
    ap.add_argument("--batch", type=int, default=None, help="files a Dask task (default: the executor's)")
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()

    # This file is bench/dask.py: run as a script, its folder comes first on sys.path and this
    # module would shadow the real `dask` package that distributed imports.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.modules.pop("dask", None)
    import distributed

    from sidecar_thumbs.work.executors.dask import DaskExecutor

    tmp = Path(tempfile.mkdtemp(prefix="bench-dask-", dir=args.dir))
    try:
        lib = tmp / "lib"
        files = copy_corpus(lib)
        print(f"corpus copy: {len(files)} files, {os.cpu_count()} cores, {args.workers} workers", file=sys.stderr)

        t0 = time.perf_counter()
        cluster = distributed.LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, resources={"RENDER": 1},
            dashboard_address=":0",
        )  # fmt: skip
        client = distributed.Client(cluster, set_as_default=False)
        cluster_s = time.perf_counter() - t0
        batch = {} if args.batch is None else {"batch_size": args.batch}
        t0 = time.perf_counter()
        dask_ex = DaskExecutor(client, timeout=300, options=OPTIONS, **batch)
        warm_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        pool = LocalPool(args.workers, timeout=300, options=OPTIONS)
        cf.wait([pool.submit(RenderJob(str(files[0]), OPTIONS)) for _ in range(args.workers * 2)])
        pool_s = time.perf_counter() - t0
        # Every file once through each, untimed: each worker loads the kernels each format needs.
        cf.wait([pool.submit(RenderJob(str(f), OPTIONS)) for f in files])
        cf.wait([dask_ex.submit(RenderJob(str(f), OPTIONS)) for f in files])

        local_s, dask_s, summaries = [], [], []
        local_cpu: list[float] = []
        dask_cpu: list[float] = []
        results: dict[str, RenderResult] = {}
        for i in range(args.repeat):
            s = cpu_scan(lib, tmp / "local.db", lambda: Kept(pool), local_cpu)
            local_s.append(s.render_elapsed)
            print(f"local run {i}: {s.render_elapsed:.2f} s, {s.rendered} rendered, {s.failed} failed", file=sys.stderr)
            s = cpu_scan(lib, tmp / "dask.db", lambda: Recorder(Kept(dask_ex), results), dask_cpu)
            dask_s.append(s.render_elapsed)
            summaries.append(s)
            print(f"dask run {i}: {s.render_elapsed:.2f} s, {s.rendered} rendered, {s.failed} failed", file=sys.stderr)
        dask_ex.shutdown()
        client.close()
        cluster.close()
        pool.shutdown()

        # Coordinator capacity: hard-linked copies of the library, results replayed at once.
        big = tmp / "big"
        for c in range(args.copies):
            for f in files:
                target = big / f"c{c}" / f.relative_to(lib)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(f, target)
        n_big = len(files) * args.copies
        capacity: dict[bool, float] = {}
        for durable in (False, True, False, True):  # best of two each: the machine may be shared
            s = timed_scan(big, tmp / "replay.db", lambda: Replay(results), durable=durable)
            rate = (s.rendered + s.embedded + s.failed) / s.render_elapsed
            capacity[durable] = max(capacity.get(durable, 0.0), rate)

        n = len(files)
        lm, dm = statistics.median(local_s), statistics.median(dask_s)
        print(f"| measure ({n} corpus files, {args.workers} workers, {os.cpu_count()} cores) | value |")
        print("|---|---|")
        print(f"| LocalCluster start | {cluster_s:.2f} s |")
        print(f"| DaskExecutor connect + warm-up plugin, {dask_ex.batch_size} files a task | {warm_s:.2f} s |")
        print(f"| LocalPool start + warm-up | {pool_s:.2f} s |")
        print(f"| local pool scan --force, warm (median of {args.repeat}) | {lm:.2f} s = {n / lm:.1f} files/s |")
        print(f"| Dask scan --force, warm (median of {args.repeat}) | {dm:.2f} s = {n / dm:.1f} files/s |")
        print(f"| overhead ratio Dask / local, wall | {dm / lm:.2f} |")
        lc, dc = statistics.median(local_cpu), statistics.median(dask_cpu)
        print(f"| CPU of all processes, local / Dask (median) | {lc:.2f} s / {dc:.2f} s |")
        print(f"| overhead ratio Dask / local, CPU | {dc / lc:.2f} |")
        runs = f"{', '.join(f'{x:.2f}' for x in local_s)} / {', '.join(f'{x:.2f}' for x in dask_s)}"
        print(f"| runs local / dask (s) | {runs} |")
        print(f"| coordinator capacity, {n_big} files, fsync on (durable) | {capacity[True]:.0f} files/s |")
        print(f"| coordinator capacity, fsync off | {capacity[False]:.0f} files/s |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
