"""The no-op rescan on a large library, without rendering it first (issue 17 item 3).

bench/scan.py measures the no-op rescan after a full render of the synthetic library (minutes on 2 cores).
This builds the state such a render leaves — ``--count`` small model files, 20 a folder, each with a
sidecar-named file beside it, every row done in a fresh database — in seconds, then times ``reconcile``
in this process (median of ``--repeat``) and the whole CLI command ``sidecar-thumbs scan`` (each run a new
interpreter, started from bytecode as an installed command is). The planner only lists sidecar names on a
no-op rescan, so their content does not matter.

Run: ``python bench/noop_rescan.py [--count 34074] [--dir /tmp/noop-lib] [--repeat 5]`` (the library is
kept in ``--dir`` and reused by later runs).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sidecar_thumbs.files.sidecar import sidecar_name_for
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import FileState, RenderDone, ThumbSource
from sidecar_thumbs.work.reconcile import reconcile


def build(lib: Path, db_path: Path, count: int) -> None:
    states, done = [], []
    for i in range(count):
        d = lib / f"d{i // 20:04d}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"m{i:05d}.stl"
        p.write_bytes(b"x" * (100 + i % 50))
        (d / sidecar_name_for(p.name)).write_bytes(b"png")
        st = p.stat()
        h = f"{i:032x}"
        states.append(FileState(str(p), st.st_size, st.st_mtime_ns, h, True))
        done.append(RenderDone(str(p), h, st.st_size, st.st_mtime_ns, ThumbSource.RENDERED, 12, 1.0))
    db = StateDB(db_path)
    try:
        db.upsert_files(states)
        db.record_done(done)
    finally:
        db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=34_074)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/noop-lib"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    lib, db_path = args.dir / "lib", args.dir / "state.sqlite3"
    if not db_path.exists():
        t0 = time.perf_counter()
        build(lib, db_path, args.count)
        print(f"built {args.count} models in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    db = StateDB(db_path)
    try:
        reconcile([str(lib)], db)  # warm the page cache
        times, cpu = [], []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            plan, _, found, _ = reconcile([str(lib)], db)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        assert plan.unchanged == found and not plan.states and not plan.missing
    finally:
        db.close()
    # As installed: pip compiles every module at install, so a command starts from bytecode. A development
    # shell that sets PYTHONDONTWRITEBYTECODE (this machine's does) would otherwise compile ~100 of our
    # modules from source on every run, ~0.1 s that no installed command pays. One untimed run writes them.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["DAM_DATABASE_PATH"] = str(db_path)
    command = [sys.executable, "-m", "sidecar_thumbs", "scan", str(lib)]
    subprocess.run(command, env=env, check=True, capture_output=True)
    cli, cli_cpu = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, env=env, check=True, capture_output=True)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli.append(time.perf_counter() - t0)
        cli_cpu.append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
    print(f"models: {found}")
    # CPU time too: on a shared machine the wall time mostly measures the other users.
    print(
        f"reconcile in process: median {statistics.median(times):.3f} s, min {min(times):.3f} s"
        f" (CPU median {statistics.median(cpu):.3f} s)"
    )
    print(
        f"CLI scan (whole command): median {statistics.median(cli):.3f} s, min {min(cli):.3f} s"
        f" (CPU median {statistics.median(cli_cpu):.3f} s)"
    )


if __name__ == "__main__":
    main()
