"""Time the state database at library scale: 34k-row upsert, rows_under, claim/record batches.

Run: ``python bench/bench_state.py [rows]``. Prints seconds per operation (best of 3 where repeatable).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import FileState, RenderDone


def main(rows: int = 34_000) -> None:
    with tempfile.TemporaryDirectory() as tmp, StateDB(Path(tmp) / "bench.db") as db:
        files = [
            FileState(
                f"/library/vendor{i % 40:02d}/set{i % 700:03d}/model {i:05d}.stl",
                1000 + i,
                i,
                f"{i:032x}",
                True,
            )
            for i in range(rows)
        ]
        t = time.perf_counter()
        db.upsert_files(files, now=1.0)
        print(f"upsert_files {rows} new rows (one transaction): {time.perf_counter() - t:.3f} s")
        t = time.perf_counter()
        db.upsert_files(files, now=2.0)
        print(f"upsert_files {rows} existing rows:             {time.perf_counter() - t:.3f} s")

        best = min(_timed(lambda: db.rows_under(["/library"])) for _ in range(3))
        print(f"rows_under(['/library']) -> {len(db.rows_under(['/library']))} rows: {best:.3f} s")
        best = min(_timed(lambda: db.rows_under()) for _ in range(3))
        print(f"rows_under() all rows: {best:.3f} s")
        best = min(_timed(lambda: db.rows_under(["/library/vendor07"])) for _ in range(3))
        print(f"rows_under(one vendor, {len(db.rows_under(['/library/vendor07']))} rows): {best:.4f} s")

        claim_t, done_t, n = 0.0, 0.0, 0
        while True:
            t = time.perf_counter()
            batch = db.claim(200, now=3.0)
            claim_t += time.perf_counter() - t
            if not batch:
                break
            results = [
                RenderDone(r.path, r.hash or "", r.size or 0, r.mtime_ns or 0, "rendered", 10, 5.0) for r in batch
            ]
            t = time.perf_counter()
            db.record_done(results, now=4.0)
            done_t += time.perf_counter() - t
            n += 1
        print(f"claim(200) x {n}: {claim_t / n * 1000:.2f} ms each; record_done(200): {done_t / n * 1000:.2f} ms each")
        best = min(_timed(lambda: (db.counts(), db.backlog(now=5.0), db.rate(now=5.0))) for _ in range(3))
        print(f"counts+backlog+rate: {best * 1000:.2f} ms")
        t = time.perf_counter()
        db.checkpoint()
        print(f"checkpoint: {time.perf_counter() - t:.3f} s")


def _timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 34_000)
