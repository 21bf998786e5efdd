"""The look of a thumbnail, shared by every kernel: view direction, framing, lights, colour.

Both kernels receive the same float32 parameters computed here, so they differ only in the order of
their floating-point operations (which keeps their images near-identical).

Coordinate conventions:

* model space: millimetres, Z up (the 3D-printing convention);
* view space: rows of :func:`view_basis` — x right, y up, z toward the camera;
* screen space (what kernels rasterise in): ``X`` right and ``Y`` down in *samples* (the supersampled
  grid, sample centres at ``k + 0.5``), ``Z`` = view depth scaled by the same factor, larger = nearer.
  Working in sample units keeps normals and depths well-scaled whatever the model's size (1e-6 mm parts
  and 1e7 mm parts both become a few hundred samples wide).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Three-quarter view from the front-left, looking slightly down: the view people expect from slicers.
AZIMUTH_DEG = -60.0
ELEVATION_DEG = 28.0

# Lights in view space (x right, y up, z toward camera): a key light from the upper left and a weak
# fill from the lower right, so no face that the camera sees is ever flat black.
KEY_LIGHT = (-0.45, 0.55, 0.70)
FILL_LIGHT = (0.6, -0.2, 0.4)
AMBIENT = 0.25
KEY = 0.78
FILL = 0.18
# The far side of the model is darkened by up to this fraction: gives depth without perspective.
DEPTH_CUE = 0.30
# Covered samples next to an uncovered one (the silhouette) or across a depth jump are darkened by
# this fraction. After the supersample box filter that is a soft half-pixel outline, which keeps the
# shape readable at 128 px, e.g. a part against a similar-brightness background in a file browser.
EDGE_DARKEN = 0.45
# A depth jump: the second difference of depth along a row/column exceeds this many samples. A plane
# has a second difference of zero whatever its slope, so only occlusion edges (one part in front of
# another) and sharp creases are outlined, never smoothly curved or steep surfaces.
EDGE_DEPTH_JUMP = 4.0

# Sentinel for "no sample here" in depth buffers: finite, so fast-math code may compare against it.
EMPTY_DEPTH = np.float32(-3.0e38)
# A coordinate counts as finite when -FINITE_MAX < v < FINITE_MAX (an ordered comparison is false for
# NaN and inf, and fast-math code cannot fold it away). Both kernels use this one test.
FINITE_MAX = 3.0e38
# Screen corners (in samples) beyond +-GRID_MAX drop their triangle before any loop bound is computed
# from them: every framed corner lies within the screen (at most 4096 * 4 samples), and 2**24 keeps
# float32 -> int conversions exact.
GRID_MAX = float(2**24)


def _unit(v: tuple[float, float, float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def view_basis(azimuth_deg: float = AZIMUTH_DEG, elevation_deg: float = ELEVATION_DEG) -> np.ndarray:
    """The orthographic camera as a rotation.

    Args:
        azimuth_deg: Camera direction around the Z axis, degrees (0 = looking from +X).
        elevation_deg: Camera height above the XY plane, degrees.

    Returns:
        (3, 3) float64 array whose rows are right, up and toward-camera unit vectors in model space.
    """
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    toward = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    right = np.cross(-toward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, -toward)
    return np.stack([right, up, toward])


VIEW = view_basis()
# Rows (right, up) in float32: what kernels project with to measure the model's extent on screen.
VIEW_XY = np.ascontiguousarray(VIEW[:2], dtype=np.float32)
# Lights as rows (key, fill) in view space, float32 like everything kernels read.
LIGHTS = np.stack([_unit(KEY_LIGHT), _unit(FILL_LIGHT)]).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Shading:
    """Everything a kernel needs besides geometry and the screen transform (float32 where read per sample)."""

    base_rgb: np.ndarray  # (3,) float32, 0..255
    lights: np.ndarray  # (2, 3) float32, view space
    ambient: float = AMBIENT
    key: float = KEY
    fill: float = FILL
    depth_cue: float = DEPTH_CUE
    edge_darken: float = EDGE_DARKEN
    edge_depth_jump: float = EDGE_DEPTH_JUMP


def shading_for(color: tuple[int, int, int]) -> Shading:
    """Shading constants for a base colour given as 0..255 RGB."""
    return Shading(base_rgb=np.asarray(color, dtype=np.float32), lights=LIGHTS)


@dataclass(frozen=True, eq=False)
class ScreenTransform:
    """Model space → screen space: ``screen = matrix @ (v - origin) + offset``.

    ``origin`` is a vertex of the model itself: subtracting it first keeps float32 exact for models far
    from the coordinate origin (e.g. at 1e7 mm with 1 mm features).
    """

    matrix: np.ndarray  # (3, 3) float32: rows scale*right, -scale*up, scale*toward
    offset: np.ndarray  # (3,) float32: (ox, oy, 0)
    origin: np.ndarray  # (3,) float32


def fit_to_screen(
    extents: tuple[float, float, float, float],
    origin: np.ndarray,
    width: int,
    height: int,
    margin: float,
) -> ScreenTransform:
    """Orthographic auto-framing: the exact fit of the projected vertices, centred, with a margin.

    Args:
        extents: (xmin, xmax, ymin, ymax) of ``VIEW_XY @ (v - origin)`` over all drawable vertices.
        origin: The vertex subtracted before projecting.
        width: Screen width in samples.
        height: Screen height in samples.
        margin: Fraction of the smaller screen side left empty on each side.

    Returns:
        The transform kernels rasterise with.
    """
    xlo, xhi, ylo, yhi = (float(e) for e in extents)
    span = max(xhi - xlo, yhi - ylo)
    # A single point (span 0) or absurd extents still get a finite transform: everything lands in the
    # centre and the kernels drop the zero-area triangles instead of dividing by zero.
    scale = min(width, height) * (1.0 - 2.0 * margin) / span if 1e-30 < span < 1e38 else 1.0
    cx = 0.5 * (xlo + xhi) if math.isfinite(xlo + xhi) else 0.0
    cy = 0.5 * (ylo + yhi) if math.isfinite(ylo + yhi) else 0.0
    right, up, toward = VIEW
    matrix = np.stack([right * scale, -up * scale, toward * scale]).astype(np.float32)
    offset = np.array([0.5 * width - cx * scale, 0.5 * height + cy * scale, 0.0], dtype=np.float32)
    return ScreenTransform(matrix=matrix, offset=offset, origin=np.asarray(origin, dtype=np.float32))


def sample_window(
    xf: ScreenTransform, extents: tuple[float, float, float, float], width: int, height: int, ss: int
) -> tuple[int, int, int, int]:
    """The part of the sample grid the model can touch, as ``(x0, y0, x1, y1)`` (end exclusive).

    Kernels allocate, clear and resolve only this window instead of the whole supersampled screen (a
    small part's 512² buffer cost more than drawing it). Every write of a kernel lies in the screen box
    of some triangle's corners, so a window that holds all projected corners (two samples of slack for
    the difference in rounding between ``extents`` and the kernels' own projection) changes no sample;
    it is aligned to whole pixels (``ss`` samples) so the box filter sees the same blocks, and samples
    outside it are empty, so the outline test at its border sees what it saw on the full screen.

    Args:
        xf: The transform from :func:`fit_to_screen` for these ``extents``.
        extents: (xmin, xmax, ymin, ymax) of ``VIEW_XY @ (v - origin)`` over the drawable vertices.
        width: Screen width in samples (a multiple of ``ss``).
        height: Screen height in samples (a multiple of ``ss``).
        ss: Samples per pixel along each axis.
    """
    xlo, xhi, ylo, yhi = (float(e) for e in extents)
    scale = math.hypot(*(float(c) for c in xf.matrix[0]))
    ox, oy = float(xf.offset[0]), float(xf.offset[1])
    # Screen X = scale * x + ox; screen Y = oy - scale * y (Y points down).
    bounds = (scale * xlo + ox, scale * xhi + ox, oy - scale * yhi, oy - scale * ylo)
    if not all(math.isfinite(b) and abs(b) < 1e9 for b in bounds):
        return 0, 0, width, height
    slack = 2.0 + 1e-5 * max(width, height)
    x0 = max(0, math.floor((bounds[0] - slack) / ss) * ss)
    x1 = min(width, math.ceil((bounds[1] + slack) / ss) * ss)
    y0 = max(0, math.floor((bounds[2] - slack) / ss) * ss)
    y1 = min(height, math.ceil((bounds[3] + slack) / ss) * ss)
    if x1 <= x0 or y1 <= y0:
        return 0, 0, width, height
    return x0, y0, x1, y1
