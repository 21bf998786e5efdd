"""The whole-library scan benchmark (issue #3 item 10).

Builds a synthetic library (34,074 models by default, see ``_common.plan_library``), then measures
with the real library code, on ``--workers`` processes and a fresh state database:

1. full scan (everything renders): files/s, renders/s, coordinator and worker peak RSS;
2. no-op rescan (median of ``--repeat``), proving 0 hashes and 0 renders; plus the CLI's wall time;
3. rescan after touching 1,000 files: proves 1,000 hashes and 0 renders;
4. end-to-end scan of a copy of the shared corpus (bad/ files fail by design);
5. process-per-file baseline (one ``sidecar-thumbs render FILE`` per file, ``--workers`` at a time)
   against the pool scan on the same random sample.

Run: ``python bench/scan.py [--count 2000] [--workers N] [--dir /tmp] [--keep] [--json out.json]``.
Progress goes to stderr; the table to stdout.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import Library, RssSampler, estimated_bytes, generate_library, plan_library

import sidecar_thumbs
from sidecar_thumbs.files.discover import iter_model_files
from sidecar_thumbs.files.sidecar import sidecar_path_for
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.settings.fields import default_workers
from sidecar_thumbs.settings.loading import load_settings
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.work.executors.local import Executor, make_executor
from sidecar_thumbs.work.outcomes import Outcome
from sidecar_thumbs.work.plan import plan_changes
from sidecar_thumbs.work.scan import ScanSummary, scan

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
CORPUS_FOLDERS = ("stl-binary", "stl-ascii", "3mf", "bad")
TOUCHED = 1_000
# The issue's targets.
TARGET_CORPUS_FPS = 60.0
TARGET_FULL_S = 600.0
TARGET_NOOP_S = 0.5
TARGET_SPEEDUP = 20.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Runner:
    """Runs ``scan`` the way the CLI does (same settings defaults), in this process."""

    def __init__(self, workers: int, work: Path) -> None:
        # Defaults only: no .env of whoever runs the bench, no SIDECAR_THUMBS_* from the shell.
        self.settings = load_settings(environ={}, cwd=work, overrides={"workers": workers})
        s = self.settings
        self.options = ThumbnailOptions(
            render=RenderOptions(size=s.size, color=s.color_rgb, kernel=s.renderer),
            use_embedded=s.embedded,
            limits=s.load_limits(),
        )
        self.workers = workers

    def executor(self) -> Executor:
        s = self.settings
        return make_executor(self.workers, timeout=s.timeout, max_tasks=s.max_tasks_per_worker, options=self.options)

    def scan(self, roots: list[str], db_path: Path, label: str, total: int | None = None) -> ScanSummary:
        """One scan with a progress line on stderr every 10 s."""
        done = [0]
        t0 = time.monotonic()
        last = [t0]

        def on_outcome(o: Outcome) -> None:
            done[0] += 1
            now = time.monotonic()
            if now - last[0] >= 10:
                last[0] = now
                rate = done[0] / (now - t0)
                left = f", ETA {(total - done[0]) / rate:.0f} s" if total and rate else ""
                log(f"{label}: {done[0]}/{total or '?'} finished, {rate:.1f}/s{left}")

        with StateDB(db_path) as db:
            return scan(
                roots,
                db=db,
                make_executor=self.executor,
                options=self.options,
                batch_size=self.settings.batch_size,
                timeout=self.settings.timeout,
                on_outcome=on_outcome,
            )


# ------------------------------------------------------------------ the measurements


def describe_mix(lib: Library) -> dict[str, Any]:
    tris = np.array(lib.triangles)
    kinds = {k: lib.kinds.count(k) for k in ("stl", "ascii", "3mf")}
    pct = {f"p{p}": int(np.percentile(tris, p)) for p in (10, 50, 90, 99)}
    buckets = {
        "<5k": float(np.mean(tris < 5_000)),
        "5k-50k": float(np.mean((tris >= 5_000) & (tris < 50_000))),
        "50k-200k": float(np.mean((tris >= 50_000) & (tris < 200_000))),
        ">=200k": float(np.mean(tris >= 200_000)),
    }
    return {
        "count": len(lib.files),
        "bytes": int(sum(lib.sizes)),
        "folders": lib.folders,
        "kinds": kinds,
        "triangles": {**pct, "max": int(tris.max()), "mean": int(tris.mean())},
        "size_buckets": buckets,
        "generate_s": round(lib.seconds, 1),
    }


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def full_scan(run: Runner, lib: Library, db: Path) -> dict[str, Any]:
    log(f"full scan of {len(lib.files)} files on {run.workers} workers")
    # CPU time as well as wall time: on a shared machine the wall time measures the other users too.
    c0, p0 = _children_cpu(), time.process_time()
    with RssSampler() as rss:
        s = run.scan([str(lib.root)], db, "full scan", len(lib.files))
    coordinator_cpu, workers_cpu = time.process_time() - p0, _children_cpu() - c0  # workers reaped by scan
    log(f"full scan: {s.elapsed:.1f} s, rendered {s.rendered}, embedded {s.embedded}, failed {s.failed}")
    log(f"full scan CPU: coordinator {coordinator_cpu:.1f} s, workers {workers_cpu:.1f} s")
    busy = worker_time(db)
    util = busy["total_s"] / (run.workers * s.render_elapsed) if s.render_elapsed else 0.0
    return {
        "worker_busy_s": busy["total_s"],
        "worker_utilisation": round(util, 3),
        "worker_ms_by_size": busy["by_size"],
        "elapsed_s": round(s.elapsed, 2),
        "coordinator_cpu_s": round(coordinator_cpu, 2),
        "workers_cpu_s": round(workers_cpu, 2),
        "files_per_s": round(s.found / s.elapsed, 1),
        "renders_per_s": round(s.renders_per_s, 1),
        "render_phase_s": round(s.render_elapsed, 2),
        "plan_phase_s": round(s.elapsed - s.render_elapsed, 2),
        "found": s.found,
        "rendered": s.rendered,
        "embedded": s.embedded,
        "failed": s.failed,
        "failures": s.failures[:5],
        "coordinator_peak_rss_mb": round(rss.self_peak_kb / 1024, 1),
        "worker_peak_rss_mb": round(rss.worker_peak_kb / 1024, 1),
        "workers_sum_peak_rss_mb": round(rss.workers_sum_peak_kb / 1024, 1),
        "worker_processes_seen": rss.workers_seen,
    }


def worker_time(db: Path) -> dict[str, Any]:
    """Time the workers spent per file (read + hash + parse + render + PNG), from the database.

    Busy time ÷ (workers × render phase) says who limits the scan: near 1, the renders themselves;
    well below 1, the coordinator (hand-out, sidecar writes, database) or the machine.
    """
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute("SELECT triangles, render_ms FROM st_models WHERE render_ms IS NOT NULL").fetchall()
    con.close()
    by: dict[str, list[float]] = {"<5k": [], "5k-50k": [], "50k-200k": [], ">=200k": [], "embedded": []}
    for tris, ms in rows:
        if tris is None:
            by["embedded"].append(ms)
        else:
            by["<5k" if tris < 5e3 else "5k-50k" if tris < 5e4 else "50k-200k" if tris < 2e5 else ">=200k"].append(ms)
    return {
        "total_s": round(sum(ms for _, ms in rows) / 1e3, 1),
        "by_size": {
            k: {"files": len(v), "median_ms": round(statistics.median(v), 1), "sum_s": round(sum(v) / 1e3, 1)}
            for k, v in by.items()
            if v
        },
    }


def noop_rescans(run: Runner, lib: Library, db: Path, repeat: int) -> dict[str, Any]:
    times, inner = [], []
    for i in range(repeat):
        t = time.perf_counter()
        s = run.scan([str(lib.root)], db, "no-op")
        times.append(time.perf_counter() - t)  # includes opening the database
        inner.append(s.elapsed)
        if s.hashed or s.rendered or s.embedded or s.failed:
            raise SystemExit(f"no-op rescan {i} did work: hashed {s.hashed}, rendered {s.rendered}")
    log(f"no-op rescans: {', '.join(f'{t:.3f}' for t in times)} s")
    phases = [noop_phases(str(lib.root), db) for _ in range(3)]
    phase_median = {k: round(statistics.median(p[k] for p in phases), 4) for k in phases[0]}
    log(f"no-op phases (median of 3): {phase_median}")
    cli = []
    for _ in range(3):
        t = time.perf_counter()
        out = subprocess.run(
            [_cli(), "scan", str(lib.root), "--db", str(db), "--json"],
            cwd=db.parent,
            capture_output=True,
            text=True,
            env=_clean_env(),
        )
        cli.append(time.perf_counter() - t)
        summary = json.loads(out.stdout)
        if summary["hashed"] or summary["rendered"]:
            raise SystemExit(f"CLI no-op rescan did work: {summary}")
    log(f"CLI no-op rescans (wall, with interpreter start): {', '.join(f'{t:.3f}' for t in cli)} s")
    return {
        "median_s": round(statistics.median(times), 3),
        "runs_s": [round(t, 3) for t in times],
        "scan_elapsed_median_s": round(statistics.median(inner), 3),
        "hashed": 0,
        "rendered": 0,
        "cli_wall_median_s": round(statistics.median(cli), 3),
        "phases_s": phase_median,
    }


def noop_phases(root: str, db_path: Path) -> dict[str, float]:
    """Where a no-op rescan's time goes: the same steps ``scan`` takes, timed one by one."""
    t0 = time.perf_counter()
    found = list(iter_model_files([root]))
    t1 = time.perf_counter()
    with StateDB(db_path) as db:
        t2 = time.perf_counter()
        rows = db.rows_under([root])
        t3 = time.perf_counter()
    plan = plan_changes(found, rows)  # one lexists per file: is the sidecar still there?
    t4 = time.perf_counter()
    assert not plan.states and plan.unchanged == len(found)
    return {"walk": t1 - t0, "open_db": t2 - t1, "rows_under": t3 - t2, "plan": t4 - t3, "total": t4 - t0}


