"""A G-code toolpath as triangles: the extrusion moves drawn as thin boxes, so that the same renderer
and camera as our meshes show a sliced-only file as the printed object.

:class:`ToolpathScanner` feeds G-code text (whole, or block by block for binary G-code) to the scanner
kernel (:mod:`sidecar_thumbs.mesh.gcode_kernel`); :func:`toolpath_triangles` turns the segments into
boxes one layer high and one extrusion wide (8 triangles each: top, bottom and both sides, lengthened
by half a width at each end so that corners close).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sidecar_thumbs.errors import NoGeometryError
from sidecar_thumbs.mesh import gcode_segments as gs
from sidecar_thumbs.mesh.gcode_kernel import scan
from sidecar_thumbs.mesh.gcode_segments import SEGMENT_COLUMNS
from sidecar_thumbs.mesh.jit import COMPILED

__all__ = ["Toolpath", "ToolpathScanner", "toolpath_triangles"]

FILAMENT_AREA = np.pi * 1.75**2 / 4  # mm²; the common filament (2.85 mm only changes the width estimate)
MAX_CARRY = 1 << 20  # a "line" longer than 1 MiB across a block boundary is junk, not G-code
DEFAULT_LAYER = 0.2


@dataclass(frozen=True, eq=False)
class Toolpath:
    """The extrusion segments of a G-code file.

    Attributes:
        segments: float32 ``(N, 6)``: start xyz, end xyz in millimetres, in print order.
        filament_per_mm: filament fed per millimetre of path (E over path length), 0 if unknown.
        layer_stride: 1 when every layer is kept, k when every k-th one is (a huge file).
        stride: 1 when every segment of the kept layers is kept, k when every k-th one is.
        dropped: extruding moves left out for absurd or non-finite coordinates.
    """

    segments: np.ndarray
    filament_per_mm: float
    layer_stride: int
    stride: int
    dropped: int


class ToolpathScanner:
    """Scan G-code text in pieces (lines may straddle pieces) into a :class:`Toolpath`."""

    def __init__(self, max_segments: int, relative_e: bool = False) -> None:
        self.max_segments = max(16, int(max_segments))
        self.state = gs.new_state(relative_e)
        # Full at max_segments: then whole layers (or every other segment) are dropped, see gcode_segments.
        self.segs = np.empty((self.max_segments, SEGMENT_COLUMNS), np.float32)
        self._carry = b""

    def _scan(self, text: bytes | memoryview) -> None:
        # numba takes a uint8 array (a view, no copy); plain Python indexes bytes fastest.
        buf = np.frombuffer(text, np.uint8) if COMPILED else memoryview(text)
        scan(buf, self.state, self.segs)

    def feed(self, text: bytes) -> None:
        """Scan every complete line of ``carry + text``; keep the unfinished last line for later."""
        if self._carry:
            text = self._carry + text
        cut = max(text.rfind(b"\n"), text.rfind(b"\r")) + 1
        if cut:
            self._scan(memoryview(text)[:cut])
        self._carry = text[cut:] if len(text) - cut <= MAX_CARRY else b""

    def finish(self) -> Toolpath:
        """Scan the last line and return the toolpath, evenly sampled down to ``max_segments``."""
        if self._carry:
            self._scan(self._carry + b"\n")
            self._carry = b""
        gs.flush(self.state, self.segs)
        segs = self.segs[: int(self.state[gs.S_KEPT]), :6]
        length = float(self.state[gs.S_SUM_LEN])
        return Toolpath(
            segments=np.ascontiguousarray(segs),
            filament_per_mm=float(self.state[gs.S_SUM_E]) / length if length > 0 else 0.0,
            layer_stride=int(self.state[gs.S_LAYER_STRIDE]),
            stride=int(self.state[gs.S_STRIDE]),
            dropped=int(self.state[gs.S_DROPPED]),
        )


def scan_toolpath(text: bytes, max_segments: int) -> Toolpath:
    """The toolpath of a whole G-code text.

    A file that never says whether E is absolute or relative (no M82/M83/G90/G91: hand-written demos,
    old tools) is read as Marlin starts, absolute; when most of its positive E words then extrude
    nothing, they were meant as relative amounts, and the file is read again that way.
    """
    scanner = ToolpathScanner(max_segments)
    scanner.feed(text)
    path = scanner.finish()
    state = scanner.state
    if state[gs.S_E_SET] == 0.0 and 2 * state[gs.S_EXTRUDING] < state[gs.S_E_WORDS]:
        scanner = ToolpathScanner(max_segments, relative_e=True)
        scanner.feed(text)
        path = scanner.finish()
    return path


def layer_height(segments: np.ndarray, filament_per_mm: float, layer_stride: int = 1) -> tuple[float, bool]:
    """``(height, layered)``: the typical step between the print's Z levels (divided by
    ``layer_stride`` when only every k-th layer was kept) and True; or for a spiral (vase mode, no
    repeated levels, where a "layer" the sampler counted is a single segment) the height that the
    filament volume gives at a usual 2.25:1 line shape, and False."""
    z = np.round(segments[:, 2].astype(np.float64), 3)
    levels = np.unique(z)
    if 3 <= len(levels) <= len(z) // 4:
        return float(np.clip(np.median(np.diff(levels)) / layer_stride, 0.04, 1.0)), True
    if filament_per_mm > 0:
        return float(np.clip(np.sqrt(filament_per_mm * FILAMENT_AREA / 2.25), 0.05, 0.6)), False
    return DEFAULT_LAYER, False


def without_far_first_layer(segments: np.ndarray, height: float) -> np.ndarray:
    """Drop the purge and prime lines printed along the bed's edge before the object (and a skirt
    far from it): they would stretch the frame and shrink the object to a speck.

    A candidate is a run of connected segments on the lowest few layers (MMU printers purge a little
    above the first layer), thin (a line or two: at most 5 mm across in X or in Y, so a small flat
    part standing apart is kept), whose segments lie mostly outside the box around the bulk of the
    print (2nd to 98th percentile of the segment midpoints, with a margin). Runs go whole or not at all.
    """
    if len(segments) < 20:
        return segments
    mid = (segments[:, 0:2] + segments[:, 3:5]) / 2
    lo, hi = np.percentile(mid, 2, axis=0), np.percentile(mid, 98, axis=0)
    margin = 3.0 + 0.15 * float((hi - lo).max())
    lo, hi = lo - margin, hi + margin

    def outside(xy: np.ndarray) -> np.ndarray:
        return np.any((xy < lo) | (xy > hi), axis=1)

    far = outside(segments[:, 0:2]) & outside(segments[:, 3:5])
    low = np.minimum(segments[:, 2], segments[:, 5]) <= segments[:, 2].min() + 2.5 * height
    breaks = np.ones(len(segments), bool)
    breaks[1:] = np.any(segments[1:, 0:3] != segments[:-1, 3:6], axis=1)
    run = np.cumsum(breaks) - 1
    far_share = np.bincount(run, weights=far) / np.bincount(run)
    starts = np.flatnonzero(breaks)
    extent = np.full(len(starts), np.inf)
    for axis in (0, 1):
        ends = np.maximum(segments[:, axis], segments[:, axis + 3])
        begins = np.minimum(segments[:, axis], segments[:, axis + 3])
        extent = np.minimum(extent, np.maximum.reduceat(ends, starts) - np.minimum.reduceat(begins, starts))
    # A purge may start with a diagonal plunge from high above: the run counts as low if any part is.
    drop = (np.bincount(run, weights=low) > 0)[run] & (far_share[run] > 0.5) & (extent[run] <= 5.0)
    return segments if drop.all() else segments[~drop]


# Corners of a box per segment: a/b = start/end, L/R = left/right of the direction, t/b = top/bottom.
_A_LT, _A_RT, _A_LB, _A_RB, _B_LT, _B_RT, _B_LB, _B_RB = range(8)
# (at the end point, to the left (+1) or right (-1), at the bottom) for each corner, in _A_LT.. order.
_CORNERS = tuple((k >= 4, 1 if k % 2 == 0 else -1, (k // 2) % 2) for k in range(8))
_FACES = np.array(
    [
        [_A_LT, _A_RT, _B_RT],  # top
        [_A_LT, _B_RT, _B_LT],
        [_A_LB, _B_RB, _A_RB],  # bottom
        [_A_LB, _B_LB, _B_RB],
        [_A_LT, _B_LT, _B_LB],  # left side
        [_A_LT, _B_LB, _A_LB],
        [_A_RT, _B_RB, _B_RT],  # right side
        [_A_RT, _A_RB, _B_RB],
    ],
    dtype=np.intp,
)


def toolpath_triangles(path: Toolpath) -> np.ndarray:
    """float32 ``(8 N, 3, 3)`` triangles: each segment as a box one line wide and one layer high, its
    top at the nozzle height (as many layers high when only every k-th layer was kept).

    Raises:
        NoGeometryError: the G-code extrudes nothing (a CNC or laser program, or only a picture).
    """
    segs = path.segments.astype(np.float64)
    if len(segs) == 0:
        raise NoGeometryError("G-code has no extruding moves: nothing printed to draw")
    height, layered = layer_height(segs, path.filament_per_mm, path.layer_stride)
    # A kept layer stands for itself and the stride - 1 dropped above it: its boxes grow upwards.
    stride = path.layer_stride if layered else 1
    segs = without_far_first_layer(segs, height * stride)
    width = height * 2.25
    if path.filament_per_mm > 0:
        # Slic3r's flow model: a line is a rectangle with round sides, area = (w - h) h + pi (h / 2)^2.
        area = path.filament_per_mm * FILAMENT_AREA
        width = float(np.clip(area / height + height * (1 - np.pi / 4), 1.2 * height, 4.0 * height))
    a, b = segs[:, :3], segs[:, 3:]
    d = b[:, :2] - a[:, :2]
    unit = d / np.hypot(d[:, 0], d[:, 1])[:, None]  # the kernel keeps only segments that move sideways
    a[:, :2] -= unit * (width / 2)  # lengthen by half a width at both ends: corners close
    b[:, :2] += unit * (width / 2)
    side = np.empty((len(segs), 2))
    side[:, 0] = -unit[:, 1] * (width / 2)
    side[:, 1] = unit[:, 0] * (width / 2)
    corners = np.empty((len(segs), 8, 3), np.float32)
    top = (stride - 1) * height
    tall = stride * height
    for k, (at_end, sign, below) in enumerate(_CORNERS):
        point = b if at_end else a
        corners[:, k, :2] = point[:, :2] + sign * side
        corners[:, k, 2] = point[:, 2] + top - below * tall
    return np.ascontiguousarray(corners[:, _FACES].reshape(-1, 3, 3))
