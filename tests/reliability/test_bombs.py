"""Bombs: tiny files that would be gigabytes when inflated, expanded or believed (issue #6, item 4).
Each is rendered in a fresh process whose peak RSS is measured against a baseline render."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from bombs import bomb_3mf, inflated_size, xml_3mf
from reliability_util import ENV, binary_stl

pytestmark = pytest.mark.integration  # reliability suite: real processes, faults, many files

GIB = 1 << 30
VERTEX = b'<vertex x="0" y="0" z="0"/>'
# The growth we allow over a baseline render: the file itself (read once, ~21 MB at most here)
# plus working buffers. Without the caps these files need gigabytes.
PEAK_BOUND_MB = 96

_PROBE = """
import json, resource, sys
from sidecar_thumbs.work.jobs import RenderJob, render_job
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.render import RenderOptions
opts = ThumbnailOptions(render=RenderOptions(size=64))
render_job(RenderJob(sys.argv[1], opts))  # baseline: imports, numba, one small render
# ... and every reader's kernels compiled or loaded, as a pool worker has them after its warm-up: the bound
# is on what a bomb costs, not on numba's compiler (hundreds of MB once, with a cold cache).
from sidecar_thumbs.mesh import load as mesh_load
mesh_load.warm_up()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path in sys.argv[2:]:
    r = render_job(RenderJob(path, opts))
    # ru_maxrss only grows: each figure is the peak so far, so it bounds this bomb and those before.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"path": path, "ok": r.ok, "error": r.error, "base_kb": base, "peak_kb": peak}))
"""


def _groups_for(prefix: bytes, size: int) -> int:
    return size // (8 * 258) + 1


def _bombs() -> dict[str, tuple[str, bytes | None, str]]:
    """name → (file name, content or None for lazily built, expected reason fragment)."""
    return {
        "zip bomb, honest header (3 GiB of spaces)": ("bomb.3mf", None, "more than the limit"),
        "zip bomb, lying header (3 GiB claimed as 4 KiB)": ("liar.3mf", None, "different size than declared"),
        "3MF with 120 million vertices (3.2 GB model part)": ("vertices.3mf", None, "more than the limit"),
        "3MF with 120 million vertices, lying header": ("vertices-liar.3mf", None, "different size"),
        "XML entity expansion (billion laughs)": ("laughs.3mf", None, "DTD/entities not allowed"),
        "XML entity expansion, UTF-16 encoded": ("laughs16.3mf", None, "UTF-8"),
        "binary STL claiming 2^32-1 triangles": ("claims.stl", None, "truncated"),
    }


LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE model [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + ']><model xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02"><metadata name="x">&j;</metadata>'
    "<resources/><build/></model>"
)


def _build(name: str) -> bytes:
    if name == "bomb.3mf":
        return bomb_3mf(b" ", _groups_for(b" ", 3 * GIB), honest=True)
    if name == "liar.3mf":
        return bomb_3mf(b" ", _groups_for(b" ", 3 * GIB), honest=False)
    if name == "vertices.3mf":
        return bomb_3mf(VERTEX, _groups_for(VERTEX, 120_000_000 * len(VERTEX)), honest=True)
    if name == "vertices-liar.3mf":
        return bomb_3mf(VERTEX, _groups_for(VERTEX, 120_000_000 * len(VERTEX)), honest=False)
    if name == "laughs.3mf":
        return xml_3mf(LAUGHS.encode())
    if name == "laughs16.3mf":
        return xml_3mf(
            LAUGHS.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>').encode("utf-16")
        )
    if name == "claims.stl":
        return b"\0" * 80 + struct.pack("<I", 2**32 - 1) + b"\0" * 50
    raise KeyError(name)


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Render every bomb in one fresh process (after a baseline render); results by file name."""
    folder = tmp_path_factory.mktemp("bombs")
    small = folder / "small.stl"
    small.write_bytes(binary_stl(100))
    paths = []
    for name, _, _ in _bombs().values():
        (folder / name).write_bytes(_build(name))
        paths.append(str(folder / name))
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(small), *paths], capture_output=True, text=True, env=ENV, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    results = {}
    for line in out.stdout.strip().splitlines():
        r = json.loads(line)
        r["file_bytes"] = Path(r["path"]).stat().st_size
        results[Path(r["path"]).name] = r
    return results


@pytest.mark.parametrize("what", list(_bombs()))
def test_bomb_is_refused_with_bounded_memory(what: str, probed: dict[str, dict[str, object]]) -> None:
    name, _, expected = _bombs()[what]
    r = probed[name]
    growth_mb = (int(r["peak_kb"]) - int(r["base_kb"])) / 1024  # type: ignore[call-overload]  # KiB on Linux
    print(f"{what}: file {int(r['file_bytes']) / 1e6:.2f} MB, peak growth {growth_mb:.1f} MB: {r['error']}")  # type: ignore[call-overload]
    assert not r["ok"]
    error = str(r["error"])
    assert "\n" not in error and expected in error, error
    assert growth_mb < PEAK_BOUND_MB, f"{what}: peak grew {growth_mb:.0f} MB"


def test_inflated_sizes_are_what_the_names_say() -> None:
    # Guards the builders: the bombs really are gigabytes when inflated.
    assert inflated_size(b" ", _groups_for(b" ", 3 * GIB)) >= 3 * GIB
    assert inflated_size(VERTEX, _groups_for(VERTEX, 120_000_000 * len(VERTEX))) // len(VERTEX) >= 120_000_000