def touch_rescan(run: Runner, lib: Library, db: Path, seed: int) -> dict[str, Any]:
    picked = random.Random(seed).sample(lib.files, min(TOUCHED, len(lib.files)))
    for p in picked:
        st = os.stat(p)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 86_400 * 10**9))
    s = run.scan([str(lib.root)], db, "touch rescan")
    ok = s.hashed == len(picked) and s.rendered == 0 and s.embedded == 0
    log(f"touch rescan: {s.elapsed:.3f} s, hashed {s.hashed}, rendered {s.rendered}")
    if not ok:
        raise SystemExit(f"touch rescan: expected {len(picked)} hashes and 0 renders, got {s.as_dict()}")
    return {
        "touched": len(picked),
        "bytes_hashed": sum(os.path.getsize(p) for p in picked),
        "elapsed_s": round(s.elapsed, 3),
        "hashed": s.hashed,
        "rendered": s.rendered,
    }


def pool_startup(run: Runner, tiny: str, repeat: int = 3) -> dict[str, Any]:
    """What every scan that renders pays once: spawn the workers, import, warm numba, first job."""
    from sidecar_thumbs.work.jobs import RenderJob

    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        ex = run.executor()
        futures = [ex.submit(RenderJob(tiny, run.options)) for _ in range(run.workers)]
        for fut in futures:
            fut.result()
        times.append(time.perf_counter() - t)
        ex.shutdown()
    log(f"pool start-up + first job: {', '.join(f'{t:.2f}' for t in times)} s")
    return {"median_s": round(statistics.median(times), 2), "runs_s": [round(t, 2) for t in times]}


