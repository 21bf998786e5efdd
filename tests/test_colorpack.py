"""The numba colour pack (render.colors_numba) against its NumPy twin: the same int32 for every colour."""

from __future__ import annotations

import numpy as np
import pytest

from sidecar_thumbs.render import colors
from sidecar_thumbs.render.colors import kernel_colors, pack_colors

needs_numba = pytest.mark.skipif(colors._load_kernel() is None, reason="the numba pass is not in use")


@needs_numba
def test_every_rgb_colour_packs_as_the_twin_packs_it() -> None:
    # All 16.7M colours (float32 rounding near the band's edges is where a pass could differ): 0.5 s.
    kernel = colors._load_kernel()
    assert kernel is not None
    step = 1 << 21
    for start in range(0, 1 << 24, step):
        v = np.arange(start, start + step, dtype=np.uint32)
        rgb = np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], axis=1).astype(np.uint8)
        got, _, _ = kernel.pack_readable(rgb.reshape(-1), 1, 3)
        want = pack_colors(rgb)
        assert np.array_equal(got, want), f"colours from {start:06X} differ"
        rgba = np.concatenate([rgb, np.full((step, 1), 7, np.uint8)], axis=1)  # four bytes a colour
        got, _, _ = kernel.pack_readable(rgba.reshape(-1)[:-1], 1, 4)
        assert np.array_equal(got, want), f"colours from {start:06X} differ as RGBA"


def _cases() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    palette = rng.integers(0, 256, (40, 3)).astype(np.uint8)
    per_tri = palette[rng.integers(0, 40, 500)]
    per_corner = palette[rng.integers(0, 40, (500, 3))]
    same_corners = np.repeat(per_tri[:, None, :], 3, axis=1)
    one_diff = same_corners.copy()
    one_diff[499, 2] = (1, 2, 3)
    rgba = np.concatenate([per_tri, np.full((500, 1), 255, np.uint8)], axis=1)
    return [
        per_tri,
        per_corner,
        same_corners,  # corners that never differ: one colour a triangle
        one_diff,  # the last triangle's last corner differs: blended
        np.full((300, 3), (10, 10, 10), np.uint8),  # one (dark) colour for all: the base colour
        np.full((300, 3, 3), 250, np.uint8),  # one (light) colour at every corner
        rgba[:, :3],  # RGB columns of an RGBA array (OBJ, PLY, AMF): not contiguous
        per_tri[:1],
        np.zeros((0, 3), np.uint8),
        np.broadcast_to(per_tri[:1], (500, 3)),  # one base material for the whole object: not copied
        np.broadcast_to(per_tri[:1, None, :], (500, 3, 3)),
        np.broadcast_to(per_corner[:1], (500, 3, 3)),  # one triangle's differing corners, repeated
    ]


@needs_numba
@pytest.mark.parametrize("case", range(len(_cases())))
def test_numba_and_numpy_hand_the_kernel_the_same_colours(case: int) -> None:
    rgb = _cases()[case]
    got_packed, got_single = kernel_colors(rgb, use_numba=True)
    want_packed, want_single = kernel_colors(rgb, use_numba=False)
    assert got_single == want_single
    if want_packed is None:
        assert got_packed is None
        return
    assert got_packed is not None
    assert got_packed.dtype == want_packed.dtype == np.int32
    assert got_packed.shape == want_packed.shape
    assert np.array_equal(got_packed, want_packed)


def test_one_colour_becomes_the_base_colour_and_equal_corners_one_colour_a_triangle() -> None:
    cases = _cases()
    first = int(pack_colors(cases[4][:1])[0, 0])  # (10, 10, 10) lifted into the readable band
    assert kernel_colors(cases[4]) == (None, ((first >> 16) & 255, (first >> 8) & 255, first & 255))
    assert first != 0x0A0A0A
    packed, single = kernel_colors(cases[2])
    assert single is None and packed is not None and packed.shape == (500, 1)
    packed, _ = kernel_colors(cases[3])
    assert packed is not None and packed.shape == (500, 3)
    with pytest.raises(ValueError, match="shape"):
        kernel_colors(np.zeros((4, 4), np.uint8))
