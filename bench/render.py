"""Renders per second per core: load + render + PNG, warm, in one process pinned to one CPU.

Measures generated binary STL at 10k / 100k / 1M triangles, 3MF, OBJ and PLY at 100k, every file of the
shared corpus (stl-binary, stl-ascii, 3mf, obj, ply, amf), peak RSS at 1M (fresh process) and worker
cold start (fresh process that imports and warms up with a populated numba cache).

Usage::

    python bench/render.py [--kernel numba|numpy] [--size 256] [--reps 7] [--png-levels] [--clock cpu]

``--clock cpu`` times with the process's CPU time instead of wall time: on a shared, busy machine that
is the closer estimate of what one dedicated core would do (the header prints the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import meshgen  # noqa: E402
from sidecar_thumbs.errors import ModelError  # noqa: E402
from sidecar_thumbs.render import RenderOptions, render_triangles, resolve_kernel, warm_up  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"
PNG_LEVEL_FALLBACK = 1
METADATA = {"Software": "sidecar-thumbs bench", "Thumb::Hash": "0" * 32, "Thumb::Source": "rendered"}


def _loader() -> Callable[[bytes, str], np.ndarray]:
    """The project's loader when it is there; a binary-STL-only stand-in before it lands."""
    try:
        from sidecar_thumbs.mesh.load import load_mesh_bytes

        return lambda data, name: load_mesh_bytes(data, name).triangles
    except ImportError:

        def binary_stl(data: bytes, name: str) -> np.ndarray:
            n = int(np.frombuffer(data, "<u4", 1, 80)[0])
            rec = np.frombuffer(data, np.uint8, 50 * n, 84).reshape(n, 50)[:, 12:48]
            return np.ascontiguousarray(rec).view("<f4").reshape(n, 3, 3)

        return binary_stl


def _encoder() -> Callable[[np.ndarray], bytes]:
    try:
        from sidecar_thumbs.files.sidecar import encode_png

        return lambda rgba: encode_png(rgba, METADATA)
    except ImportError:
        import io

        from PIL import Image

        def pillow(rgba: np.ndarray) -> bytes:
            buf = io.BytesIO()
            Image.fromarray(rgba).save(buf, "PNG", compress_level=PNG_LEVEL_FALLBACK)
            return buf.getvalue()

        return pillow


LOAD = _loader()
ENCODE = _encoder()
CLOCK = time.perf_counter


def one_file(path: Path, opts: RenderOptions) -> tuple[float, float, float]:
    """(load, render, png) seconds for one file, reading it from disk (page cache) like a worker."""
    t0 = CLOCK()
    tri = LOAD(path.read_bytes(), path.name)
    t1 = CLOCK()
    rgba = render_triangles(tri, opts)
    t2 = CLOCK()
    ENCODE(rgba)
    t3 = CLOCK()
    return t1 - t0, t2 - t1, t3 - t2


def generated(tmp: Path) -> list[tuple[str, Path]]:
    cases = []
    for label, n in [("10k", 10_000), ("100k", 100_000), ("1M", 1_000_000)]:
        p = tmp / f"knot_{label}.stl"
        meshgen.write_binary_stl(p, meshgen.torus_knot_indexed(n))
        cases.append((f"binary STL knot {label}", p))
        p = tmp / f"rock_{label}.stl"
        meshgen.write_binary_stl(p, meshgen.rock_indexed(n))
        cases.append((f"binary STL rock {label}", p))
    p = tmp / "rock_100k.3mf"
    meshgen.write_3mf(p, meshgen.rock_indexed(100_000))
    cases.append(("3MF rock 100k", p))
    p = tmp / "knot_100k.3mf"
    meshgen.write_3mf(p, meshgen.torus_knot_indexed(100_000))
    cases.append(("3MF knot 100k", p))
    knot = meshgen.torus_knot_indexed(100_000)
    for label, name, data in [
        ("OBJ knot 100k (f v/vt/vn)", "knot_100k.obj", meshgen.obj_bytes(knot, "v/vt/vn")),
        ("PLY knot 100k (binary)", "knot_100k.ply", meshgen.ply_bytes(knot)),
    ]:
        (tmp / name).write_bytes(data)
        cases.append((label, tmp / name))
    return cases


def bench_generated(cases: list[tuple[str, Path]], opts: RenderOptions, reps: int) -> None:
    print(f"\n## Generated models ({opts.size} px, kernel {resolve_kernel(opts.kernel)}, median of {reps})\n")
    print("| model | triangles | renders/s | total ms | load ms | render ms | png ms |")
    print("|---|---|---|---|---|---|---|")
    for label, path in cases:
        try:
            one_file(path, opts)  # warm: page cache, lazy imports
        except (ImportError, ModelError) as exc:
            print(f"| {label} | – | skipped: {exc} | | | | |")
            continue
        times = [one_file(path, opts) for _ in range(reps)]
        load, render, png = (statistics.median(t[i] for t in times) for i in range(3))
        total = statistics.median(sum(t) for t in times)
        n = len(LOAD(path.read_bytes(), path.name))
        print(
            f"| {label} | {n:,} | **{1 / total:.0f}** | {total * 1e3:.1f} | {load * 1e3:.1f} | "
            f"{render * 1e3:.1f} | {png * 1e3:.1f} |"
        )


