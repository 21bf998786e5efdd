"""The per-file floor: the CLI ``render`` of many copies against the research prototype, one core, one run.

Usage: ``PYTHONPATH=. python bench/floor.py [--copies 200] [--big 100000] [--small 80] [--rounds 1]``

For each model (a ~100k-triangle and a ~80-triangle closed binary STL) it writes ``copies`` copies
to a temporary folder, then times, pinned to one core (``taskset -c 0`` where available):

* ours: ``python -m sidecar_thumbs render <copies> -o <outdir> -q`` in one process, timed around the
  whole command (start-up, numba cache load, read, parse, render, encode, write);
* the prototype (``shared/design/research/proto``, read-only): one process that imports its
  ``thumbcore`` and ``r_numba``, then loads, renders (256 px, 2x2 supersampling, back faces culled) and
  writes a PNG at zlib level 1 for every copy.

Both run once untimed first so numba's caches (a temporary ``NUMBA_CACHE_DIR``) are warm. It prints
renders/s by wall clock and by the child's CPU time (steadier on a shared machine), the ratio
ours/prototype, the CPU of the same command with one copy (start-up and one file) and of each further
copy (the difference over ``copies - 1``), and the load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import meshgen as mg

REPO = Path(__file__).resolve().parent.parent
PROTO = REPO.parent / "shared" / "design" / "research" / "proto"

_PROTO_SCRIPT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from thumbcore import load_stl, to_png_bytes
from r_numba import render
out = sys.argv[2]
for i, src in enumerate(sys.argv[3:]):
    img = render(load_stl(src), 256, 256, ss=2)
    with open(f"{out}/{i}.png", "wb") as f:
        f.write(to_png_bytes(img, compress_level=1))
"""


def _pin() -> list[str]:
    return ["taskset", "-c", "0"] if shutil.which("taskset") else []


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, child CPU s) of one command; raises if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _commands(files: list[str], out: Path) -> dict[str, list[str]]:
    ours_out, proto_out = out / "ours", out / "proto"
    ours_out.mkdir(parents=True, exist_ok=True)
    proto_out.mkdir(parents=True, exist_ok=True)
    py = [*_pin(), sys.executable]
    return {
        "ours": [*py, "-m", "sidecar_thumbs", "render", *files, "-o", str(ours_out), "-q"],
        "proto": [*py, "-c", _PROTO_SCRIPT, str(PROTO), str(proto_out), *files],
    }


def _write_copies(folder: Path, name: str, data: bytes, copies: int) -> list[str]:
    folder.mkdir()
    paths = []
    for i in range(copies):
        p = folder / f"{name}-{i:04d}.stl"
        p.write_bytes(data)
        paths.append(str(p))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=200)
    ap.add_argument("--big", type=int, default=100_000, help="triangles of the large model")
    ap.add_argument("--small", type=int, default=80, help="triangles of the small model")
    ap.add_argument("--rounds", type=int, default=1, help="timed runs per command (best is kept)")
    ap.add_argument("--only", choices=("big", "small"), help="measure one model only")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "NUMBA_CACHE_DIR": str(root / "numba-cache"), "PYTHONPATH": str(REPO)}
        env.pop("SIDECAR_THUMBS_RENDERER", None)
        models = {"big": mg.rock(args.big), "small": mg.rock(args.small)}
        print(f"cores={os.cpu_count()} pinned={'cpu 0' if _pin() else 'no'} copies={args.copies}")
        print(f"{'model':<7}{'tris':>8} {'who':<6}{'wall s':>8}{'cpu s':>8}{'r/s wall':>10}{'r/s cpu':>9}")
        for key, tri in models.items():
            if args.only and key != args.only:
                continue
            files = _write_copies(root / key, key, mg.binary_stl_bytes(tri), args.copies)
            cmds = _commands(files, root / f"out-{key}")
            warm = _commands(files[:2], root / f"warm-{key}")
            one = _commands(files[:1], root / f"one-{key}")
            rate: dict[str, tuple[float, float]] = {}
            split: dict[str, tuple[float, float]] = {}
            for who, cmd in cmds.items():
                _timed(warm[who], env)  # compiles or loads numba's cache, outside the timing
                runs, ones = [], []
                for _ in range(args.rounds):  # alternated, so that a slow spell of the machine hits both
                    runs.append(_timed(cmd, env))
                    ones.append(_timed(one[who], env))
                wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
                rate[who] = (args.copies / wall, args.copies / cpu)
                # CPU of the command with one copy (start-up and one file), and of each further copy.
                start = min(r[1] for r in ones)
                split[who] = (start, (cpu - start) / max(args.copies - 1, 1))
                print(f"{key:<7}{len(tri):>8} {who:<6}{wall:>8.2f}{cpu:>8.2f}{rate[who][0]:>10.1f}{rate[who][1]:>9.1f}")
            print(
                f"{key:<7} ratio ours/proto: {rate['ours'][0] / rate['proto'][0]:.2f}x wall, "
                f"{rate['ours'][1] / rate['proto'][1]:.2f}x cpu"
            )
            print(
                f"{key:<7} cpu of one copy (start-up): ours {split['ours'][0]:.2f} s, proto {split['proto'][0]:.2f} s; "
                f"each further copy: ours {split['ours'][1] * 1e3:.2f} ms, proto {split['proto'][1] * 1e3:.2f} ms"
            )
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
