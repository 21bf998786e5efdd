"""The coordinator's own ceiling: files/s when renders cost nothing (issue 17 item 4).

Everything the coordinator does per finished file — the freshness stat, the sidecar write on the writer
threads (temp file, fsync, rename; folders fsynced once a commit batch), the batched SQLite commits and
the bookkeeping per result — with the renders replaced by precomputed PNG bytes: one real thumbnail is
rendered once, then an executor hands it back for every job at once. No number of cores or cluster
machines can finish files faster than this.

The library is ``--count`` hard links of one corpus model, 20 a folder (so every sidecar is a real
write in a real folder). Each case is a ``scan --force`` on a fresh database, best of ``--repeat``
(the machine may be shared): new sidecars with the ordered fsync (the default) and without, and
replacing sidecars of ours (what ``--force`` does); the coordinator's CPU time a file is reported too.

Run: ``python bench/coordinator.py [--count 3000] [--repeat 3] [--dir /tmp]``. Table to stdout.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.work.jobs import RenderJob, RenderResult, render_job
from sidecar_thumbs.work.scan import scan

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("SIDECAR_THUMBS_CORPUS", REPO.parent / "shared" / "corpus"))
MODEL = "stl-binary/prusaslicer__pyramid.stl"
OPTIONS = ThumbnailOptions()


class Replay:
    """An executor with infinitely fast workers: every job gets the precomputed result, at once."""

    workers = 64  # the pipeline keeps 128 jobs submitted: results are always waiting

    def __init__(self, result: RenderResult) -> None:
        self.result = result

    def submit(self, job: RenderJob) -> cf.Future[RenderResult]:
        fut: cf.Future[RenderResult] = cf.Future()
        fut.set_result(replace(self.result, path=job.path))
        return fut

    def shutdown(self, *, cancel: bool = False) -> None:
        pass


def build(lib: Path, count: int) -> Path:
    src = lib / "source" / Path(MODEL).name
    src.parent.mkdir(parents=True)
    shutil.copy2(CORPUS / MODEL, src)
    for i in range(count):
        link = lib / "models" / f"d{i // 20:04d}" / f"m{i:05d}.stl"
        link.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, link)
    return lib / "models"


def remove_sidecars(models: Path) -> None:
    for folder in models.iterdir():
        for p in folder.glob(".*.thumbnail.png"):
            p.unlink()


def one_run(models: Path, db_path: Path, result: RenderResult, durable: bool) -> tuple[int, float, float]:
    """(files finished, seconds, CPU seconds) of the rendering part of one forced scan."""
    if db_path.exists():
        db_path.unlink()
    cpu_at_plan: list[float] = []
    with StateDB(db_path) as db:
        s = scan(
            [str(models)], db=db, options=OPTIONS, make_executor=lambda: Replay(result), force=True,
            durable=durable, on_plan=lambda plan, todo: cpu_at_plan.append(time.process_time()),
        )  # fmt: skip
        cpu = time.process_time() - cpu_at_plan[0]  # the pipeline only: the walk and plan are a rescan's
    return s.rendered + s.embedded + s.failed, s.render_elapsed, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-coordinator-", dir=args.dir))
    try:
        models = build(tmp, args.count)
        src = tmp / "source" / Path(MODEL).name
        result = render_job(RenderJob(str(src), OPTIONS))
        assert result.ok and result.png is not None, result.error
        print(f"{args.count} files, PNG {len(result.png)} bytes, {os.cpu_count()} cores", file=sys.stderr)
        cases = {
            "new sidecars, fsync on (the default: data ordered before the rename)": (True, True),
            "new sidecars, fsync off (`durable=False`)": (False, True),
            "replacing our sidecars (`--force`), fsync on": (True, False),
        }
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.repeat):
            for name, (durable, fresh) in cases.items():  # interleaved: the machine may be shared
                if fresh:
                    remove_sidecars(models)
                done, secs, cpu = one_run(models, tmp / "state.sqlite3", result, durable)
                assert done == args.count, done
                rate, per_file = done / secs, cpu / done * 1e3
                print(f"{name}: {rate:.0f} files/s, CPU {per_file:.2f} ms a file", file=sys.stderr)
                if rate > best.get(name, (0.0, 0.0))[0]:
                    best[name] = (rate, per_file)
        print(f"| coordinator alone ({args.count} files, renders free, best of {args.repeat}) | files/s | CPU a file |")
        print("|---|---|---|")
        for name, (rate, per_file) in best.items():
            print(f"| {name} | {rate:.0f} | {per_file:.2f} ms |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
