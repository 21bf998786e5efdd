"""Triangle colours from vertex colours (mesh.vertexcolors): the numba pass against its NumPy twin."""

from __future__ import annotations

import numpy as np
import pytest

from sidecar_thumbs.mesh import vertexcolors
from sidecar_thumbs.mesh.vertexcolors import mean_vertex_rgba

needs_numba = pytest.mark.skipif(vertexcolors._load_kernel() is None, reason="the numba pass is not in use")


def _case(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    v, t = 300, 2000
    if seed % 3 == 0:  # 8-bit colours, as most PLYs store them
        vcolors = rng.integers(0, 256, (v, 3)) / 255.0
    else:  # floats, some out of 0..1 (clipped), some vertices without a colour (OBJ)
        vcolors = rng.uniform(-0.2, 1.2, (v, 3))
        vcolors[rng.random(v) < 0.1] = np.nan
        vcolors[rng.random(v) < 0.05, 1] = np.nan
    tris = rng.integers(0, v, (t, 3)).astype(np.int32 if seed % 2 else np.int64)
    base = None
    if seed % 4 >= 2:  # some triangles with their own colour (a PLY face colour, an OBJ material)
        base = np.full((t, 3), np.nan)
        own = rng.random(t) < 0.5
        base[own] = rng.uniform(0, 1, (int(own.sum()), 3))
        base[rng.random(t) < 0.05, 2] = np.nan
    return vcolors, tris, base


@needs_numba
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("vertex_first", [False, True])
def test_numba_pass_gives_the_twins_bytes(seed: int, vertex_first: bool) -> None:
    vcolors, tris, base = _case(seed)
    got = mean_vertex_rgba(vcolors, tris, base, vertex_first, use_numba=True)
    want = mean_vertex_rgba(vcolors, tris, base, vertex_first, use_numba=False)
    assert got.dtype == want.dtype == np.uint8 and got.shape == want.shape == (len(tris), 4)
    assert np.array_equal(got, want)


@needs_numba
def test_every_8_bit_mean_rounds_as_the_twin_rounds_it() -> None:
    # Every ordered triple of 8-bit grey levels (float64 sums of three quotients, then half-to-even
    # rounding: where a pass could differ by one), in slices of 65k triangles.
    grey = np.repeat((np.arange(256) / 255.0)[:, None], 3, axis=1)
    b, c = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    for a in range(0, 256, 5):
        tris = np.stack([np.full(b.size, a), b.ravel(), c.ravel()], axis=1)
        got = mean_vertex_rgba(grey, tris, None, True, use_numba=True)
        assert np.array_equal(got, mean_vertex_rgba(grey, tris, None, True, use_numba=False)), a
