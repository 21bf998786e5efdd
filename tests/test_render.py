"""The renderer: framing, two-sided shading, degenerate input, and numba == numpy."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from corpus_paths import CORPUS, REPO_ROOT

from bench import meshgen
from sidecar_thumbs.errors import ConfigError, NoGeometryError
from sidecar_thumbs.render import RenderOptions, render_triangles, resolve_kernel, warm_up

HAVE_NUMBA = resolve_kernel("auto") == "numba"
needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
KERNELS = ["numba", "numpy"] if HAVE_NUMBA else ["numpy"]

# Big inputs (0.1 s to 0.9 s of CPU each) run in the full suite only; the fast lane has smaller twins.
BIG = pytest.mark.integration

# A few real binary STLs of different character: many small facets, threads, a thin-walled panel.
CORPUS_STL = [
    "stl-binary/voron2__Thread_Test_1_x1_Rev1.STL",
    "stl-binary/boxturtle__Hex_Front_1pc_Mesh.stl",
    "stl-binary/trimesh__torus.STL",
    "stl-binary/admesh__binary.stl",
]
BIG_STL = {"stl-binary/voron2__Thread_Test_1_x1_Rev1.STL", "stl-binary/boxturtle__Hex_Front_1pc_Mesh.stl"}  # 80k, 52k


def _binary_stl(path: Path) -> np.ndarray:
    # Deliberately independent of sidecar_thumbs.mesh: these tests are about drawing, not parsing.
    data = path.read_bytes()
    n = int(np.frombuffer(data, "<u4", 1, 80)[0])
    rec = np.frombuffer(data, np.uint8, 50 * n, 84).reshape(n, 50)[:, 12:48]
    return np.ascontiguousarray(rec).view("<f4").reshape(n, 3, 3)


def _alpha_bbox(img: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(img[..., 3])
    return int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())


def _assert_near_identical(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1)
    assert (diff <= 2).mean() >= 0.995, f"{(diff > 2).sum()} pixels differ by more than 2 levels"
    alpha_a, alpha_b = a[..., 3] > 0, b[..., 3] > 0
    assert (alpha_a != alpha_b).sum() <= max(2, 0.0005 * alpha_a.sum())


MESHES = {
    "knot-20k": lambda: meshgen.torus_knot(20_000),
    "rock-5k": lambda: meshgen.rock(5_000),
    "gear": lambda: meshgen.gear(),
    "bracket": meshgen.bracket,
}


@needs_numba
@pytest.mark.parametrize("size", [128, pytest.param(512, marks=BIG)])
@pytest.mark.parametrize("mesh", sorted(MESHES))
def test_numba_and_numpy_kernels_draw_the_same_image(mesh: str, size: int) -> None:
    tri = MESHES[mesh]()
    a = render_triangles(tri, RenderOptions(size=size, kernel="numba"))
    b = render_triangles(tri, RenderOptions(size=size, kernel="numpy"))
    _assert_near_identical(a, b)


@needs_numba
@pytest.mark.parametrize("name", [pytest.param(n, marks=BIG) if n in BIG_STL else n for n in CORPUS_STL])
def test_numba_and_numpy_agree_on_real_models(corpus: Path, name: str) -> None:
    tri = _binary_stl(corpus / name)
    for size in (128, 256):
        a = render_triangles(tri, RenderOptions(size=size, kernel="numba"))
        b = render_triangles(tri, RenderOptions(size=size, kernel="numpy"))
        _assert_near_identical(a, b)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("size", [128, 256, 512, pytest.param(1024, marks=BIG)])
def test_model_fills_the_frame_centred_on_a_transparent_background(kernel: str, size: int) -> None:
    img = render_triangles(meshgen.rock(3_000), RenderOptions(size=size, kernel=kernel))
    assert img.shape == (size, size, 4) and img.dtype == np.uint8
    x0, x1, y0, y1 = _alpha_bbox(img)
    larger = max(x1 - x0 + 1, y1 - y0 + 1)
    assert larger >= 0.8 * size
    assert abs((x0 + x1) / 2 - (size - 1) / 2) <= 2 + size / 256
    assert abs((y0 + y1) / 2 - (size - 1) / 2) <= 2 + size / 256
    corners = img[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners[:, 3] == 0).all()


@pytest.mark.parametrize("kernel", KERNELS)
def test_inconsistent_winding_shows_no_holes(kernel: str) -> None:
    tri = meshgen.rock(20_000)
    flipped = tri.copy()
    flipped[::2] = flipped[::2, ::-1]  # every other triangle wound the wrong way
    opts = RenderOptions(size=256, kernel=kernel)
    a, b = render_triangles(tri, opts), render_triangles(flipped, opts)
    assert (a[..., 3] == b[..., 3]).all()
    _assert_near_identical(a, b)


@pytest.mark.parametrize("kernel", KERNELS)
def test_back_faces_are_lit_like_front_faces(kernel: str) -> None:
    # A flat sheet seen from above and the same sheet wound the other way: same colour either way.
    sheet = np.array([[[0, 0, 0], [10, 0, 0], [10, 10, 0]], [[0, 0, 0], [10, 10, 0], [0, 10, 0]]], np.float32)
    opts = RenderOptions(size=64, kernel=kernel)
    a, b = render_triangles(sheet, opts), render_triangles(sheet[:, ::-1].copy(), opts)
    assert a[32, 32, 3] == 255
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.parametrize("kernel", KERNELS)
def test_colour_option_sets_the_model_colour(kernel: str) -> None:
    tri = meshgen.gear()
    red = render_triangles(tri, RenderOptions(size=128, kernel=kernel, color=(220, 40, 30)))
    blue = render_triangles(tri, RenderOptions(size=128, kernel=kernel))
    solid = (red[..., 3] == 255) & (blue[..., 3] == 255)
    r_mean, b_mean = red[solid, :3].mean(axis=0), blue[solid, :3].mean(axis=0)
    assert r_mean[0] > 2 * r_mean[2]
    assert b_mean[2] > 1.5 * b_mean[0]


@pytest.mark.parametrize("kernel", KERNELS)
def test_thin_sub_pixel_wall_stays_visible(kernel: str) -> None:
    # A 0.05 mm wall next to a 100 mm block: far thinner than a pixel, must still leave a mark.
    block = meshgen._box((0, 0, 0), (100, 100, 10))
    wall = meshgen._box((-60, 50, 0), (-59.95, 50.05, 60))
    tri = np.concatenate([block, wall]).astype(np.float32)
    img = render_triangles(tri, RenderOptions(size=128, kernel=kernel))
    block_only = render_triangles(
        np.concatenate([block, meshgen._box((-60, 50, 0), (-60, 50, 0))]).astype(np.float32),
        RenderOptions(size=128, kernel=kernel),
    )
    assert (img[..., 3] > 0).sum() > (block_only[..., 3] > 0).sum() + 20


DEGENERATE = {
    "all-points-equal": np.full((50, 3, 3), 7.0, np.float32),
    "flat-part": meshgen.gear()[:, :, :] * np.array([1, 1, 0], np.float32),
    "line": np.stack([np.linspace(0, 10, 30)] * 3, -1).astype(np.float32).reshape(10, 3, 3),
    "tiny": meshgen.rock(2_000) * np.float32(1e-6),
    "huge": meshgen.rock(2_000) * np.float32(1e7),
    "far-from-origin": meshgen.rock(2_000) + np.float32(1e7),
    "single-triangle": np.array([[[0, 0, 0], [1, 0, 0], [0, 0, 1]]], np.float32),
    "edge-on-sheet": np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]]], np.float32),
    "float32-limits": np.array([[[3e38, 3e38, 3e38], [-3e38, 3e38, 0], [0, -3e38, 1]]], np.float32),
    "limits-and-normal": np.concatenate(
        [meshgen.gear(), np.array([[[3e38, 0, 0], [-3e38, 0, 0], [0, 0, 3e38]]], np.float32)]
    ),
}


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("case", sorted(DEGENERATE))
def test_degenerate_input_does_not_crash(kernel: str, case: str) -> None:
    opts = RenderOptions(size=64, kernel=kernel)
    if case == "float32-limits":  # nothing drawable survives: a clean model error, not a crash
        with pytest.raises(NoGeometryError):
            render_triangles(DEGENERATE[case], opts)
        return
    img = render_triangles(DEGENERATE[case], opts)
    assert img.shape == (64, 64, 4)
    if case in ("tiny", "huge", "far-from-origin", "flat-part"):
        x0, x1, y0, y1 = _alpha_bbox(img)
        assert max(x1 - x0, y1 - y0) >= 0.8 * 64


@pytest.mark.parametrize("kernel", KERNELS)
def test_non_finite_triangles_are_ignored(kernel: str) -> None:
    tri = meshgen.rock(2_000)
    opts = RenderOptions(size=128, kernel=kernel)
    clean = render_triangles(tri, opts)
    nan, inf = np.full((1, 3, 3), np.nan, np.float32), np.full((3, 3, 3), np.inf, np.float32)
    dirty = np.concatenate([nan, tri, inf])
    dirty[0, 0, 0] = 0.0  # a triangle that is only partly NaN
    dirty[1 + len(tri), 2] = 1.0  # and one that is partly inf
    assert np.array_equal(render_triangles(dirty, opts), clean)


@pytest.mark.parametrize("kernel", KERNELS)
def test_no_drawable_triangles_is_a_no_geometry_error(kernel: str) -> None:
    opts = RenderOptions(size=64, kernel=kernel)
    with pytest.raises(NoGeometryError):
        render_triangles(np.zeros((0, 3, 3), np.float32), opts)
    with pytest.raises(NoGeometryError):
        render_triangles(np.full((4, 3, 3), np.nan, np.float32), opts)


def test_other_dtypes_and_layouts_are_accepted() -> None:
    tri = meshgen.gear()
    expect = render_triangles(tri, RenderOptions(size=64))
    as_f64 = render_triangles(tri.astype(np.float64), RenderOptions(size=64))
    strided = np.zeros((len(tri), 3, 4), np.float32)
    strided[..., :3] = tri
    assert np.array_equal(as_f64, expect)
    assert np.array_equal(render_triangles(strided[..., :3], RenderOptions(size=64)), expect)


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_view_into_binary_stl_records_renders_like_a_copy(kernel: str) -> None:
    # What a loader can hand over without copying: read-only, unaligned, 50-byte row stride.
    data = meshgen.binary_stl_bytes(meshgen.rock(3_000))
    n = int(np.frombuffer(data, "<u4", 1, 80)[0])
    view = np.frombuffer(data, np.uint8, 50 * n, 84).reshape(n, 50)[:, 12:48].view("<f4").reshape(n, 3, 3)
    assert not view.flags.writeable and not view.flags.aligned
    opts = RenderOptions(size=128, kernel=kernel)
    assert np.array_equal(render_triangles(view, opts), render_triangles(np.ascontiguousarray(view), opts))


@pytest.mark.parametrize(
    "bad",
    [
        {"size": 8},
        {"size": 5000},
        {"size": 256.0},
        {"color": (300, 0, 0)},
        {"color": (1, 2)},
        {"kernel": "opengl"},
        {"supersample": 0},
        {"margin": 0.5},
        {"margin": float("nan")},
        {"margin": "0.1"},
    ],
)
def test_invalid_options_are_config_errors(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        RenderOptions(**bad)  # type: ignore[arg-type]


def test_colour_given_as_a_list_is_normalised_to_a_tuple() -> None:
    opts = RenderOptions(color=[10, 20, 30])  # type: ignore[arg-type]
    assert opts.color == (10, 20, 30)
    assert hash(opts) == hash(RenderOptions(color=(10, 20, 30)))


def test_resolve_kernel_names() -> None:
    assert resolve_kernel("numpy") == "numpy"
    assert resolve_kernel("auto") in ("numba", "numpy")
    with pytest.raises(ConfigError):
        resolve_kernel("vulkan")


def _run_without_numba(code: str) -> subprocess.CompletedProcess[str]:
    prelude = "import sys\nsys.modules['numba'] = None  # as on an Intel Mac: numba cannot be imported\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.integration
def test_without_numba_auto_falls_back_to_numpy_and_numba_is_a_config_error() -> None:
    proc = _run_without_numba(
        """
        import numpy as np
        from sidecar_thumbs.errors import ConfigError
        from sidecar_thumbs.render import RenderOptions, render_triangles, resolve_kernel, warm_up
        assert resolve_kernel("auto") == "numpy"
        warm_up()
        img = render_triangles(np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 1]]], np.float32))
        assert img.shape == (256, 256, 4) and img[..., 3].any()
        try:
            resolve_kernel("numba")
        except ConfigError as exc:
            print("config error:", exc)
        assert "numba" not in sys.modules or sys.modules["numba"] is None
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "config error: renderer 'numba' asked for but numba is not installed" in proc.stdout


@pytest.mark.integration
@needs_numba
def test_a_fresh_worker_loads_compiled_kernels_from_the_cache() -> None:
    # This process has compiled (or loaded) the kernels, so the cache is populated; a new process must
    # load all of them from it instead of compiling: that is what keeps worker start-up under a second.
    from sidecar_thumbs.render import kernel_numba

    assert kernel_numba._raster.stats.cache_path
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from sidecar_thumbs.render import kernel_numba as k, warm_up\n"
            "warm_up()\n"
            "fns = [k._first_finite, k._extents, k._raster, k._resolve]\n"
            "print(sum(sum(f.stats.cache_hits.values()) for f in fns), "
            "sum(sum(f.stats.cache_misses.values()) for f in fns))",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["4", "0"]


@pytest.mark.parametrize("kernel", KERNELS)
def test_warm_up_runs(kernel: str) -> None:
    warm_up(RenderOptions(kernel=kernel))


def test_corpus_is_where_conftest_says() -> None:
    # Guards the corpus-based tests above against silently skipping everything.
    if not (CORPUS / "MANIFEST.tsv").is_file():
        pytest.skip("no corpus")
    assert all((CORPUS / n).is_file() for n in CORPUS_STL)
