"""The daemon benchmark (issue #4 item 5): drop-to-sidecar latency and a 2,000-file burst.

The daemon runs as in production, in its own process
(``python -m sidecar_thumbs -vv watch ROOT --db DB --workers N --settle S --rescan-interval 0``; the
rescan is off so that a lost event shows up as a missing sidecar instead of being repaired quietly).
Inputs are generated up front into a staging folder outside the watched root (``_common``), so the
generator does not compete with the daemon for the CPUs while it is measured.

1. Latency: files (binary STL 1k-200k triangles, some 3MF) are dropped one at a time, ``--gap``
   seconds apart, by writing a temp name and ``os.replace`` -ing it into place, or by writing the final
   name directly (``--write``). From the moment the file is closed (renamed) the sidecar is polled every
   10 ms; the sidecar is renamed into place, so existing means complete. Reported: p50/p95/max, the
   settle window's share, and the render time logged by the daemon. Repeated with ``--settle 1``
   (``--compare-settle``) on a fresh daemon to show the overhead independent of the window.
2. Burst: ``--burst`` files (mostly small binary STL) are copied as fast as possible by
   ``--burst-writers`` threads into several folders (half of which appear during the burst). Reported:
   time from the first write to the last sidecar, renders/s, the daemon's (coordinator's) peak RSS and
   its pool workers', and that every file was rendered exactly once (the ``-vv`` log's
   ``rendered: <path>`` lines), every sidecar exists and ``status --json`` counts them done.

Run: ``python bench/watch.py [--workers N] [--settle 3] [--burst 2000] [--json out.json]``.
Progress goes to stderr; the table to stdout. The daemon runs whatever ``sidecar_thumbs`` resolves to;
to measure a commit rather than a working tree others are editing, point ``PYTHONPATH`` at a snapshot
(``git archive HEAD | tar -x -C /tmp/snap; PYTHONPATH=/tmp/snap python bench/watch.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _common import LEVELS, FileSpec, generate_library

from sidecar_thumbs.settings.fields import default_workers

TARGET_OVERHEAD_S = 0.5  # the issue: p50 latency <= settle + 0.5 s
POLL_S = 0.01  # sidecar polling while measuring latency
SAMPLE_S = 0.1  # RSS sampling
SETTLE_AFTER = "settle + 2 s"  # how long after the drain the log and the database are read


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# ------------------------------------------------------------------ inputs


def _level(triangles: float) -> int:
    """Nearest cached mesh size of ``_common`` (meshes are reused; each file still differs)."""
    return int(LEVELS[np.abs(np.log(LEVELS) - np.log(triangles)).argmin()])


def _spec(rel: str, kind: str, triangles: float, seed: int, rng: np.random.Generator) -> FileSpec:
    level = _level(triangles)
    # knot and gear have a floor of a few hundred triangles
    shape = "rock" if level < 2_000 else str(rng.choice(["rock", "knot", "gear"]))
    return FileSpec(rel, kind, shape, level, seed)


def latency_specs(count: int, seed: int) -> list[FileSpec]:
    """``count`` drops: 85 % binary STL log-uniform 1k-200k triangles, 15 % 3MF 1k-50k."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        is_3mf = i % 7 == 3
        hi = 50_000 if is_3mf else 200_000
        n = float(np.exp(rng.uniform(np.log(1_000), np.log(hi))))
        name = f"drop {i:03d} Träger [v{i % 3}].{'3mf' if is_3mf else 'stl'}"
        out.append(_spec(name, "3mf" if is_3mf else "stl", n, 10_000 + i, rng))
    return out