def corpus_scan(run: Runner, work: Path, repeat: int) -> dict[str, Any]:
    rates, runs = [], []
    for i in range(repeat):
        dest = work / f"corpus-{i}"
        for folder in CORPUS_FOLDERS:
            shutil.copytree(CORPUS / folder, dest / folder)  # never write sidecars into shared/
        s = run.scan([str(dest)], work / f"corpus-{i}.db", "corpus")
        rates.append(s.found / s.elapsed)
        outside_bad = [p for p, _ in s.failures if f"{os.sep}bad{os.sep}" not in p]
        runs.append(
            {
                "found": s.found,
                "rendered": s.rendered,
                "embedded": s.embedded,
                "failed": s.failed,
                "failed_outside_bad": len(outside_bad),
                "failures_outside_bad": [(os.path.relpath(p, dest), r) for p, r in s.failures if p in outside_bad],
                "worker_busy_s": worker_time(work / f"corpus-{i}.db")["total_s"],
                "elapsed_s": round(s.elapsed, 2),
                "render_phase_s": round(s.render_elapsed, 2),
            }
        )
        log(f"corpus run {i}: {runs[-1]}")
        shutil.rmtree(dest)
    best = runs[rates.index(statistics.median_low(rates))]
    return {"files_per_s_median": round(statistics.median(rates), 1), "runs": runs, "median_run": best}


