"""Load: thousands of files appear at once while the daemon runs — all rendered, coordinator memory
bounded (issue #6, item 9). CI runs 1,000 files; the 5,000-file variant is a soak test."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from reliability_util import Daemon, binary_stl, check_library, wait_for

from sidecar_thumbs.files.sidecar import sidecar_path_for

pytestmark = pytest.mark.integration  # reliability suite: real processes, faults, many files

# Coordinator peak RSS allowed (MiB): Python + numpy + SQLite + watchdog + the claim buffers.
RSS_BOUND_MIB = 250


def _rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident size of one process in MiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _flood(tmp_path: Path, n: int) -> dict[str, float]:
    root, db = tmp_path / "lib", tmp_path / "state" / "db.sqlite3"
    root.mkdir()
    db.parent.mkdir()
    d = Daemon(root, db, "--settle", "0.5")
    try:
        wait_for(lambda: "watching" in d.log(), what="daemon start")
        idle_rss, _ = _rss_mib(d.proc.pid)
        staging = tmp_path / "staging"
        staging.mkdir()
        models = []
        for i in range(n):
            folder = staging / f"batch{i // 250:02d}"
            folder.mkdir(exist_ok=True)
            p = folder / f"m{i:05d}.stl"
            p.write_bytes(binary_stl(40 + i % 200, seed=i))
            models.append(root / "drop" / folder.name / p.name)
        t0 = time.monotonic()
        staging.rename(root / "drop")  # every file appears at once, as a copied folder would
        peak = 0.0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if d.proc.poll() is not None:
                raise AssertionError(d.log()[-3000:])
            peak = max(peak, _rss_mib(d.proc.pid)[1])
            if all(sidecar_path_for(m).exists() for m in models[-50:]) and sum(
                sidecar_path_for(m).exists() for m in models
            ) == len(models):
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        wait_for(lambda: "done ✓" in d.log(), what="progress logged")
        _, hwm = _rss_mib(d.proc.pid)
    finally:
        d.proc.terminate()
        d.wait(60)
        d.reap_group()
    check_library(root, db, models)
    figures = {
        "files": n,
        "seconds": round(elapsed, 1),
        "idle_rss_mib": round(idle_rss, 1),
        "peak_rss_mib": round(max(peak, hwm), 1),
    }
    print("load:", figures)
    assert figures["peak_rss_mib"] < RSS_BOUND_MIB, figures
    return figures


def test_1000_files_at_once(tmp_path: Path) -> None:
    _flood(tmp_path, 1000)


@pytest.mark.soak
def test_5000_files_at_once(tmp_path: Path) -> None:
    _flood(tmp_path, 5000)