def burst_specs(count: int, folders: int, seed: int) -> list[FileSpec]:
    """Mostly small binary STL: 88 % 12-5k triangles, 8 % 5k-50k, 2 % 50k-200k, 2 % 3MF 1k-20k."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        u = rng.random()
        kind, lo, hi = (
            ("stl", 12, 5_000) if u < 0.88 else ("stl", 5_000, 50_000) if u < 0.96
            else ("stl", 50_000, 200_000) if u < 0.98 else ("3mf", 1_000, 20_000)
        )  # fmt: skip
        n = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        rel = f"burst {i % folders:02d} Ärger/part {i:05d}.{kind}"
        out.append(_spec(rel, kind, n, 20_000 + i, rng))
    return out


def sidecar_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.thumbnail.png")


# ------------------------------------------------------------------ the daemon and its memory


@dataclass
class DaemonRun:
    """``sidecar-thumbs -vv watch`` in its own process, logging to a file."""

    root: Path
    db: Path
    workers: int
    settle: float
    log_path: Path = field(init=False)
    proc: subprocess.Popen[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.db.with_suffix(".log")
        args = [sys.executable, "-m", "sidecar_thumbs", "-vv", "watch", str(self.root), "--db", str(self.db),
                "--workers", str(self.workers), "--settle", str(self.settle), "--rescan-interval", "0"]  # fmt: skip
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=_clean_env(),
                                         cwd=self.db.parent)  # fmt: skip
        deadline = time.monotonic() + 60
        while "start-up scan:" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"daemon did not start:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def renders(self) -> tuple[Counter[str], dict[str, float], list[str]]:
        """(renders per path, last render ms per path, failure lines) from the ``-vv`` log."""
        counts: Counter[str] = Counter()
        ms: dict[str, float] = {}
        failed = []
        for line in self.log().splitlines():
            if " rendered: " in line:
                path, tail = line.split(" rendered: ", 1)[1].rsplit(" (", 1)
                counts[path] += 1
                ms[path] = float(tail.rsplit(",", 1)[-1].split()[0])
            elif " failed: " in line or " ERROR " in line:
                failed.append(line)
        return counts, ms, failed

    def stop(self) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds to exit)."""
        t = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        return code, time.monotonic() - t


def _clean_env() -> dict[str, str]:
    """No SIDECAR_THUMBS_* settings of whoever runs the bench."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_THUMBS_")}


def _status_kb(pid: int, name: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _workers_of(pid: int) -> list[int]:
    """The pool's worker processes: children of ``pid``, minus multiprocessing's resource tracker."""
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                kids += [int(p) for p in fh.read().split()]
        out = []
        for kid in kids:
            with open(f"/proc/{kid}/cmdline", "rb") as fh:
                if b"resource_tracker" not in fh.read():
                    out.append(kid)
        return out
    except OSError:
        return kids  # a worker exited between the two reads


class RssSampler(threading.Thread):
    """Samples the daemon's VmRSS and its workers' every ``SAMPLE_S`` for the whole run."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss", daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, int, int, int]] = []  # (t, coordinator kb, workers sum kb, largest)
        self.worker_pids: set[int] = set()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(SAMPLE_S):
            rss = _status_kb(self.pid, "VmRSS")
            if not rss:
                return
            pids = _workers_of(self.pid)
            kids = [_status_kb(k, "VmRSS") for k in pids]
            self.worker_pids.update(pids)
            self.samples.append((time.monotonic(), rss, sum(kids), max(kids, default=0)))

    def between(self, t0: float, t1: float) -> dict[str, float]:
        s = [x for x in self.samples if t0 <= x[0] <= t1] or self.samples[-1:]
        return {"coordinator_peak_mb": max(x[1] for x in s) / 1024,
                "coordinator_last_mb": s[-1][1] / 1024,
                "workers_sum_peak_mb": max(x[2] for x in s) / 1024,
                "worker_peak_mb": max(x[3] for x in s) / 1024}  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs so far, from ``/proc/stat``."""
    with open("/proc/stat", encoding="ascii") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return float(sum(values) - idle), float(sum(values))


def reset_hwm(pid: int) -> bool:
    """Reset the daemon's VmHWM (Linux, same user), so it reports the next phase's peak."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# ------------------------------------------------------------------ 1. latency


def drop(src: Path, dest: Path, method: str) -> float:
    """Put ``src``'s bytes at ``dest``; returns the monotonic time the file was complete and closed."""
    data = src.read_bytes()  # before the clock starts
    if method == "replace":
        tmp = dest.with_name(f".{dest.name}.{random.randrange(16**6):06x}")  # rsync-style temp name
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, dest)
    else:
        with open(dest, "wb") as fh:
            fh.write(data)
    return time.monotonic()


class SidecarPoller(threading.Thread):
    """Notes when each awaited sidecar appears, looking every ``POLL_S`` at those still awaited."""

    def __init__(self) -> None:
        super().__init__(name="poll", daemon=True)
        self.closed: dict[Path, float] = {}
        self.seen: dict[Path, float] = {}
        self.halt = threading.Event()
        self._lock = threading.Lock()

    def expect(self, model: Path, t_closed: float) -> None:
        with self._lock:
            self.closed[model] = t_closed

    def run(self) -> None:
        while not self.halt.wait(POLL_S):
            with self._lock:
                waiting = [p for p in self.closed if p not in self.seen]
            for p in waiting:
                if sidecar_of(p).exists():
                    self.seen[p] = time.monotonic()

    def wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < len(self.closed) and time.monotonic() < deadline:
            time.sleep(0.05)

    def latency(self, model: Path) -> float | None:
        return self.seen[model] - self.closed[model] if model in self.seen else None