def baseline(run: Runner, lib: Library, work: Path, sample_size: int, seed: int) -> dict[str, Any]:
    """One ``sidecar-thumbs render FILE`` process per file vs. the pool scan, on the same sample."""
    picked = random.Random(seed + 1).sample(range(len(lib.files)), min(sample_size, len(lib.files)))
    proc_dir, pool_dir = work / "sample-proc", work / "sample-pool"
    proc_files = []
    for d in (proc_dir, pool_dir):
        d.mkdir()
        for i in picked:
            src = lib.files[i]
            dst = d / f"{i:05d} {os.path.basename(src)}"
            try:
                os.link(src, dst)  # same bytes, sidecars land beside the link
            except OSError:
                shutil.copy2(src, dst)
            if d == proc_dir:
                proc_files.append(str(dst))
    for f in proc_files:  # both contenders read from the page cache
        Path(f).read_bytes()
    sample_bytes = sum(os.path.getsize(f) for f in proc_files)
    sample_tris = [lib.triangles[i] for i in picked]

    log(f"baseline: {len(proc_files)} × sidecar-thumbs render, {run.workers} at a time")
    cmd, env = _cli(), _clean_env()

    def one(path: str) -> int:
        return subprocess.run(
            [cmd, "render", path], cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ).returncode

    t = time.perf_counter()
    with cf.ThreadPoolExecutor(run.workers) as pool:
        codes = list(pool.map(one, proc_files))
    proc_s = time.perf_counter() - t
    made = sum(sidecar_path_for(f).exists() for f in proc_files)
    log(f"baseline: {proc_s:.1f} s, {made} sidecars, {sum(c != 0 for c in codes)} non-zero exits")

    t = time.perf_counter()
    s = run.scan([str(pool_dir)], work / "sample.db", "sample pool scan", len(picked))
    pool_s = time.perf_counter() - t
    log(f"pool on the same sample: {pool_s:.1f} s, rendered {s.rendered + s.embedded}")
    proc_fps, pool_fps = len(proc_files) / proc_s, len(picked) / pool_s
    return {
        "sample_files": len(picked),
        "sample_bytes": sample_bytes,
        "sample_triangles_median": int(np.median(sample_tris)),
        "process_per_file_s": round(proc_s, 2),
        "process_per_file_fps": round(proc_fps, 2),
        "process_per_file_ok": made,
        "pool_s": round(pool_s, 2),
        "pool_fps": round(pool_fps, 1),
        "pool_ok": s.rendered + s.embedded,
        "speedup": round(pool_fps / proc_fps, 1),
    }


def _cli() -> str:
    """The real console script (not a pyenv shim, whose bash start-up would flatter the pool)."""
    script = Path(sysconfig.get_path("scripts")) / "sidecar-thumbs"
    return str(script) if script.exists() else shutil.which("sidecar-thumbs") or "sidecar-thumbs"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SIDECAR_THUMBS_", "DAM_"))}


