"""The numba pass of :func:`sidecar_thumbs.render.colors.kernel_colors`: readable and packed in one pass.

A per-corner 3MF hands over 300k corner colours; the NumPy twin (:func:`~sidecar_thumbs.render.colors.readable`,
a pack, two whole-array comparisons) cost ~3.5 ms there, this pass ~0.5. It computes exactly what the twin
computes, in the same float32 operations in the same order (no fast-math, so no fused multiply-add), and
notices on the way whether every colour is the same and whether any triangle's corners differ.

Importing this module imports numba; :mod:`sidecar_thumbs.render.colors` uses its twin when that fails.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import types

__all__ = ["pack_readable"]

# The twin's constants as float32 (render/colors.py: _LUMA, LUMA_MIN, LUMA_MAX): NumPy computes in float32
# because its operands are float32 arrays and Python scalars (NEP 50); here every operand is float32 too.
_L0 = np.float32(0.2126)
_L1 = np.float32(0.7152)
_L2 = np.float32(0.0722)
_MIN = np.float32(56.0)
_MAX = np.float32(212.0)
_WHITE = np.float32(255.0)
_HALF = np.float32(0.5)
_ZERO = np.float32(0.0)


@nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _channel(v: float) -> int:
    # np.clip(v, 0, 255).astype(np.uint8): clamp, then truncate toward zero.
    return int(min(max(v, _ZERO), _WHITE))  # type: ignore[arg-type]  # float32 operands, numba types them


@nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _packed(r: int, g: int, b: int) -> int:
    """One colour made readable (the twin's arithmetic exactly) and packed ``0xRRGGBB``.

    Both moves are computed and one is selected, without branches: the loop then compiles to vector
    instructions (0.25 ms for 300k colours against 1.2 with a branch a colour, mispredicted for a
    mix of colours). The unused quotient may divide by zero (black, white): error_model "numpy" gives
    inf there instead of raising, and it is never selected."""
    fr = np.float32(r)
    fg = np.float32(g)
    fb = np.float32(b)
    y = fr * _L0 + fg * _L1 + fb * _L2
    t = (_MIN - y) / (_WHITE - y)  # toward white, for y < LUMA_MIN
    s = _MAX / y  # toward black, for y > LUMA_MAX
    dark = y < _MIN
    light = y > _MAX
    vr = (fr + (_WHITE - fr) * t + _HALF) if dark else ((fr * s + _HALF) if light else fr)
    vg = (fg + (_WHITE - fg) * t + _HALF) if dark else ((fg * s + _HALF) if light else fg)
    vb = (fb + (_WHITE - fb) * t + _HALF) if dark else ((fb * s + _HALF) if light else fb)
    return (_channel(vr) << 16) | (_channel(vg) << 8) | _channel(vb)


_RGB = types.Array(types.uint8, 1, "C", readonly=True)
_OUT = types.Tuple((types.Array(types.int32, 2, "C"), types.boolean, types.boolean))


@nb.njit(_OUT(_RGB, types.intp, types.intp), cache=True, nogil=True, error_model="numpy")
def pack_readable(rgb: np.ndarray, corners: int, stride: int) -> tuple[np.ndarray, bool, bool]:
    """``rgb`` uint8 bytes R, G, B of each colour, one colour every ``stride`` bytes (3, or 4 for the RGB
    of RGBA rows), ``corners`` colours a triangle (1 or 3) → ``(packed int32 (M // corners, corners),
    uniform, same_corners)``: every colour made readable and packed ``0xRRGGBB``; ``uniform`` when all
    are the same, ``same_corners`` when no triangle's corners differ."""
    m = (rgb.shape[0] + stride - 3) // stride
    flat = np.empty(m, np.int32)
    # No branches, no early exit: vectorised. A loop for each stride, so each has a constant one (a
    # stride read from a variable halved the speed).
    if stride == 4:
        for i in range(m):
            flat[i] = _packed(rgb[4 * i], rgb[4 * i + 1], rgb[4 * i + 2])
    else:
        for i in range(m):
            flat[i] = _packed(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2])
    out = flat.reshape((m // corners, corners))
    if m == 0:
        return out, False, True
    # The two questions in a second pass, each stopping at its first "no" (early for most models).
    uniform = True
    for i in range(1, m):
        if flat[i] != flat[0]:
            uniform = False
            break
    same_corners = True
    if corners > 1 and not uniform:
        for t in range(m // corners):
            for c in range(1, corners):
                if out[t, c] != out[t, 0]:
                    same_corners = False
                    break
            if not same_corners:
                break
    return out, uniform, same_corners