def bench_corpus(opts: RenderOptions, reps: int) -> None:
    print(f"\n## Corpus ({CORPUS}), per file: median of {reps} warm runs\n")
    print("| folder | files | ok | failed | median ms/file | max ms (file) | files/s (sum of medians) |")
    print("|---|---|---|---|---|---|---|")
    for sub in ("stl-binary", "stl-ascii", "3mf", "obj", "ply", "amf"):
        files = sorted(p for p in (CORPUS / sub).iterdir() if p.is_file() and p.suffix.lower() != ".mtl")
        meds: list[tuple[float, str]] = []
        failed: list[str] = []
        for p in files:
            try:
                one_file(p, opts)
                meds.append((statistics.median(sum(one_file(p, opts)) for _ in range(reps)), p.name))
            except ModelError as exc:
                failed.append(f"{p.name}: {exc.message}")
            except ImportError:
                failed.append(f"{p.name}: loader not available")
        if not meds:
            print(f"| {sub} | {len(files)} | 0 | {len(failed)} | – | – | – |")
            continue
        ms = [m for m, _ in meds]
        worst = max(meds)
        print(
            f"| {sub} | {len(files)} | {len(meds)} | {len(failed)} | {statistics.median(ms) * 1e3:.1f} | "
            f"{worst[0] * 1e3:.0f} ({worst[1]}) | **{len(ms) / sum(ms):.0f}** |"
        )
        for f in failed:
            print(f"|   failed: {f} | | | | | | |")


# `--formats N`: one row per file format (STL, 3MF, OBJ, PLY, AMF, STEP, G-code, bgcode, zip, 7z) over N
# corpus files each, through the worker's own call: files/s/core and ms per stage (read, parse, render,
# encode). A small run for a busy machine: `python bench/render.py --formats 3 --clock cpu`.
FORMAT_FOLDERS = ("stl-binary", "stl-ascii", "3mf", "obj", "ply", "amf", "step", "gcode", "bgcode", "zip")


def _stages(path: Path, options: object) -> tuple[float, float, float, float]:
    """(read, parse, render, encode) seconds through the worker's own call (make_thumbnail_from_bytes).

    read: the file's bytes and their hash (what a worker does first); encode: the same picture
    encoded again on its own; parse and render: the rest, split as make_thumbnail_from_bytes times them.
    """
    import io

    from PIL import Image

    from sidecar_thumbs.files.fingerprint import hash_bytes
    from sidecar_thumbs.render.thumbnail import make_thumbnail_from_bytes

    t0 = CLOCK()
    data = path.read_bytes()
    digest = hash_bytes(data)
    t1 = CLOCK()
    thumb = make_thumbnail_from_bytes(data, path.name, len(data), 0, options, digest)  # type: ignore[arg-type]
    t2 = CLOCK()
    with Image.open(io.BytesIO(thumb.png)) as im:
        rgba = np.asarray(im.convert("RGBA"))
    t3 = CLOCK()
    ENCODE(rgba)
    encode = CLOCK() - t3
    inside = thumb.load_ms + thumb.render_ms
    parse = (t2 - t1) * (thumb.load_ms / inside if inside > 0 else 1.0)
    return t1 - t0, parse, max(0.0, (t2 - t1) - parse - encode), encode


