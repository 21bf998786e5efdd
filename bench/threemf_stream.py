"""Where the time of a 100k-triangle 3MF goes, streamed against whole-buffer parsing, and peak RSS.

Usage::

    python bench/threemf_stream.py [--triangles 100000] [--reps 7]

CPU time of this process (one core): inflate (and its floor: the part's deflate stream inflated in
one call, no chunks, no CRC), scan, the whole load, render, encode, and the renders/s/core of the
worker's own call (make_thumbnail_from_bytes, no slicer picture). The streamed rows pass ``restart``
as the loader does (without it every chunk's newlines are counted, for error messages).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import meshgen  # noqa: E402
from sidecar_thumbs.mesh import modelpart, threemf  # noqa: E402
from sidecar_thumbs.mesh.opc import Package, _inflater  # noqa: E402
from sidecar_thumbs.mesh.xmlscan import scan_meshes  # noqa: E402
from sidecar_thumbs.mesh.xmlstream import scan_meshes_stream  # noqa: E402

CLOCK = time.process_time
PART = "3D/3dmodel.model"


def timed(fn: Callable[[], object], reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = CLOCK()
        fn()
        times.append(CLOCK() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--triangles", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    from sidecar_thumbs.render.thumbnail import ThumbnailOptions, make_thumbnail_from_bytes

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rock.3mf"
        meshgen.write_3mf(path, meshgen.rock_indexed(args.triangles))
        data = path.read_bytes()
    pkg = Package(data, 1 << 31)
    xml = pkg.read(PART)
    info = pkg.find(PART)
    assert info is not None
    deflated = bytes(pkg._compressed(info))
    restart = lambda: pkg.stream(PART)  # noqa: E731

    def inflate(module) -> bytes:  # type: ignore[no-untyped-def]
        # The output size is known (as Package.read knows it): one allocation, no growing copies.
        return module.decompressobj(-15).decompress(deflated, len(xml) + 1)

    rows = [
        (f"inflate floor ({_inflater.__name__}, one call)", lambda: inflate(_inflater)),
        ("inflate floor (stdlib zlib, one call)", lambda: inflate(zlib)),
        ("inflate whole (Package.read)", lambda: pkg.read(PART)),
        ("inflate in 1 MiB chunks (Package.stream)", lambda: [len(c) for c in pkg.stream(PART)]),
        ("scan whole buffer, colours", lambda: scan_meshes(xml, 10**9, want_props=True)),
        (
            "inflate+scan streamed, colours",
            lambda: scan_meshes_stream(pkg.stream(PART), 10**9, PART, True, restart=restart, size_hint=len(xml)),
        ),
        (
            "parse part whole (read+scan+skeleton)",
            lambda: modelpart.parse_model_part(pkg.read(PART), PART, 10**9, True),
        ),
        (
            "parse part streamed",
            lambda: modelpart.parse_model_part_stream(pkg.stream(PART), PART, 10**9, True, restart, len(xml)),
        ),
        ("load_3mf_mesh (colours, streamed)", lambda: threemf.load_3mf_mesh(data)),
    ]
    options = ThumbnailOptions()
    print(f"{args.triangles} triangles, {len(data)} bytes, part {len(xml)} bytes; CPU ms, median of {args.reps}")
    for label, fn in rows:
        print(f"  {label:45s} {timed(fn, args.reps) * 1e3:8.2f}")
    whole = timed(lambda: make_thumbnail_from_bytes(data, "rock.3mf", len(data), 0, options, "0" * 32), args.reps)
    # After the timed calls: the first one also loads the render kernels (or compiles them on a cold cache).
    thumb = make_thumbnail_from_bytes(data, "rock.3mf", len(data), 0, options, "0" * 32)
    print(f"  {'make_thumbnail_from_bytes':45s} {whole * 1e3:8.2f}  -> {1 / whole:.1f} renders/s/core")
    print(f"    of which load {thumb.load_ms:.2f} ms, render+encode {thumb.render_ms:.2f} ms (one call, wall)")


if __name__ == "__main__":
    main()