# ------------------------------------------------------------------ report


def table(r: dict[str, Any]) -> str:
    """The results as a Markdown table (sections that did not run are left out)."""

    def row(name: str, value: str, target: str = "", ok: bool | str | None = None) -> str:
        verdict = ok if isinstance(ok, str) else "" if ok is None else ("PASS" if ok else "MISS")
        return f"| {name:<46} | {value:>38} | {target:>8} | {verdict:>4} |"

    head = f"workers {r['workers']} · cpus {r['cpus']}"
    if "mix" in r:
        head += f" · {r['mix']['count']} files, {r['mix']['bytes'] / 1e9:.2f} GB"
    lines = [head, row("measure", "result", "target", "ok?"), "|" + "|".join("-" * w for w in (48, 40, 10, 6)) + "|"]
    if "full" in r:
        f = r["full"]
        lines += [
            row("full scan: total time", f"{f['elapsed_s']:.1f} s", "≤ 600 s", f["elapsed_s"] <= TARGET_FULL_S),
            row("full scan: files/s (found ÷ total)", f"{f['files_per_s']:.1f}"),
            row("full scan: renders/s (render phase)", f"{f['renders_per_s']:.1f}"),
            row("full scan: plan phase (walk, upsert)", f"{f['plan_phase_s']:.2f} s"),
            row("full scan: rendered / embedded / failed", f"{f['rendered']} / {f['embedded']} / {f['failed']}"),
            row("full scan: worker busy ÷ (workers × phase)", f"{f['worker_utilisation']:.0%}"),
            row("full scan: coordinator peak RSS", f"{f['coordinator_peak_rss_mb']:.0f} MB"),
            row("full scan: largest worker peak RSS", f"{f['worker_peak_rss_mb']:.0f} MB"),
            row("full scan: all workers at once (sampled)", f"{f['workers_sum_peak_rss_mb']:.0f} MB"),
        ]  # fmt: skip
    if "noop" in r:
        n = r["noop"]
        lines += [
            row(f"no-op rescan, median of {len(n['runs_s'])} (in-process)",
                f"{n['median_s']:.3f} s (0 hashed, 0 rendered)", "≤ 0.5 s", n["median_s"] <= TARGET_NOOP_S),
            row("no-op rescan via CLI, median of 3 (wall)", f"{n['cli_wall_median_s']:.3f} s"),
            row("no-op: walk / open db / rows_under / plan",
                " / ".join(f"{n['phases_s'][k]:.3f}" for k in ("walk", "open_db", "rows_under", "plan")) + " s"),
        ]  # fmt: skip
    if "touch" in r:
        t = r["touch"]
        value = f"{t['elapsed_s']:.3f} s ({t['hashed']} hashed, {t['rendered']} rendered)"
        lines.append(row(f"rescan after touching {t['touched']}", value))
    if "pool_start" in r:
        lines.append(row("pool start-up + first job, median of 3", f"{r['pool_start']['median_s']:.2f} s"))
    if "baseline" in r:
        b = r["baseline"]
        lines += [
            row(f"process-per-file, {b['sample_files']} files", f"{b['process_per_file_fps']:.2f} files/s"),
            row(f"pool scan, same {b['sample_files']} files", f"{b['pool_fps']:.1f} files/s"),
            row("speed-up (pool ÷ process-per-file)", f"{b['speedup']:.1f}×", "≥ 20×", b["speedup"] >= TARGET_SPEEDUP),
        ]  # fmt: skip
    if "corpus" in r:
        c = r["corpus"]
        mr = c["median_run"]
        lines += [
            row(f"corpus end-to-end, median of {len(c['runs'])}", f"{c['files_per_s_median']:.1f} files/s",
                "≥ 60/s", c["files_per_s_median"] >= TARGET_CORPUS_FPS),
            row("corpus: found / ok / failed (outside bad/)",
                f"{mr['found']} / {mr['rendered'] + mr['embedded']} / {mr['failed']} ({mr['failed_outside_bad']})"),
            row("corpus: worker busy time (median run)", f"{mr['worker_busy_s']:.1f} s"),
        ]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=34_074, help="models in the synthetic library")
    ap.add_argument("--workers", type=int, default=default_workers(), help="render processes")
    ap.add_argument("--dir", type=Path, default=None, help="where to build the library (default: /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the library and databases")
    ap.add_argument("--seed", type=int, default=34_074)
    ap.add_argument("--repeat", type=int, default=5, help="no-op rescans (median reported)")
    ap.add_argument("--corpus-repeat", type=int, default=3)
    ap.add_argument("--sample", type=int, default=300, help="files in the process-per-file comparison")
    ap.add_argument("--skip", action="append", default=[], choices=["corpus", "baseline"])
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="sidecar-scan-bench-", dir=args.dir))
    results: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "code": os.path.dirname(sidecar_thumbs.__file__),  # a snapshot can be measured via PYTHONPATH
        "load_average_at_start": os.getloadavg(),
    }
    try:
        run_all(args, work, results)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            log(f"removing {work}")
            shutil.rmtree(work, ignore_errors=True)
        print(table(results))  # what was measured, even after a failure or Ctrl-C
        _save(args.json, results)


