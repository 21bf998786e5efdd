"""Crash consistency: SIGKILL a real daemon at seeded random moments, restart it, and check that
nothing is lost or half-written once a final run completes (issue #6, item 1)."""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from reliability_util import Daemon, binary_stl, check_library, group_alive, integrity_ok, temp_files

pytestmark = pytest.mark.integration  # reliability suite: real processes, faults, many files

SEED = 20240601
BAD = [
    "bad/openscad__empty.stl",
    "bad/trimesh__stl_empty_bin.stl",
    "bad/3mfsamples__MUSTFAIL_Chapter3.4b_MissingBuildElement.3mf",
]


def _library(root: Path, corpus: Path, n: int, rng: random.Random) -> tuple[list[Path], list[Path]]:
    good: list[Path] = []
    for i in range(n):
        folder = root / f"shelf{i % 12:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        p = folder / f"part {i:04d}.stl"
        p.write_bytes(binary_stl(rng.randint(50, 3000), seed=i))
        good.append(p)
    bad: list[Path] = []
    for rel in BAD:
        src = corpus / rel
        if src.is_file():
            bad.append(root / "bad" / src.name)
            bad[-1].parent.mkdir(exist_ok=True)
            shutil.copyfile(src, bad[-1])
    truncated = root / "bad" / "truncated.stl"
    truncated.parent.mkdir(exist_ok=True)
    truncated.write_bytes(binary_stl(500, seed=1)[:3000])
    bad.append(truncated)
    return good, bad


def _kill_loop(tmp_path: Path, corpus: Path, models: int, kills: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    root, db = tmp_path / "lib", tmp_path / "state" / "db.sqlite3"
    db.parent.mkdir()
    good, bad = _library(root, corpus, models, rng)
    stats: dict[str, object] = {"kills": 0, "group_kills": 0, "finished_early": 0, "orphans_lingered": 0}
    log = tmp_path / "daemon.log"
    i = 0
    while stats["kills"] < kills and i < 3 * kills:  # type: ignore[operator]
        i += 1
        if i > 1:
            # Replace some models between runs: there is always work to interrupt, and their old
            # sidecars become stale and must be redone.
            for p in rng.sample(good, 12):
                p.write_bytes(binary_stl(rng.randint(50, 3000), seed=rng.randrange(1 << 30)))
        once = rng.random() < 0.7  # mostly burst mode; sometimes the full daemon with its observer
        extra = ("--once",) if once else ("--settle", "0.2")
        d = Daemon(root, db, *extra, log=log)
        delay = rng.uniform(0.3, 4.0)
        try:
            d.proc.wait(delay)
            stats["finished_early"] += 1  # type: ignore[operator]
            d.wait()
            continue
        except subprocess.TimeoutExpired:
            pass
        group = rng.random() < 0.5
        d.kill(group=group)
        stats["kills"] += 1  # type: ignore[operator]
        stats["group_kills"] += int(group)  # type: ignore[operator]
        if not group:
            # Workers orphaned by the coordinator's death must go away on their own (pipe EOF). A worker
            # killed while still warming up (loading the compiled kernels, seconds on a loaded machine)
            # reads its pipe only when that is done: 30 s, not 10 (one lingered 10 s at load 6).
            deadline = time.monotonic() + 30
            while group_alive(d.proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if group_alive(d.proc.pid):
                stats["orphans_lingered"] += 1  # type: ignore[operator]
            d.reap_group()
        assert integrity_ok(db) == "ok"
    stats["temps_before_final"] = len(temp_files(root))
    final = Daemon(root, db, "--once", log=log)
    # Burst mode exits 3 while models under its roots fail (the bad ones, which must fail), like scan.
    assert final.wait(300) == (3 if bad else 0), log.read_text()[-3000:]
    counts = check_library(root, db, [*good, *bad])
    assert counts["fresh"] >= len(good), "a good model lost its thumbnail"
    assert counts["failed"] == len(bad)
    stats.update(counts)
    return stats


def test_sigkill_20_times_then_restart_loses_nothing(tmp_path: Path, corpus: Path) -> None:
    stats = _kill_loop(tmp_path, corpus, models=300, kills=20, seed=SEED)
    print("crash loop:", stats)
    assert stats["kills"] >= 20
    assert stats["orphans_lingered"] == 0, stats


@pytest.mark.soak
def test_sigkill_soak(tmp_path: Path, corpus: Path) -> None:
    stats = _kill_loop(tmp_path, corpus, models=600, kills=120, seed=SEED + 1)
    print("crash soak:", stats)
    assert stats["orphans_lingered"] == 0, stats
