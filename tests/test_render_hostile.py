"""Hostile coordinates: NaN, inf and absurdly large values end every kernel loop and never change the
drawable part of the picture. A numba loop cannot be interrupted by a signal, so these tests use the
thread timeout: a kernel that loops for ever fails the test instead of hanging the run."""

from __future__ import annotations

import numpy as np
import pytest

from bench import meshgen
from sidecar_thumbs.errors import NoGeometryError
from sidecar_thumbs.render import RenderOptions, render_triangles, resolve_kernel

KERNELS = ["numba", "numpy"] if resolve_kernel("auto") == "numba" else ["numpy"]
NON_FINITE = [np.nan, np.inf, -np.inf]
OPTS = {k: RenderOptions(size=96, kernel=k) for k in KERNELS}

pytestmark = pytest.mark.timeout(120, method="thread")


def _with(tri: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """The model with ``bad`` triangles before, among and after its own."""
    half = len(tri) // 2
    return np.concatenate([bad, tri[:half], bad, tri[half:], bad]).astype(np.float32)


def _near(a: np.ndarray, b: np.ndarray) -> None:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1)
    assert (diff <= 2).mean() >= 0.995
    assert ((a[..., 3] > 0) != (b[..., 3] > 0)).sum() <= max(2, 0.0005 * (a[..., 3] > 0).sum())


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("value", NON_FINITE, ids=str)
def test_a_non_finite_coordinate_anywhere_drops_only_its_triangle(kernel: str, value: float) -> None:
    tri = meshgen.rock(600)
    clean = render_triangles(tri, OPTS[kernel])
    bad = np.repeat(tri[:1], 9, axis=0)
    for k in range(9):  # one bad coordinate in each of the nine places
        bad[k].reshape(-1)[k] = value
    assert np.array_equal(render_triangles(_with(tri, bad), OPTS[kernel]), clean)
    everywhere = np.full((2, 3, 3), value, np.float32)
    assert np.array_equal(render_triangles(_with(tri, everywhere), OPTS[kernel]), clean)


@pytest.mark.parametrize("value", [1e20, -1e30, 1e30, 2e38, 3.3e38, -3.3e38], ids=str)
def test_huge_finite_coordinates_end_and_both_kernels_agree(value: float) -> None:
    # Finite, so they are part of the framing: the model shrinks to a dot beside the huge triangle.
    tri = meshgen.rock(600)
    huge = tri[:3].copy()
    huge[0, 1] = value
    huge[1, 2, 2] = value
    huge[2] = value  # all nine equal: zero area
    dirty = _with(tri, huge)
    images = [render_triangles(dirty, OPTS[k]) for k in KERNELS]
    assert images[0].shape == (96, 96, 4)
    for other in images[1:]:
        # The same samples covered; the shade of a 1e20-long sliver's normal is at float32's edge and may
        # differ with the kernels' operation order (it did before these tests), so only coverage is compared.
        assert np.array_equal(images[0][..., 3] > 0, other[..., 3] > 0)


def test_a_triangle_whose_projection_overflows_is_dropped_by_both_kernels() -> None:
    # Each coordinate is finite, but the projection for the framing overflows float32, so the triangle
    # is not framed; drawn at the scaled-down framing it would land far off screen. Both drop it.
    tri = meshgen.rock(600)
    far = np.array([[[3.0e38, 2.9e38, 2.9e38], [2.9e38, -2.9e38, 2.9e38], [0, 0, 2.9e38]]], np.float32)
    dirty = _with(tri, far)
    for kernel in KERNELS:
        assert np.array_equal(render_triangles(dirty, OPTS[kernel]), render_triangles(tri, OPTS[kernel]))


@pytest.mark.parametrize("kernel", KERNELS)
def test_zero_area_and_degenerate_triangles_draw_nothing(kernel: str) -> None:
    tri = meshgen.rock(600)
    v = tri.reshape(-1, 3)
    a, b = v[0], v[5]
    zero_area = np.array([[a, a, a], [a, b, b], [b, a, b], [b, b, a]], np.float32)  # points, repeated corners
    clean = render_triangles(tri, OPTS[kernel])
    assert np.array_equal(render_triangles(_with(tri, zero_area), OPTS[kernel]), clean)
    # Collinear corners are not exactly zero area after the float32 projection: such a triangle may draw
    # as a sliver line (as thin walls do), never more than that.
    collinear = np.array([[a, (a + b) / 2, b], [b, a, (a + b) / 2]], np.float32)
    img = render_triangles(_with(tri, collinear), OPTS[kernel])
    assert ((img[..., 3] > 0) != (clean[..., 3] > 0)).sum() <= 2 * 96


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_soup_of_only_degenerate_or_hostile_triangles_ends(kernel: str) -> None:
    rng = np.random.default_rng(3)
    values = np.array([np.nan, np.inf, -np.inf, 0.0, 1.0, 1e-30, 1e30, -1e30, 3e38, -3e38], np.float32)
    soup = rng.choice(values, size=(400, 3, 3)).astype(np.float32)
    try:
        img = render_triangles(soup, OPTS[kernel])
    except NoGeometryError:
        return
    assert img.shape == (96, 96, 4)


def test_random_hostile_soups_end_and_both_kernels_agree() -> None:
    rng = np.random.default_rng(11)
    tri = meshgen.rock(400)
    values = np.array([np.nan, np.inf, -np.inf, 1e30, -1e38, 1e-30, 0.0], np.float32)
    for _ in range(6):
        dirty = tri.copy()
        hit = rng.random(dirty.shape) < 0.02
        dirty[hit] = rng.choice(values, size=int(hit.sum()))
        images = []
        for kernel in KERNELS:
            try:
                images.append(render_triangles(dirty, OPTS[kernel]))
            except NoGeometryError:
                images.append(None)
        if len(images) == 2 and images[0] is not None and images[1] is not None:
            # Coverage only: shades at 1e30 scales are at float32's edge (see the huge-coordinates test).
            assert np.array_equal(images[0][..., 3] > 0, images[1][..., 3] > 0)
        else:
            assert all(img is None for img in images) or len(images) == 1
