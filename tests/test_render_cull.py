"""Back faces drawn second, only where they may show: the picture is the same as drawing every face in
order, to the last bit, for closed meshes (where it saves the work) and for open, inside-out and mixed
ones (where it cannot)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from corpus_paths import CORPUS

from bench import meshgen
from sidecar_thumbs.render import _as_rows, resolve_kernel
from sidecar_thumbs.render.camera import VIEW_XY, shading_for

pytestmark = pytest.mark.skipif(resolve_kernel("auto") != "numba", reason="numba not installed")
SHADING = shading_for((92, 143, 219))


def _kernel():  # type: ignore[no-untyped-def]
    from sidecar_thumbs.render import kernel_numba

    return kernel_numba


def _stl(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        data = (CORPUS / name).read_bytes()
        n = int(np.frombuffer(data, "<u4", 1, 80)[0])
        rec = np.frombuffer(data, np.uint8, 50 * n, 84).reshape(n, 50)[:, 12:48]
        return np.ascontiguousarray(rec).view("<f4").reshape(n, 3, 3)

    return load


def _inside_out(tri: np.ndarray) -> np.ndarray:
    return tri[:, ::-1].copy()


def _half_pipe() -> np.ndarray:
    # An open curved sheet: from the camera, the back of its near half hides the front of its far half.
    a = np.linspace(0, np.pi, 40)
    x, z = np.cos(a), np.sin(a)
    quads = []
    for i in range(len(a) - 1):
        p0, p1 = (x[i], 0, z[i]), (x[i + 1], 0, z[i + 1])
        q0, q1 = (x[i], 3, z[i]), (x[i + 1], 3, z[i + 1])
        quads += [[p0, p1, q1], [p0, q1, q0]]
    return np.array(quads, np.float32)


def _mixed_shells() -> np.ndarray:
    # A closed rock wound outward beside a smaller one wound inward: the volume says "outward", so
    # the inward shell's visible faces are all back faces and must come from the second pass.
    rock = meshgen.rock(3_000)
    inner = _inside_out(rock * np.float32(0.6) + np.float32(40.0))
    return np.concatenate([rock, inner])


MESHES: dict[str, Callable[[], np.ndarray]] = {
    "rock-80": lambda: meshgen.rock(80),
    "rock-20k": lambda: meshgen.rock(20_000),
    "knot-20k": lambda: meshgen.torus_knot(20_000),
    "gear": meshgen.gear,
    "bracket": meshgen.bracket,
    "rock-inside-out": lambda: _inside_out(meshgen.rock(5_000)),
    "rock-with-a-hole": lambda: meshgen.rock(5_000)[40:],
    "half-pipe": _half_pipe,
    "mixed-shells": _mixed_shells,
    "two-sided-sheet": lambda: np.concatenate([_half_pipe(), _inside_out(_half_pipe())]),
    "corpus-thread-test": _stl("stl-binary/voron2__Thread_Test_1_x1_Rev1.STL"),
    "corpus-hex-front": _stl("stl-binary/boxturtle__Hex_Front_1pc_Mesh.stl"),
    "corpus-torus": _stl("stl-binary/trimesh__torus.STL"),
}


def _back(tri: np.ndarray) -> int:
    t = _as_rows(tri)
    origin = np.array(t[0, :3], dtype=np.float32)
    return int(_kernel()._extents(t, origin, VIEW_XY, True)[5])


@pytest.mark.parametrize("size", [96, 256])
@pytest.mark.parametrize("name", sorted(MESHES))
def test_back_faces_drawn_second_give_the_same_picture(name: str, size: int) -> None:
    if name.startswith("corpus-") and not CORPUS.is_dir():
        pytest.skip("no corpus")
    t = _as_rows(MESHES[name]())
    k = _kernel()
    one_pass = k.render(t, size, 2, 0.06, SHADING, cull=False)
    two_pass = k.render(t, size, 2, 0.06, SHADING, cull=True)
    assert np.array_equal(one_pass, two_pass)


@pytest.mark.parametrize("name", sorted(MESHES))
def test_back_faces_drawn_second_give_the_same_picture_in_colour(name: str) -> None:
    if name.startswith("corpus-") and not CORPUS.is_dir():
        pytest.skip("no corpus")
    t = _as_rows(MESHES[name]())
    rng = np.random.default_rng(5)
    packed = rng.integers(0, 1 << 24, (t.shape[0], 3)).astype(np.int32)
    k = _kernel()
    for cols in (packed[:, :1], packed):  # per triangle, per corner
        a = k.render(t, 128, 2, 0.06, SHADING, cols, cull=False)
        b = k.render(t, 128, 2, 0.06, SHADING, cols, cull=True)
        assert np.array_equal(a, b)


def test_closed_meshes_draw_front_faces_first_and_inside_out_ones_the_other_side() -> None:
    assert _back(meshgen.rock(2_000)) == 1
    assert _back(meshgen.torus_knot(4_000)) == 1
    assert _back(_inside_out(meshgen.rock(2_000))) == -1


def test_a_two_sided_sheet_is_drawn_in_one_pass() -> None:
    # Each face and its reverse: no volume, no side to prefer.
    assert _back(np.concatenate([_half_pipe(), _inside_out(_half_pipe())])) == 0


def test_corpus_closed_models_are_culled(corpus: Path) -> None:
    assert _back(_stl("stl-binary/trimesh__torus.STL")()) != 0
