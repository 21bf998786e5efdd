"""Pictures stay the same: renders compared with reference images made before the per-file-floor work
(windowed supersample buffer, back-face culling). Regenerate only for a deliberate change of look:
``PYTHONPATH=. python tests/test_render_reference.py``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from corpus_paths import CORPUS
from PIL import Image

from bench import meshgen
from sidecar_thumbs.render import RenderOptions, render_triangles, resolve_kernel

REFERENCE = Path(__file__).parent / "data" / "render_reference"
KERNELS = ["numba", "numpy"] if resolve_kernel("auto") == "numba" else ["numpy"]
SIZE = 128

Case = Callable[[], tuple[np.ndarray, np.ndarray | None]]


def _corpus_stl(name: str) -> Case:
    def load() -> tuple[np.ndarray, np.ndarray | None]:
        data = (CORPUS / name).read_bytes()
        n = int(np.frombuffer(data, "<u4", 1, 80)[0])
        rec = np.frombuffer(data, np.uint8, 50 * n, 84).reshape(n, 50)[:, 12:48]
        return np.ascontiguousarray(rec).view("<f4").reshape(n, 3, 3), None

    return load


def _corner_coloured_knot() -> tuple[np.ndarray, np.ndarray | None]:
    tri = meshgen.torus_knot(8_000)
    span = np.ptp(tri.reshape(-1, 3), axis=0)
    lo = tri.reshape(-1, 3).min(axis=0)
    colours = ((tri - lo) / span * 255).astype(np.uint8)  # per corner: a smooth RGB gradient
    return tri, colours


def _open_plane_from_behind() -> tuple[np.ndarray, np.ndarray | None]:
    # One square, wound so its normal points down: the camera (above) sees only its back.
    quad = np.array([[[0, 0, 0], [0, 10, 0], [10, 0, 0]], [[10, 0, 0], [0, 10, 0], [10, 10, 0]]], np.float32)
    return quad, None


def _tall_thin_box() -> tuple[np.ndarray, np.ndarray | None]:
    # Fills the frame in height only: the supersample window is much narrower than the screen.
    return (meshgen.rock(2_000) * np.array([0.1, 0.1, 3.0], np.float32)).astype(np.float32), None


CASES: dict[str, Case] = {
    "knot-20k": lambda: (meshgen.torus_knot(20_000), None),
    "rock-5k": lambda: (meshgen.rock(5_000), None),
    "rock-80": lambda: (meshgen.rock(80), None),
    "gear": lambda: (meshgen.gear(), None),
    "bracket": lambda: (meshgen.bracket(), None),
    "tall-thin": _tall_thin_box,
    "knot-corner-colours": _corner_coloured_knot,
    "open-plane-from-behind": _open_plane_from_behind,
    "corpus-thread-test": _corpus_stl("stl-binary/voron2__Thread_Test_1_x1_Rev1.STL"),
    "corpus-hex-front": _corpus_stl("stl-binary/boxturtle__Hex_Front_1pc_Mesh.stl"),
}


def _render(case: str, kernel: str) -> np.ndarray:
    tri, colours = CASES[case]()
    return render_triangles(tri, RenderOptions(size=SIZE, kernel=kernel), colors=colours)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_picture_matches_the_reference(case: str, kernel: str) -> None:
    if case.startswith("corpus-") and not CORPUS.is_dir():
        pytest.skip("no corpus")
    ref = np.asarray(Image.open(REFERENCE / f"{case}.png").convert("RGBA"))
    img = _render(case, kernel)
    assert img.shape == ref.shape
    # The references are numba renders on this machine; another CPU or the numpy kernel may round a
    # few samples differently (the tolerance of numba == numpy), but never drop or add parts.
    diff = np.abs(img.astype(np.int16) - ref.astype(np.int16)).max(axis=-1)
    assert (diff <= 2).mean() >= 0.995, f"{(diff > 2).sum()} pixels differ by more than 2 levels"
    assert ((img[..., 3] > 0) != (ref[..., 3] > 0)).sum() <= max(2, 0.0005 * (ref[..., 3] > 0).sum())


def main() -> None:
    REFERENCE.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        Image.fromarray(_render(case, KERNELS[0]), "RGBA").save(REFERENCE / f"{case}.png", optimize=True)
        print(case)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()


def test_sample_window_holds_every_projected_corner_on_whole_pixels() -> None:
    from sidecar_thumbs.render.camera import VIEW_XY, fit_to_screen, sample_window

    tri, _ = _tall_thin_box()
    v = tri.reshape(-1, 3)
    origin = v[0].copy()
    x, y = VIEW_XY @ (v - origin).T
    ext = (float(x.min()), float(x.max()), float(y.min()), float(y.max()))
    ss, ws = 2, 512
    xf = fit_to_screen(ext, origin, ws, ws, 0.06)
    x0, y0, x1, y1 = sample_window(xf, ext, ws, ws, ss)
    screen = (xf.matrix @ (v - xf.origin).T).T + xf.offset
    assert all(c % ss == 0 for c in (x0, y0, x1, y1))
    assert x0 >= 0 and x1 <= ws and y0 >= 0 and y1 <= ws
    assert x0 < screen[:, 0].min() - 1 and screen[:, 0].max() + 1 < x1
    assert y0 <= screen[:, 1].min() and screen[:, 1].max() <= y1
    assert (x1 - x0) < ws / 2  # a tall thin part: far less than the screen to clear and resolve
