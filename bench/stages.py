"""Time per file of each stage of a scan, and this machine's physical limits (issue 17 item 7).

Stages, each timed alone on the same model (median of ``--repeat``): walk (listing a folder, per model
found), stat, read (``read_model_bytes``), hash (xxh3-128 of the bytes), parse (``load_mesh_bytes``),
render (the rest of ``make_thumbnail_from_bytes``), encode (``encode_png`` of the 256 px picture),
write (``atomic_write``: ordered only — this branch's default — and with the folder fsync per file as
before), commit (``record_done`` in batches of 200, per row). Limits: memory copy (numpy) and xxh3 of
a ``--gib`` GiB buffer, one core.

Run: ``python bench/stages.py [MODEL ...] [--repeat 20] [--gib 1]`` (default models: a 12-triangle cube
and the corpus's largest binary STL). Prints a table to stdout; docs/PERFORMANCE.md quotes it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from sidecar_thumbs.files.atomic import atomic_write
from sidecar_thumbs.files.discover import iter_model_files
from sidecar_thumbs.files.fingerprint import hash_bytes
from sidecar_thumbs.files.sidecar import encode_png
from sidecar_thumbs.mesh.load import load_mesh_bytes
from sidecar_thumbs.render.thumbnail import ThumbnailOptions, make_thumbnail_from_bytes, read_model_bytes
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import FileState, RenderDone, ThumbSource

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
DEFAULT_MODEL = CORPUS / "stl-binary" / "prusaslicer__prusa3d_xl_gantry.stl"


def cube_stl() -> bytes:
    v = [(x, y, z) for x in (0.0, 1.0) for y in (0.0, 1.0) for z in (0.0, 1.0)]
    faces = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1)]
    faces += [(2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]
    out = bytearray(b"cube".ljust(80, b" ")) + struct.pack("<I", len(faces))
    for a, b, c in faces:
        out += struct.pack("<12f", 0, 0, 0, *v[a], *v[b], *v[c]) + b"\0\0"
    return bytes(out)


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def stages(model: Path, work: Path, repeat: int) -> dict[str, float]:
    opts = ThumbnailOptions()
    data, size, mtime = read_model_bytes(model)
    out: dict[str, float] = {}
    out["stat"] = median_ms(lambda: os.stat(model), repeat)
    out["read"] = median_ms(lambda: read_model_bytes(model), repeat)
    out["hash"] = median_ms(lambda: hash_bytes(data), repeat)
    out["parse"] = median_ms(lambda: load_mesh_bytes(data, model.name, opts.limits), repeat)
    h = hash_bytes(data)
    thumb = make_thumbnail_from_bytes(data, model.name, size, mtime, opts, content_hash=h)  # warm
    whole = median_ms(lambda: make_thumbnail_from_bytes(data, model.name, size, mtime, opts, content_hash=h), repeat)
    rgba = np.asarray(Image.open(__import__("io").BytesIO(thumb.png)).convert("RGBA"))
    encode_png(rgba, {"Thumb::Test": "x"})  # warm (imports)
    out["encode"] = median_ms(lambda: encode_png(rgba, {"Thumb::Test": "x"}), repeat)
    out["render"] = max(0.0, whole - out["parse"] - out["encode"])
    target = work / "w.png"
    out["write (ordered)"] = median_ms(lambda: atomic_write(target, thumb.png, sync_folder=False), repeat)
    out["write (+folder fsync)"] = median_ms(lambda: atomic_write(target, thumb.png), repeat)
    return out


def walk_and_commit(work: Path, count: int = 2000) -> dict[str, float]:
    lib = work / "lib"
    data = cube_stl()
    for i in range(count):
        d = lib / f"d{i // 20:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"m{i:05d}.stl").write_bytes(data)
    t0 = time.perf_counter()
    found = list(iter_model_files([str(lib)]))
    walk = (time.perf_counter() - t0) / len(found) * 1000
    db = StateDB(work / "db.sqlite3")
    try:
        db.upsert_files([FileState(f.path, f.size, f.mtime_ns, "h", True) for f in found])
        done = [RenderDone(f.path, "h", f.size, f.mtime_ns, ThumbSource.RENDERED, 12, 1.0) for f in found]
        t0 = time.perf_counter()
        for i in range(0, len(done), 200):
            db.record_done(done[i : i + 200])
        commit = (time.perf_counter() - t0) / len(done) * 1000
    finally:
        db.close()
    return {"walk": walk, "commit": commit}


def limits(gib: float) -> dict[str, float]:
    n = int(gib * 2**30)
    src = np.ones(n, dtype=np.uint8)
    dst = np.zeros_like(src)
    np.copyto(dst, src)  # the first pass maps the pages: not the bandwidth
    t0 = time.perf_counter()
    np.copyto(dst, src)
    copy = 2 * n / (time.perf_counter() - t0) / 1e9  # bytes read + bytes written
    t0 = time.perf_counter()
    hash_bytes(memoryview(src))
    xxh = n / (time.perf_counter() - t0) / 1e9
    return {"memory copy GB/s (r+w)": copy, "xxh3-128 GB/s": xxh}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--gib", type=float, default=1.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    try:
        cube = work / "cube.stl"
        cube.write_bytes(cube_stl())
        models = args.models or [cube, DEFAULT_MODEL]
        shared = walk_and_commit(work)
        print(f"{'stage (ms per file)':<24}" + "".join(f"{m.name[:28]:>30}" for m in models))
        cols = [stages(m, work, args.repeat) for m in models]
        for key in cols[0]:
            print(f"{key:<24}" + "".join(f"{c[key]:30.3f}" for c in cols))
        for key, value in shared.items():
            print(f"{key:<24}{value:30.3f}   (2,000 cubes, 20 a folder; commit: batches of 200)")
        for key, value in limits(args.gib).items():
            print(f"{key:<24}{value:30.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