def bench_formats(opts: RenderOptions, per_format: int, reps: int) -> None:
    """One row per file format: a few corpus files each (outside bad/), every stage timed."""
    from sidecar_thumbs.files.formats import format_for_name
    from sidecar_thumbs.render.thumbnail import ThumbnailOptions

    options = ThumbnailOptions(render=opts)
    by_format: dict[str, list[Path]] = {}
    for sub in FORMAT_FOLDERS:
        folder = CORPUS / sub
        if folder.is_dir():
            for p in sorted(folder.iterdir()):
                fmt = format_for_name(p.name)
                if p.is_file() and fmt is not None:
                    by_format.setdefault(fmt.name, []).append(p)
    print(f"\n## Per format: up to {per_format} corpus files each (smallest to largest), median of {reps} warm runs\n")
    print("| format | files | ok | failed | files/s/core | read ms | parse ms | render ms | encode ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for fmt, files in by_format.items():
        by_size = sorted(files, key=lambda p: p.stat().st_size)
        # Spread over the sizes: smallest, largest and evenly between (deduplicated for small folders).
        n = min(per_format, len(by_size))
        picks = list(dict.fromkeys(by_size[round(i * (len(by_size) - 1) / max(n - 1, 1))] for i in range(n)))
        rows: list[tuple[float, float, float, float]] = []
        failed: list[str] = []
        for p in picks:
            try:
                _stages(p, options)  # warm: imports, page cache, JIT
                runs = [_stages(p, options) for _ in range(reps)]
                rows.append(tuple(statistics.median(r[i] for r in runs) for i in range(4)))  # type: ignore[arg-type]
            except ModelError as exc:
                failed.append(f"{p.name}: {exc.message}")
        if not rows:
            print(f"| {fmt} | {len(picks)} | 0 | {len(failed)} | – | – | – | – | – |")
        else:
            total = sum(sum(r) for r in rows)
            read, parse, render, encode = (statistics.mean(r[i] for r in rows) * 1e3 for i in range(4))
            print(
                f"| {fmt} | {len(picks)} | {len(rows)} | {len(failed)} | **{len(rows) / total:.1f}** | "
                f"{read:.2f} | {parse:.1f} | {render:.1f} | {encode:.1f} |"
            )
        for f in failed:
            print(f"|   failed: {f} | | | | | | | | |")


def _child_rss(path: str, kernel: str, size: int) -> None:
    warm_up(RenderOptions(kernel=kernel))
    opts = RenderOptions(size=size, kernel=kernel)
    one_file(Path(path), opts)
    import resource

    # Linux carries ru_maxrss over exec() from the parent (fs/exec.c keeps the old mm's high-water mark),
    # so a big parent inflates it; VmHWM is this process's own peak.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    status = Path("/proc/self/status")
    if status.is_file():
        hwm = [line for line in status.read_text().splitlines() if line.startswith("VmHWM:")]
        rss = int(hwm[0].split()[1]) / 1024 if hwm else rss
    print(json.dumps({"maxrss_mb": rss}))


def bench_rss(path: Path, opts: RenderOptions) -> None:
    cmd = [
        sys.executable,
        __file__,
        "--child-rss",
        str(path),
        "--kernel",
        opts.kernel,
        "--size",
        str(opts.size),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rss = json.loads(out.strip().splitlines()[-1])["maxrss_mb"]
    print(f"\nPeak RSS, fresh process, warm_up + load+render+PNG of {path.name}: **{rss:.0f} MB**")


def bench_cold_start(opts: RenderOptions, reps: int = 3) -> None:
    code = (
        "import time; t = time.perf_counter()\n"
        "from sidecar_thumbs.render import RenderOptions, warm_up\n"
        f"warm_up(RenderOptions(kernel={opts.kernel!r}))\n"
        "print(time.perf_counter() - t)\n"
    )
    walls, inner = [], []
    for _ in range(reps + 1):  # the first run may populate the numba cache; not counted
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
        walls.append(time.perf_counter() - t)
        inner.append(float(out.stdout.strip()))
    print(
        f"\nWorker cold start (fresh `python -c`, import + warm_up, cached JIT; median of {reps}): "
        f"**{statistics.median(walls[1:]):.2f} s** wall incl. interpreter start, "
        f"{statistics.median(inner[1:]):.2f} s import + warm_up (first run: {walls[0]:.2f} s)"
    )


def bench_png_levels(cases: list[tuple[str, Path]], opts: RenderOptions) -> None:
    import io

    from PIL import Image

    print("\n## PNG zlib level (Pillow), on the generated renders\n")
    print("| level | ms/PNG (median) | mean bytes |")
    print("|---|---|---|")
    images = [render_triangles(LOAD(p.read_bytes(), p.name), opts) for _, p in cases if p.suffix == ".stl"]
    for level in (0, 1, 3, 6, 9):
        ts, sizes = [], []
        for img in images:
            for _ in range(5):
                buf = io.BytesIO()
                t = CLOCK()
                Image.fromarray(img).save(buf, "PNG", compress_level=level)
                ts.append(CLOCK() - t)
            sizes.append(len(buf.getvalue()))
        print(f"| {level} | {statistics.median(ts) * 1e3:.2f} | {statistics.mean(sizes):,.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", default="auto", choices=["auto", "numba", "numpy"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--no-corpus", action="store_true")
    ap.add_argument("--png-levels", action="store_true", help="also compare PNG compression levels")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="time with wall clock or CPU time")
    ap.add_argument(
        "--formats", type=int, metavar="N", default=0,
        help="only the per-format rows, N corpus files per format (a small run for a busy machine)",
    )  # fmt: skip
    ap.add_argument("--child-rss", help=argparse.SUPPRESS)
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # renders/s *per core*
    if args.child_rss:
        _child_rss(args.child_rss, args.kernel, args.size)
        return
    opts = RenderOptions(size=args.size, kernel=args.kernel)
    t = time.perf_counter()
    warm_up(opts)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(
        f"# bench/render.py — kernel {resolve_kernel(args.kernel)}, {args.clock} clock, one CPU, "
        f"warm_up {time.perf_counter() - t:.2f} s, load average {load} on {os.cpu_count()} CPUs"
    )
    if args.formats:
        bench_formats(opts, args.formats, min(args.reps, 3))
        return
    with tempfile.TemporaryDirectory(prefix="sidecar-bench-") as tmp:
        cases = generated(Path(tmp))
        bench_generated(cases, opts, max(5, args.reps))
        if not args.no_corpus and CORPUS.is_dir():
            bench_corpus(opts, 3)
        one_million = next(p for label, p in cases if label.endswith("rock 1M"))
        bench_rss(one_million, opts)
        bench_cold_start(opts)
        if args.png_levels:
            bench_png_levels(cases, opts)


if __name__ == "__main__":
    main()