def latency_phase(
    run: DaemonRun, staged: Path, specs: list[FileSpec], cold: list[FileSpec], args: argparse.Namespace, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    poller = SidecarPoller()
    poller.start()
    # Cold start: one small file per worker right after the daemon started; the pool's processes
    # start (spawn, imports, numba cache load) on its first job. Measured apart from the rest.
    for spec in cold:
        poller.expect(run.root / spec.rel, drop(staged / spec.rel, run.root / spec.rel, "replace"))
    poller.wait_all(run.settle + 120)
    cold_lat = [x for s in cold if (x := poller.latency(run.root / s.rel)) is not None]
    methods: dict[Path, str] = {}
    for i, spec in enumerate(specs):
        dest = run.root / spec.rel
        methods[dest] = args.write if args.write != "mixed" else ("replace", "direct")[i % 2]
        poller.expect(dest, drop(staged / spec.rel, dest, methods[dest]))
        if i + 1 < len(specs):
            time.sleep(rng.uniform(*args.gap))
    poller.wait_all(run.settle + 120)
    poller.halt.set()
    poller.join()
    time.sleep(run.settle + 1)  # late duplicate renders would show in the log by now
    closed = {run.root / s.rel: poller.closed[run.root / s.rel] for s in specs}
    seen = {p: poller.seen[p] for p in closed if p in poller.seen}
    counts, render_ms, failed = run.renders()
    status_done = status_json(run.db)["counts"]["done"]
    lat = {p: seen[p] - closed[p] for p in seen}
    values = list(lat.values())
    by_tri: dict[str, list[float]] = {"1k-10k": [], "10k-50k": [], "50k-200k": []}
    for spec in specs:
        p = run.root / spec.rel
        if p in lat:
            by_tri["1k-10k" if spec.level < 10_000 else "10k-50k" if spec.level < 50_000 else "50k-200k"].append(lat[p])
    renders = [render_ms[str(p)] / 1000 for p in lat if str(p) in render_ms]
    p50 = _pct(values, 50)
    return {
        "settle_s": run.settle,
        "cold_start_s": cold_lat,
        "files": len(specs),
        "gap_s": list(args.gap),
        "sidecars": len(seen),
        "lost": sorted(str(p) for p in closed if p not in seen),
        "p50_s": p50,
        "p95_s": _pct(values, 95),
        "max_s": max(values, default=float("nan")),
        "min_s": min(values, default=float("nan")),
        "p50_over_settle_s": p50 - run.settle,
        "settle_share_of_p50": run.settle / p50 if p50 else float("nan"),
        "render_p50_s": _pct(renders, 50),
        "render_max_s": max(renders, default=float("nan")),
        "p50_by_triangles_s": {k: _pct(v, 50) for k, v in by_tri.items()},
        "p50_by_write_s": {m: _pct([lat[p] for p in lat if methods[p] == m], 50) for m in set(methods.values())},
        "rendered_not_once": {str(p): counts[str(p)] for p in closed if counts[str(p)] != 1},
        "failures": failed,
        "status_done": status_done,
        "status_expected_done": len(cold) + len(specs),
        "target_ok": p50 <= run.settle + TARGET_OVERHEAD_S,
    }


# ------------------------------------------------------------------ 2. burst


def burst_phase(
    run: DaemonRun, sampler: RssSampler, staged: Path, specs: list[FileSpec], writers: int, before_done: int
) -> dict[str, Any]:
    dests = [run.root / s.rel for s in specs]
    folders = sorted({d.parent for d in dests})
    expected = {f: {sidecar_of(d).name: d for d in dests if d.parent == f} for f in folders}
    seen: dict[Path, float] = {}
    closed: list[float] = []
    t_start = [0.0]

    def write(k: int) -> None:  # each writer owns some folders: as fast as the disk takes it
        mine = [
            (staged / s.rel, d) for s, d in zip(specs, dests, strict=True) if folders.index(d.parent) % writers == k
        ]
        for src, dest in mine:
            dest.parent.mkdir(parents=True, exist_ok=True)  # half the folders appear now
            shutil.copyfile(src, dest)
        closed.append(time.monotonic())

    time.sleep(2.0)
    hwm_reset = reset_hwm(run.proc.pid)
    t_idle = time.monotonic()
    threads = [threading.Thread(target=write, args=(k,), name=f"writer-{k}") for k in range(writers)]
    cpu0, busy0 = cpu_seconds(run.proc.pid), machine_busy()
    t_start[0] = time.monotonic()
    for t in threads:
        t.start()
    # Poll by listing folders (cheap) rather than stat-ing 2,000 sidecars, every 50 ms.
    last_progress, last_count = time.monotonic(), 0
    while len(seen) < len(dests):
        now = time.monotonic()
        for f in folders:
            try:
                names = os.listdir(f)
            except FileNotFoundError:
                continue
            for name in names:
                d = expected[f].get(name)
                if d is not None and d not in seen:
                    seen[d] = now
        if len(seen) != last_count:
            last_progress, last_count = now, len(seen)
        elif now - last_progress > run.settle + 60 and len(closed) == writers:
            log(f"burst: no new sidecar for {now - last_progress:.0f} s; {len(dests) - len(seen)} missing")
            break
        time.sleep(0.05)
    t_end = max(seen.values(), default=time.monotonic())
    cpu1, busy1 = cpu_seconds(run.proc.pid), machine_busy()
    for t in threads:
        t.join()
    hwm = _status_kb(run.proc.pid, "VmHWM") / 1024
    time.sleep(run.settle + 2)  # late duplicates and the last database flush
    after = time.monotonic()
    counts, _, failed = run.renders()
    status = status_json(run.db)
    expected_done = before_done + len(dests)
    first_sidecar = min(seen.values(), default=t_end)
    mem = sampler.between(t_start[0], t_end)
    return {
        "files": len(dests),
        "folders": len(folders),
        "writers": writers,
        "write_s": max(closed) - t_start[0],
        "drain_s": t_end - t_start[0],
        "first_sidecar_after_s": first_sidecar - t_start[0],
        "renders_per_s_overall": len(seen) / (t_end - t_start[0]),
        "renders_per_s_render_phase": len(seen) / max(t_end - first_sidecar, 1e-9),
        "coordinator_cpu_s": cpu1 - cpu0,
        "machine_busy_share": (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1.0),
        "sidecars": len(seen),
        "sidecars_exist_at_end": sum(sidecar_of(d).exists() for d in dests),
        "missing": [str(d) for d in dests if d not in seen][:20],
        "rendered_exactly_once": sum(counts[str(d)] == 1 for d in dests),
        "rendered_not_once": {str(d): counts[str(d)] for d in dests if counts[str(d)] != 1},
        "failures": failed,
        "status_done": status["counts"]["done"],
        "status_expected_done": expected_done,
        "status_counts": status["counts"],
        "coordinator_idle_mb": sampler.between(t_idle - 1.5, t_idle)["coordinator_last_mb"],
        "coordinator_hwm_mb": hwm if hwm_reset else None,
        **mem,
        "coordinator_after_mb": sampler.between(after - 1, after)["coordinator_last_mb"],
        "worker_processes_seen": len(sampler.worker_pids),
    }


def status_json(db: Path) -> dict[str, Any]:
    """What ``sidecar-thumbs status --json`` says (the real CLI, like a user would ask)."""
    r = subprocess.run([sys.executable, "-m", "sidecar_thumbs", "status", "--json", "--db", str(db)],
                       capture_output=True, text=True, timeout=60, env=_clean_env(), check=False)  # fmt: skip
    if r.returncode not in (0, 1):
        raise SystemExit(f"status failed ({r.returncode}): {r.stderr}")
    return json.loads(r.stdout)  # type: ignore[no-any-return]


# ------------------------------------------------------------------ driver and report


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    lat_specs = latency_specs(args.latency_files, args.seed)
    rng = np.random.default_rng(args.seed + 2)
    cold = [_spec(f"cold start {k}.stl", "stl", 2_000, 9_000 + k, rng) for k in range(args.workers)]
    burst = burst_specs(args.burst, args.burst_folders, args.seed + 1) if args.burst else []
    staged = work / "staging"
    log(f"generating {len(lat_specs)} latency files and {len(burst)} burst files in {staged}")
    lib = generate_library(staged, [*cold, *lat_specs, *burst], processes=args.workers)
    log(f"generated {len(lib.files)} files, {sum(lib.sizes) / 1e6:.0f} MB, in {lib.seconds:.1f} s")
    os.sync()
    import sidecar_thumbs  # which code the daemon runs: PYTHONPATH may point at a snapshot of a commit

    code = os.path.dirname(sidecar_thumbs.__file__)
    results: dict[str, Any] = {"command": " ".join(sys.argv), "cpus": os.cpu_count(), "workers": args.workers,
                               "code": code, "latency": [], "burst": None}  # fmt: skip
    for n, settle in enumerate([args.settle, *args.compare_settle]):
        root, db = work / f"root{n}", work / f"state{n}.sqlite3"
        root.mkdir()
        if n == 0:  # half the burst's folders exist before the daemon starts, half appear in the burst
            for spec in burst[: args.burst_folders : 2]:
                (root / spec.rel).parent.mkdir(parents=True, exist_ok=True)
        log(f"daemon: settle {settle} s, {args.workers} workers")
        run = DaemonRun(root, db, args.workers, settle)
        sampler = RssSampler(run.proc.pid)
        sampler.start()
        try:
            if "latency" not in args.skip:
                log(f"latency: {len(lat_specs)} drops, gaps {args.gap[0]}-{args.gap[1]} s, write {args.write}")
                lat = latency_phase(run, staged, lat_specs, cold, args, args.seed + n)
                results["latency"].append(lat)
                log(f"latency (settle {settle}): p50 {lat['p50_s']:.2f} s, p95 {lat['p95_s']:.2f} s")
            if n == 0 and burst:
                before = 0 if "latency" in args.skip else len(cold) + len(lat_specs)
                log(f"burst: {len(burst)} files by {args.burst_writers} writers")
                results["burst"] = burst_phase(run, sampler, staged, burst, args.burst_writers, before)
        finally:
            code, secs = run.stop()
            sampler.halt.set()
            sampler.join()
        results.setdefault("stops", []).append({"settle_s": settle, "exit_code": code, "seconds": secs})
        if n == 0 and results["burst"]:
            results["burst"]["status_done_after_stop"] = status_json(db)["counts"]["done"]
        log(f"daemon stopped: exit {code} in {secs:.1f} s")
    return results


def table(r: dict[str, Any]) -> str:
    def row(name: str, value: str, target: str = "", ok: bool | None = None) -> str:
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        return f"| {name:<54} | {value:>34} | {target:>14} | {verdict:>4} |"

    lines = [f"workers {r['workers']} · cpus {r['cpus']} · code {r['code']} · {r['command']}",
             row("measure", "result", "target", None).replace("    |", "ok? |", 1),
             "|" + "-" * 56 + "|" + "-" * 36 + "|" + "-" * 16 + "|" + "-" * 6 + "|"]  # fmt: skip
    for lat in r["latency"]:
        s = lat["settle_s"]
        pre = f"latency, settle {s:g} s"
        lines += [
            row(f"{pre}: p50 / p95 / max", f"{lat['p50_s']:.2f} / {lat['p95_s']:.2f} / {lat['max_s']:.2f} s",
                f"p50 ≤ {s + TARGET_OVERHEAD_S:g} s", lat["target_ok"]),
            row(f"{pre}: cold start (first files after start)",
                " · ".join(f"{v:.2f}" for v in lat["cold_start_s"]) + " s"),
            row(f"{pre}: p50 beyond the window", f"{lat['p50_over_settle_s']:.3f} s "
                f"(window = {lat['settle_share_of_p50']:.0%} of p50)"),
            row(f"{pre}: render p50 / max (daemon log)", f"{lat['render_p50_s']:.3f} / {lat['render_max_s']:.3f} s"),
            row(f"{pre}: p50 by triangles", " · ".join(f"{v:.2f}" for v in lat["p50_by_triangles_s"].values())
                + " s"),
            row(f"{pre}: p50 by write", " · ".join(f"{k} {v:.2f}" for k, v in sorted(lat["p50_by_write_s"].items()))),
            row(f"{pre}: sidecars / lost / not once / failed",
                f"{lat['sidecars']}/{lat['files']} / {len(lat['lost'])} / {len(lat['rendered_not_once'])} / "
                f"{len(lat['failures'])}", "all / 0 / 0 / 0",
                lat["sidecars"] == lat["files"] and not lat["rendered_not_once"] and not lat["failures"]),
            row(f"{pre}: status --json done, last sidecar + {SETTLE_AFTER}",
                f"{lat['status_done']} (expected {lat['status_expected_done']})", "equal",
                lat["status_done"] == lat["status_expected_done"]),
        ]  # fmt: skip
    b = r["burst"]
    if b:
        hwm = "n/a" if b["coordinator_hwm_mb"] is None else f"{b['coordinator_hwm_mb']:.0f} MB"
        lines += [
            row(f"burst: {b['files']} files, {b['folders']} folders, {b['writers']} writers",
                f"written in {b['write_s']:.2f} s"),
            row("burst: first write → last sidecar (drain)", f"{b['drain_s']:.1f} s"),
            row("burst: first sidecar after", f"{b['first_sidecar_after_s']:.2f} s"),
            row("burst: renders/s overall / render phase",
                f"{b['renders_per_s_overall']:.1f} / {b['renders_per_s_render_phase']:.1f}"),
            row("burst: coordinator CPU / all CPUs busy", f"{b['coordinator_cpu_s']:.1f} s "
                f"({b['coordinator_cpu_s'] / b['drain_s']:.0%} of a core) / {b['machine_busy_share']:.0%}"),
            row("burst: rendered exactly once (log)", f"{b['rendered_exactly_once']}/{b['files']}", "all",
                b["rendered_exactly_once"] == b["files"]),
            row("burst: sidecars present", f"{b['sidecars_exist_at_end']}/{b['files']}", "all",
                b["sidecars_exist_at_end"] == b["files"]),
            row(f"burst: status --json done, last sidecar + {SETTLE_AFTER}", f"{b['status_done']} (expected "
                f"{b['status_expected_done']})", "equal", b["status_done"] == b["status_expected_done"]),
            row("burst: status --json done after SIGTERM", f"{b.get('status_done_after_stop')}", "equal",
                b.get("status_done_after_stop") == b["status_expected_done"]),
            row("burst: failures in log", str(len(b["failures"])), "0", not b["failures"]),
            row("coordinator RSS idle → peak (sampled) → after", f"{b['coordinator_idle_mb']:.0f} → "
                f"{b['coordinator_peak_mb']:.0f} → {b['coordinator_after_mb']:.0f} MB"),
            row("coordinator VmHWM during burst", hwm),
            row("workers: largest / all at once (sampled)",
                f"{b['worker_peak_mb']:.0f} / {b['workers_sum_peak_mb']:.0f} MB"),
            row("worker processes seen", str(b["worker_processes_seen"])),
        ]  # fmt: skip
    for s in r.get("stops", []):
        name = f"SIGTERM (settle {s['settle_s']:g}): exit code, time"
        lines.append(row(name, f"{s['exit_code']}, {s['seconds']:.2f} s", "0", s["exit_code"] == 0))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=default_workers(), help="render processes")
    ap.add_argument("--settle", type=float, default=3.0, help="the daemon's settle window (production: 3)")
    ap.add_argument("--compare-settle", type=float, nargs="*", default=[1.0],
                    help="latency again on a fresh daemon with these windows (none: skip)")  # fmt: skip
    ap.add_argument("--latency-files", type=int, default=60)
    ap.add_argument("--gap", type=float, nargs=2, default=(1.5, 4.0), metavar=("MIN", "MAX"),
                    help="seconds between drops (random in [MIN, MAX])")  # fmt: skip
    ap.add_argument("--overlap", action="store_true", help="drop every 0.1-0.6 s: files overlap in the pipeline")
    ap.add_argument("--write", choices=["replace", "direct", "mixed"], default="mixed",
                    help="temp name + os.replace, direct write, or alternate")  # fmt: skip
    ap.add_argument("--burst", type=int, default=2_000, help="files in the burst (0: skip)")
    ap.add_argument("--burst-folders", type=int, default=8)
    ap.add_argument("--burst-writers", type=int, default=4)
    ap.add_argument("--skip", action="append", default=[], choices=["latency"])
    ap.add_argument("--seed", type=int, default=4_005)
    ap.add_argument("--dir", type=Path, default=None, help="where to work (default: /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the folders, databases and daemon logs")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.overlap:
        args.gap = (0.1, 0.6)
    work = Path(tempfile.mkdtemp(prefix="sidecar-watch-bench-", dir=args.dir))
    try:
        results = measure(args, work)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
