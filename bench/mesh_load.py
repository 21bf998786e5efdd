"""Load-time benchmark for the mesh loaders (warm, single process): ms per file.

Usage: ``python bench/mesh_load.py [--numpy] [--quick]`` — synthetic knot/rock meshes at 100k and 1M
triangles as binary STL (and ASCII STL at 100k), 3MF, OBJ (``f v`` and ``f v/vt/vn``), PLY (binary and
ASCII) and zipped AMF (from ``bench/meshgen.py``) plus the largest corpus files when the corpus is
present; ``--quick``: only the 100k knot. Reports the best of 5 runs in CPU time of this process
(``time.process_time``: stable on a shared machine; the loader is single-threaded, so it equals wall
time on an idle core) and the peak RSS of the process.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

if "--numpy" in sys.argv:
    os.environ["SIDECAR_THUMBS_NO_NUMBA"] = "1"

import meshgen as mg

from sidecar_thumbs.mesh import load_mesh_bytes, warm_up

_DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
CORPUS = Path(os.environ.get("SIDECAR_THUMBS_CORPUS", _DEFAULT_CORPUS))
CORPUS_FILES = [
    "3mf/stealthchanger__DB Numbered tool heads.3mf",
    "3mf/prusaslicer__seam_test_object.3mf",
    "3mf/lib3mf__cam_51476_test.3mf",
    "3mf/3mfsamples__multipletextures.3mf",
    "3mf/boxturtle__tray_multicolor.3mf",
    "stl-binary/trimesh__counter.unitsmm.STL",
    "stl-ascii/trimesh__ADIS16480.STL",
    "obj/prusaslicer__frog_legs.obj",
    "ply/trimesh__cycloidal.ply",
    "amf/openscad__multi-volume-binary.amf",
]


def _best_ms(data: bytes, name: str, runs: int = 5) -> tuple[float, int]:
    best = float("inf")
    n = 0
    for _ in range(runs):
        t = time.process_time()
        n = load_mesh_bytes(data, name).triangle_count
        best = min(best, time.process_time() - t)
    return best * 1e3, n


def main() -> None:
    t = time.perf_counter()
    warm_up()
    print(f"warm_up: {(time.perf_counter() - t) * 1e3:.0f} ms")
    cases: list[tuple[str, bytes, str]] = []
    quick = "--quick" in sys.argv
    for n in (100_000,) if quick else (100_000, 1_000_000):
        for shape, fn in (
            (("knot", mg.torus_knot_indexed),)
            if quick
            else (
                ("knot", mg.torus_knot_indexed),
                ("rock", mg.rock_indexed),
            )
        ):
            mesh = fn(n)
            cases.append((f"{shape} {n // 1000}k .3mf", mg.threemf_bytes(mesh), "x.3mf"))
            cases.append((f"{shape} {n // 1000}k .stl", mg.binary_stl_bytes(mesh), "x.stl"))
            if n <= 100_000:  # (1M facets are 230 MB of text: nobody exports that as ASCII)
                cases.append((f"{shape} {n // 1000}k .stl ascii", mg.ascii_stl_text(mesh).encode(), "x.stl"))
            cases.append((f"{shape} {n // 1000}k .obj (f v)", mg.obj_bytes(mesh), "x.obj"))
            cases.append((f"{shape} {n // 1000}k .obj (f v/vt/vn)", mg.obj_bytes(mesh, "v/vt/vn"), "x.obj"))
            cases.append((f"{shape} {n // 1000}k .ply binary", mg.ply_bytes(mesh), "x.ply"))
            cases.append((f"{shape} {n // 1000}k .ply ascii", mg.ply_bytes(mesh, "ascii"), "x.ply"))
            cases.append((f"{shape} {n // 1000}k .amf (zip)", mg.amf_bytes(mesh, compressed=True), "x.amf"))
    for rel in () if quick else CORPUS_FILES:
        path = CORPUS / rel
        if path.is_file():
            cases.append((path.name[:40], path.read_bytes(), path.name))
    for label, data, name in cases:
        ms, n = _best_ms(data, name, runs=3 if len(data) > 20_000_000 else 5)
        print(f"{label:42s} {len(data) / 1e6:7.1f} MB {n:9d} tri {ms:8.1f} ms  {ms * 1e3 / n:6.3f} µs/tri")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
