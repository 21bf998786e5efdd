"""The default kernel: a single-threaded numba z-buffer rasteriser (parallelism is one worker per core).

Compiled passes over the data, each written for speed on ~1M sub-pixel triangles:

1. ``_extents``: project every vertex once (x, y only) for the exact framing, and sum the enclosed
   volume, whose sign says which faces of a closed mesh face the camera (and count the finite triangles
   of a soup nobody has checked: a binary STL's records); ``numba_indexed._extents_indexed`` does the
   same for an indexed mesh, looking at each vertex once and at the faces through their indices;
2. ``numba_raster._raster``: project again straight into registers (cheaper than writing and re-reading
   an SoA copy: the pass is bound by reading the triangles, not by the nine multiplies) and draw each
   triangle as one of three kinds: *sub-sample* (at most one sample centre in its box: one test or a
   centroid splat, shaded only if it wins the depth test), *sliver* (thinner than half a sample: drawn
   as a line so thin walls stay continuous) and *area* (row by row over its box, from the solved first
   covered sample to the last). Front faces are drawn first; the back faces follow only over the
   tiles where they may still win, which gives the same buffers as one in-order pass over every face
   (for any soup) at about half the work for a closed mesh;
3. ``numba_resolve._resolve``: depth cue, outline, ss x ss box filter into straight-alpha RGBA.

Buffers cover only the part of the sample grid the model can touch (``camera.sample_window``) and are
reused from one render to the next (per thread).

The numpy kernel implements the same three kinds with the same float32 formulas; keep them in step.

Importing this module imports numba; callers import it lazily (numba is missing on Intel Macs).
Compiled code is cached (``cache=True``) in the per-user folder that :mod:`sidecar_thumbs.numba_cache`
chooses, or wherever ``NUMBA_CACHE_DIR`` points.
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit, types

from sidecar_thumbs.render.camera import EMPTY_DEPTH, FINITE_MAX, VIEW_XY, ScreenTransform, Shading
from sidecar_thumbs.render.numba_backfaces import TILE, _tile_far, _visible
from sidecar_thumbs.render.numba_indexed import BAD_INDEX, _extents_indexed, _first_finite_face
from sidecar_thumbs.render.numba_jit import _F32, _JIT, _MAT, _NO_COLORS, _NO_FACES, _NO_SOUP, _NO_VERTS, _SOUP, _VEC
from sidecar_thumbs.render.numba_raster import _raster, _raster_indexed
from sidecar_thumbs.render.numba_resolve import _resolve

_SIG_FIRST = types.int64(_SOUP)
_SIG_EXTENTS = types.Tuple((_F32, _F32, _F32, _F32, types.int64, types.int64, types.int64))(
    _SOUP, _VEC, _MAT, types.boolean
)
_NONE = np.zeros(0, dtype=np.int32)
_NO_TILES = np.zeros((0, 0), dtype=np.float32)
_NO_BOX = np.zeros((0, 5), dtype=np.float32)


@njit(_SIG_FIRST, **_JIT)
def _first_finite(t: np.ndarray) -> int:
    big = np.float32(FINITE_MAX)
    for i in range(t.shape[0]):
        ok = True
        for k in range(9):
            v = t[i, k]
            ok = ok and -big < v < big  # false for NaN and inf
        if ok:
            return i
    return -1


@njit(_SIG_EXTENTS, **_JIT)
def _extents(
    t: np.ndarray, origin: np.ndarray, a: np.ndarray, volume: bool
) -> tuple[np.float32, np.float32, np.float32, np.float32, int, int, int]:
    """Framing extents, the drawable count, which faces to draw first: the sign of ``mz`` that a
    back face has when the winding encloses a clear volume, else 0 (one pass over every face; always 0
    without ``volume``: the caller knows the winding, and the volume costs a third of this pass); and the
    count of triangles whose nine coordinates are finite (``np.isfinite``), so that a loader may hand
    over a soup it has not checked (a binary STL's records) and still learn how many triangles it holds.

    The choice only decides the speed, never the picture: back faces are drawn after the front faces
    wherever they may show (numba_raster._raster), so an open, inconsistently wound or inside-out
    mesh comes out the same, only without the saving.
    """
    ox, oy, oz = origin[0], origin[1], origin[2]
    a00, a01, a02 = a[0, 0], a[0, 1], a[0, 2]
    a10, a11, a12 = a[1, 0], a[1, 1], a[1, 2]
    big = np.float32(FINITE_MAX)
    fmax = np.float32(np.finfo(np.float32).max)
    xlo, xhi, ylo, yhi = big, -big, big, -big
    n = 0
    finite = 0
    vol, absvol = 0.0, 0.0
    for i in range(t.shape[0]):
        dx0, dy0, dz0 = t[i, 0] - ox, t[i, 1] - oy, t[i, 2] - oz
        dx1, dy1, dz1 = t[i, 3] - ox, t[i, 4] - oy, t[i, 5] - oz
        dx2, dy2, dz2 = t[i, 6] - ox, t[i, 7] - oy, t[i, 8] - oz
        x0 = a00 * dx0 + a01 * dy0 + a02 * dz0
        x1 = a00 * dx1 + a01 * dy1 + a02 * dz1
        x2 = a00 * dx2 + a01 * dy2 + a02 * dz2
        y0 = a10 * dx0 + a11 * dy0 + a12 * dz0
        y1 = a10 * dx1 + a11 * dy1 + a12 * dz1
        y2 = a10 * dx2 + a11 * dy2 + a12 * dz2
        if not (
            -big < x0 < big
            and -big < x1 < big
            and -big < x2 < big
            and -big < y0 < big
            and -big < y1 < big
            and -big < y2 < big
        ):  # NaN/inf vertex (or overflow): not drawable
            # A drawable triangle is finite (a NaN or inf coordinate makes x or y NaN or inf), so only
            # these are tested one by one for the finite count.
            ok = True
            for k in range(9):
                ok &= abs(t[i, k]) <= fmax  # false for NaN and inf: np.isfinite
            finite += ok
            continue
        if volume:  # loop-invariant: LLVM compiles the loop once with and once without it
            det = float(dx0 * (dy1 * dz2 - dz1 * dy2) + dy0 * (dz1 * dx2 - dx1 * dz2) + dz0 * (dx1 * dy2 - dy1 * dx2))
            vol += det
            absvol += abs(det)
        xlo = min(xlo, x0, x1, x2)
        xhi = max(xhi, x0, x1, x2)
        ylo = min(ylo, y0, y1, y2)
        yhi = max(yhi, y0, y1, y2)
        n += 1
    # A closed mesh wound outward has a positive volume, and its front faces have mz < 0 (screen Y
    # points down). No clear volume (a flat or two-sided sheet, a mix of windings): one pass.
    back = 0
    if abs(vol) > 1e-3 * absvol:
        back = 1 if vol > 0.0 else -1
    return xlo, xhi, ylo, yhi, n, back, n + finite


_SCRATCH = threading.local()
_SCRATCH_KEEP = 1 << 22  # items: 16 MB of float32, a 1024 px thumbnail at 2x2


def _scratch(name: str, n: int, dtype: type) -> np.ndarray:
    """A per-thread buffer of at least ``n`` items, reused from one render to the next: a fresh 1 MB
    buffer per file cost more in page faults than clearing it (a small model's whole render is ~1 ms)."""
    pool: dict[str, np.ndarray] = _SCRATCH.__dict__.setdefault("pool", {})
    buf = pool.get(name)
    if buf is None or buf.shape[0] < n:
        buf = np.empty(max(n, 1), dtype=dtype)
        if n <= _SCRATCH_KEEP:  # a rare huge render (4096 px at 4x4) does not pin its buffers
            pool[name] = buf
    return buf[:n]


def render(
    triangles: np.ndarray,
    screen_size: int,
    supersample: int,
    margin: float,
    shading: Shading,
    colors: np.ndarray | None = None,
    cull: bool = True,
    faces: np.ndarray | None = None,
    winding: int = 0,
) -> np.ndarray | None:
    """:func:`render_and_count` without the count."""
    return render_and_count(triangles, screen_size, supersample, margin, shading, colors, cull, faces, winding)[0]


def render_and_count(
    triangles: np.ndarray,
    screen_size: int,
    supersample: int,
    margin: float,
    shading: Shading,
    colors: np.ndarray | None = None,
    cull: bool = True,
    faces: np.ndarray | None = None,
    winding: int = 0,
) -> tuple[np.ndarray | None, int]:
    """Render a float32 triangle soup, or an indexed mesh; ``None`` when no triangle is drawable. With
    it, for a soup, the number of triangles with nine finite coordinates (-1 when nothing is drawable,
    or for an indexed mesh: not counted).

    Args:
        triangles: float32 (N, 9) in model space (corner-major xyz), any strides; or, with ``faces``,
            the vertices: float32 C-contiguous (V, 3).
        screen_size: Output width and height in pixels.
        supersample: Samples per pixel along each axis.
        margin: Framing margin (fraction of the side).
        shading: Lights and colour.
        colors: packed 0xRRGGBB int32 drawn instead of the base colour: (N, 1) per triangle, or (N, 3) per
            corner (blended across the triangle); None for the base colour.
        cull: Draw front faces first and then back faces only where they may show (the same picture;
            for a closed mesh about half the work); False draws every face in one pass (tests compare).
        faces: int32 C-contiguous (N, 3) indices into ``triangles`` (the vertices), or None for a soup.
            The picture is the same as for the soup ``vertices[faces]``, to the last bit.
        winding: 1 when the loader knows the faces are wound outward (the rule of 3MF and STL), -1
            inward (a 3MF mirrored by its placement), 0 unknown: the enclosed volume's sign decides. Only
            the speed depends on it: a mesh wound otherwise draws the same picture, more slowly.

    Returns:
        RGBA uint8 (screen_size, screen_size, 4), straight alpha, or ``None`` if nothing is drawable; and
        the count.

    Raises:
        ValueError: A face index outside the vertex array.
    """
    from sidecar_thumbs.render.camera import fit_to_screen, sample_window

    if faces is not None and faces.shape[0] == 0:
        return None, -1
    finite = -1
    if faces is None:
        t, verts, f = triangles, _NO_VERTS, _NO_FACES
        first = _first_finite(t)
        if first < 0:
            return None, -1
        origin = np.array(t[first, :3], dtype=np.float32)  # a writable copy: kernels take C arrays
        xlo, xhi, ylo, yhi, n, back, finite = _extents(t, origin, VIEW_XY, winding == 0)
    else:
        t, verts, f = _NO_SOUP, triangles, faces
        first = _first_finite_face(verts, f)
        if first == BAD_INDEX:
            raise ValueError(f"a face index is outside the {verts.shape[0]} vertices")
        if first < 0:
            return None, -1
        origin = np.array(verts[f[first, 0]], dtype=np.float32)
        state = _scratch("state", verts.shape[0], np.uint8)
        xlo, xhi, ylo, yhi, n, back = _extents_indexed(verts, f, origin, VIEW_XY, state, winding == 0)
        if n == BAD_INDEX:
            raise ValueError(f"a face index is outside the {verts.shape[0]} vertices")
    if winding:
        back = 1 if winding > 0 else -1  # what the volume's sign gives for a closed mesh so wound
    if n == 0:
        return None, -1
    count = t.shape[0] if faces is None else f.shape[0]
    ws = hs = screen_size * supersample
    xf: ScreenTransform = fit_to_screen((xlo, xhi, ylo, yhi), origin, ws, hs, margin)
    wx0, wy0, wx1, wy1 = sample_window(xf, (xlo, xhi, ylo, yhi), ws, hs, supersample)
    win = (wy1 - wy0, wx1 - wx0)
    n_win = win[0] * win[1]
    zflat = _scratch("z", n_win, np.float32)
    zflat.fill(EMPTY_DEPTH)
    zbuf = zflat.reshape(win)
    # Shade, colour and owner are read only where a depth was written: no clearing needed.
    sflat = _scratch("s", n_win, np.float32)
    sbuf = sflat.reshape(win)
    colored = colors is not None and colors.shape[0] == count
    cols = colors if colored and colors is not None else _NO_COLORS
    blend = bool(colored and cols.shape[1] == 3)
    cflat = _scratch("c", n_win if colored else 1, np.int32)
    cbuf = cflat.reshape(win if colored else (1, 1))
    light = (xf.origin, xf.matrix, xf.offset, shading.lights, shading.ambient, shading.key, shading.fill)
    box = (wx0, wy0, wx1, wy1)
    geo = (t, verts, f)
    raster = _raster if faces is None else _raster_indexed
    if not (cull and back):
        raster(*geo, *light, *box, 0, _NONE, _NONE, _NO_TILES, _NONE, _NO_BOX, zflat, sflat, cols, blend, cflat)
    else:
        # Front faces first, then only the back faces that may show (numba_raster._raster): the same
        # buffers as drawing every face in order, for about half the work.
        owner = _scratch("owner", n_win, np.int32)
        deferred = _scratch("deferred", count, np.int32)
        dbox = _scratch("dbox", count * 5, np.float32).reshape(-1, 5)
        n_back = raster(
            *geo, *light, *box, back, _NONE, owner, _NO_TILES, deferred, dbox, zflat, sflat, cols, blend, cflat
        )
        if n_back:
            tiles = np.empty((-(-win[0] // TILE), -(-win[1] // TILE)), dtype=np.float32)
            _tile_far(zbuf, tiles)
            n_vis = _visible(deferred[:n_back], dbox[:n_back], tiles, zbuf, *box)
            if n_vis:
                order, dvis = deferred[:n_vis], dbox[:n_vis]
                raster(*geo, *light, *box, 0, order, owner, tiles, _NONE, dvis, zflat, sflat, cols, blend, cflat)
    out = np.zeros((screen_size, screen_size, 4), dtype=np.uint8)
    ss = supersample
    # Outside the window every sample is empty: resolving only the window gives the same pixels.
    part = np.zeros((win[0] // ss, win[1] // ss, 4), dtype=np.uint8)
    _resolve(
        zbuf,
        sbuf,
        cbuf,
        colored,
        supersample,
        shading.base_rgb,
        shading.depth_cue,
        shading.edge_darken,
        shading.edge_depth_jump,
        part,
    )
    out[wy0 // ss : wy1 // ss, wx0 // ss : wx1 // ss] = part
    return out, finite
