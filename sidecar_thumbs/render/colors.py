"""Model colours as the kernels take them: one packed ``0xRRGGBB`` int32 per triangle, made readable.

A model's own colours are drawn with our light, camera and outline, like the default colour. Two
kinds of colour would lose the shape: near-black (shading multiplies it, so every face is black on a
dark page) and near-white (the key light saturates it, so faces merge on a white page). Both are
moved into a band of luminance where shading still shows, keeping their hue: dark colours are mixed
toward white, light ones toward black, just enough to reach the band.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from sidecar_thumbs import numba_cache

__all__ = ["LUMA_MAX", "LUMA_MIN", "kernel_colors", "pack_colors", "readable"]

# Rec. 709 luma weights, on 0..255 channels.
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
# The band of base luminance (0..255) in which flat shading keeps faces apart on light and dark pages.
# Measured by eye on the contact sheet: black PLA at 56 reads as dark grey with visible facets; white
# at 212 keeps its lit faces below saturation under the key light.
LUMA_MIN = 56.0
LUMA_MAX = 212.0


def readable(rgb: np.ndarray) -> np.ndarray:
    """Colours moved into the readable luminance band, hue kept.

    Args:
        rgb: uint8 (N, 3).

    Returns:
        uint8 (N, 3): colours already inside the band are returned unchanged.
    """
    # Three scaled columns, not ``rgb @ _LUMA``: a matrix product goes to BLAS, which runs a 300k-row
    # product on every core with spinning threads (a per-corner 3MF cost twice its wall time in CPU, and
    # a pool's workers would fight over the cores), and rounds differently on macOS's Accelerate.
    f = rgb.astype(np.float32)
    y = f[:, 0] * _LUMA[0] + f[:, 1] * _LUMA[1] + f[:, 2] * _LUMA[2]
    dark = np.flatnonzero(y < LUMA_MIN)
    light = np.flatnonzero(y > LUMA_MAX)
    if len(dark) == 0 and len(light) == 0:
        return rgb  # the common case: nothing to move, no copy
    # Index arrays and take/put rather than boolean masks: a per-corner model has 300k colours for 100k
    # triangles, and mask indexing of the (N, 3) rows cost 5 of the 7 ms this took (bench/colors.py).
    out = rgb.copy()
    if len(dark):
        # c + (255 - c) * t reaches luminance LUMA_MIN when t = (LUMA_MIN - y) / (255 - y).
        yd = y[dark]
        c = np.take(rgb, dark, axis=0).astype(np.float32)
        t = ((LUMA_MIN - yd) / (255.0 - yd))[:, None]
        out[dark] = np.clip(c + (255.0 - c) * t + 0.5, 0, 255).astype(np.uint8)
    if len(light):
        c = np.take(rgb, light, axis=0).astype(np.float32)
        out[light] = np.clip(c * (LUMA_MAX / y[light])[:, None] + 0.5, 0, 255).astype(np.uint8)
    return out


def _corners(rgb: np.ndarray) -> int:
    if rgb.ndim == 2 and rgb.shape[1] == 3:
        return 1
    if rgb.ndim == 3 and rgb.shape[1:] == (3, 3):
        return 3
    raise ValueError(f"colours must have shape (N, 3) or (N, 3, 3), got {rgb.shape}")


def pack_colors(rgb: np.ndarray) -> np.ndarray:
    """Colours → readable, packed int32 ``0xRRGGBB``, what the kernels read: (N, 1) for one colour per
    triangle, (N, 3) for one per corner (blended across the triangle). NumPy only: the twin of the
    numba pass in :func:`kernel_colors`.

    Args:
        rgb: uint8 (N, 3) one colour per triangle, or (N, 3, 3) one per corner.
    """
    corners = _corners(rgb)
    r = readable(np.asarray(rgb, dtype=np.uint8).reshape(-1, 3))
    packed = (r[:, 0].astype(np.int32) << 16) | (r[:, 1].astype(np.int32) << 8) | r[:, 2]
    return packed.reshape(-1, corners)


def _load_kernel() -> ModuleType | None:
    return numba_cache.import_kernel("sidecar_thumbs.render.colors_numba")


def kernel_colors(
    rgb: np.ndarray, use_numba: bool | None = None
) -> tuple[np.ndarray | None, tuple[int, int, int] | None]:
    """What :func:`~sidecar_thumbs.render.render_triangles` hands its kernel for a model's colours.

    Args:
        rgb: uint8 (N, 3) one colour per triangle, or (N, 3, 3) one per corner; any strides.
        use_numba: None takes the numba pass when it is importable; False the NumPy twin (the same values).

    Returns:
        ``(None, colour)`` when every colour comes out the same (a single-filament project, one base
        material: drawn as the base colour, at no cost over an uncoloured model); else ``(packed,
        None)``, :func:`pack_colors`'s values, (N, 1) also when per-corner colours never differ within
        a triangle (no blending).
    """
    corners = _corners(rgb)
    if len(rgb) and rgb.strides[0] == 0 and (corners == 1 or rgb.strides[1] == 0):
        rgb = rgb[:1, 0] if corners == 3 else rgb[:1]  # a broadcast of one colour (a base material)
        corners = 1
    kernel = numba_cache.chosen_kernel(_load_kernel(), use_numba)
    if kernel is not None:
        if corners == 1 and rgb.dtype == np.uint8 and rgb.strides == (4, 1) and len(rgb):
            # The RGB columns of RGBA rows (OBJ, PLY, AMF, STEP): read in place, alpha skipped (all the
            # bytes from the first colour to the last lie in the one buffer). Copying them out cost 0.3 ms
            # for 100k triangles, the pack itself 0.1.
            flat, stride = np.lib.stride_tricks.as_strided(rgb, (4 * len(rgb) - 1,), (1,), writeable=False), 4
        else:  # a view of the 3MF reader's arrays, a copy of anything else
            flat, stride = np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1), 3
        packed, uniform, same_corners = kernel.pack_readable(flat, corners, stride)
    else:
        packed = pack_colors(rgb)
        uniform = bool((packed == packed[0, 0]).all()) if len(packed) else False
        same_corners = corners == 1 or bool((packed[:, :1] == packed[:, 1:]).all())
    if uniform:
        first = int(packed[0, 0])
        return None, ((first >> 16) & 255, (first >> 8) & 255, first & 255)
    return (packed[:, :1] if same_corners else packed), None