def _save(path: Path | None, results: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def run_all(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    """Generate the library and run every measurement, saving results after each step."""
    specs = plan_library(args.count, args.seed)
    need = estimated_bytes(specs)
    free = shutil.disk_usage(work).free
    if need * 1.2 + 2e9 > free:
        raise SystemExit(f"need ~{need / 1e9:.0f} GB in {work}, {free / 1e9:.0f} GB free; use --dir or --count")
    log(f"generating {len(specs)} files (~{need / 1e9:.1f} GB) in {work / 'library'}")
    progress = _every(10.0, lambda n: log(f"generated {n}/{len(specs)}"))
    lib = generate_library(work / "library", specs, processes=args.workers, on_progress=progress)
    t = time.perf_counter()
    os.sync()  # so write-back of the generated files does not run during the full scan
    log(f"generated in {lib.seconds:.1f} s (+ sync {time.perf_counter() - t:.1f} s)")
    results["mix"] = describe_mix(lib)
    _print_mix(results["mix"])
    run = Runner(args.workers, work)
    db = work / "state.sqlite3"
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("full", lambda: full_scan(run, lib, db)),
        ("noop", lambda: noop_rescans(run, lib, db, args.repeat)),
        ("touch", lambda: touch_rescan(run, lib, db, args.seed)),
        ("pool_start", lambda: pool_startup(run, min(lib.files, key=os.path.getsize))),
    ]
    if "baseline" not in args.skip:
        steps.append(("baseline", lambda: baseline(run, lib, work, args.sample, args.seed)))
    if "corpus" not in args.skip and CORPUS.is_dir():
        steps.append(("corpus", lambda: corpus_scan(run, work, args.corpus_repeat)))
    for name, step in steps:
        results[name] = step()
        results[name]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]  # others' work skews this
        _save(args.json, results)


def _print_mix(m: dict[str, Any]) -> None:
    k, t, b = m["kinds"], m["triangles"], m["size_buckets"]
    print(
        f"library: {m['count']} files in {m['folders']} folders, {m['bytes'] / 1e9:.2f} GB "
        f"(binary STL {k['stl']}, ASCII STL {k['ascii']}, 3MF {k['3mf']}); generated in {m['generate_s']} s\n"
        f"triangles: p10 {t['p10']}, p50 {t['p50']}, p90 {t['p90']}, p99 {t['p99']}, max {t['max']}, "
        f"mean {t['mean']}\n"
        "sizes: " + ", ".join(f"{name} {share:.1%}" for name, share in b.items()),
        flush=True,
    )


def _every(seconds: float, fn: Callable[[int], None]) -> Callable[[int], None]:
    last = [time.monotonic()]
    lock = threading.Lock()

    def call(n: int) -> None:
        with lock:
            if time.monotonic() - last[0] >= seconds:
                last[0] = time.monotonic()
                fn(n)

    return call


if __name__ == "__main__":
    main()
