"""The default kernel: a single-threaded numba z-buffer rasteriser (parallelism is one worker per core).

Three compiled passes over the data, each written for speed on ~1M sub-pixel triangles:

1. ``_extents``: project every vertex once (x, y only) for the exact framing;
2. ``_raster``: project again straight into registers (cheaper than writing and re-reading an SoA copy:
   the pass is bound by reading the triangles, not by the nine multiplies) and draw each triangle as
   one of three kinds: *sub-sample* (at most one sample centre in its box: one test or a centroid
   splat, shaded only if it wins the depth test), *sliver* (thinner than half a sample: drawn as
   a line so thin walls stay continuous) and *area* (row by row over its box, from the solved first
   covered sample to the last);
3. ``_resolve``: depth cue, outline, ss x ss box filter into straight-alpha RGBA.

The numpy kernel implements the same three kinds with the same float32 formulas; keep them in step.

Importing this module imports numba; callers import it lazily (numba is missing on Intel Macs).
Compiled code is cached (``cache=True``) in the per-user folder that :mod:`sidecar_thumbs.numba_cache`
chooses, or wherever ``NUMBA_CACHE_DIR`` points.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types

from sidecar_thumbs.render.camera import EMPTY_DEPTH, FINITE_MAX, GRID_MAX, VIEW_XY, ScreenTransform, Shading

# Fast-math without 'nnan'/'ninf': the kernels skip NaN/inf triangles with ordered comparisons
# (``-L < v < L``, false for NaN and inf), which LLVM may not fold away without those flags. An
# arithmetic test (``s - s != 0``) is not safe: under 'reassoc' LLVM folded it to false, a NaN corner
# reached an int conversion (poison) and a loop bound built from it ran for ever. Without 'contract'
# too: a fused multiply-add made the cross product of a triangle with two equal corners non-zero, so
# numba drew a line where numpy (and the maths) see zero area.
_FASTMATH = {"nsz", "arcp", "afn", "reassoc"}
_JIT = {"cache": True, "fastmath": _FASTMATH, "nogil": True, "error_model": "numpy", "boundscheck": False}

# One explicit signature per kernel: compiled (or loaded from the cache) at import, and one machine-code
# version serves every input layout. Triangles are (N, 9) float32 with any strides, read-only and possibly
# unaligned, so a loader may hand over a view straight into a binary STL's 50-byte records (no copy).
_SOUP = types.Array(types.float32, 2, "A", readonly=True, aligned=False)
_F32 = types.float32
_VEC = types.Array(_F32, 1, "C")
_MAT = types.Array(_F32, 2, "C")
_SIG_FIRST = types.int64(_SOUP)
_SIG_EXTENTS = types.Tuple((_F32, _F32, _F32, _F32, types.int64))(_SOUP, _VEC, _MAT)
# Model colours: packed 0xRRGGBB int32, (N, 1) per triangle or (N, 3) per corner; (0, 1) for the base colour.
_COLS = types.Array(types.int32, 2, "A", readonly=True)
_IVEC = types.Array(types.int32, 1, "C")
_SIG_RASTER = types.none(
    _SOUP,
    _VEC,
    _MAT,
    _VEC,
    _MAT,
    types.float64,
    types.float64,
    types.float64,
    types.int64,
    types.int64,
    types.int64,
    types.int64,
    _VEC,
    _VEC,
    _COLS,
    types.boolean,
    _IVEC,
)
_SIG_RESOLVE = types.none(
    _MAT,
    _MAT,
    types.Array(types.int32, 2, "C"),
    types.boolean,
    types.int64,
    _VEC,
    types.float64,
    types.float64,
    types.float64,
    types.Array(types.uint8, 3, "C"),
)


_NO_COLORS = np.zeros((0, 1), dtype=np.int32)
_NO_COLORS.setflags(write=False)


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
    t: np.ndarray, origin: np.ndarray, a: np.ndarray
) -> tuple[np.float32, np.float32, np.float32, np.float32, int]:
    ox, oy, oz = origin[0], origin[1], origin[2]
    a00, a01, a02 = a[0, 0], a[0, 1], a[0, 2]
    a10, a11, a12 = a[1, 0], a[1, 1], a[1, 2]
    big = np.float32(3.0e38)
    xlo, xhi, ylo, yhi = big, -big, big, -big
    n = 0
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
            continue
        xlo = min(xlo, x0, x1, x2)
        xhi = max(xhi, x0, x1, x2)
        ylo = min(ylo, y0, y1, y2)
        yhi = max(yhi, y0, y1, y2)
        n += 1
    return xlo, xhi, ylo, yhi, n


@njit(inline="always", **_JIT)
def _floor(v: float) -> int:
    # Exact floor from a truncating conversion. With math.floor/math.ceil the per-triangle setup
    # (projection, normal, box) took twice as long (13 -> 26 ms for 1M triangles).
    i = int(v)
    return i - 1 if v < i else i


@njit(inline="always", **_JIT)
def _ceil(v: float) -> int:
    i = int(v)
    return i + 1 if v > i else i


@njit(inline="always", **_JIT)
def _shade(mx: float, my: float, mz: float, nl2: float, lights: np.ndarray, amb: float, k1: float, k2: float) -> float:
    """Flat Lambert shade of a face with screen-space normal ``m`` (``nl2`` = its squared length)."""
    # Screen Y points down, so the view-space normal is (mx, -my, mz) up to sign. Two-sided lighting:
    # always take the sign that faces the camera, so inconsistent winding never shows.
    if mz < 0.0:
        nx, ny, nz = -mx, my, -mz
    else:
        nx, ny, nz = mx, -my, mz
    inv_l = np.float32(1.0) / np.sqrt(nl2)
    d1 = (nx * lights[0, 0] + ny * lights[0, 1] + nz * lights[0, 2]) * inv_l
    d2 = (nx * lights[1, 0] + ny * lights[1, 1] + nz * lights[1, 2]) * inv_l
    return amb + k1 * max(d1, np.float32(0.0)) + k2 * max(d2, np.float32(0.0))


@njit(inline="always", **_JIT)
def _mix(cols: np.ndarray, i: int, b0: float, b1: float, b2: float) -> int:
    """The corner colours of triangle ``i`` blended with barycentric weights, packed 0xRRGGBB."""
    packed = 0
    for shift in (16, 8, 0):
        v = (
            b0 * np.float32((cols[i, 0] >> shift) & 255)
            + b1 * np.float32((cols[i, 1] >> shift) & 255)
            + b2 * np.float32((cols[i, 2] >> shift) & 255)
        )
        packed |= min(max(int(v + np.float32(0.5)), 0), 255) << shift
    return packed


@njit(_SIG_RASTER, **_JIT)
def _raster(
    t: np.ndarray,
    origin: np.ndarray,
    m: np.ndarray,
    off: np.ndarray,
    lights: np.ndarray,
    ambient: float,
    key: float,
    fill: float,
    wx0: int,
    wy0: int,
    wx1: int,
    wy1: int,
    zbuf: np.ndarray,
    sbuf: np.ndarray,
    cols: np.ndarray,
    blend: bool,
    cbuf: np.ndarray,
) -> None:
    # The buffers hold only the window [wx0, wx1) x [wy0, wy1) of the sample grid (camera.sample_window):
    # every corner projects inside it, so clipping to it instead of the screen changes no sample.
    # A coloured model also records, per sample, the colour of the triangle that drew it (blended
    # from its corners' colours when ``blend``). The branch is the same for every triangle, so an
    # uncoloured model pays nothing measurable for it.
    colored = cols.shape[0] > 0
    ox, oy, oz = origin[0], origin[1], origin[2]
    m00, m01, m02 = m[0, 0], m[0, 1], m[0, 2]
    m10, m11, m12 = m[1, 0], m[1, 1], m[1, 2]
    m20, m21, m22 = m[2, 0], m[2, 1], m[2, 2]
    tx, ty = off[0], off[1]
    amb, k1, k2 = np.float32(ambient), np.float32(key), np.float32(fill)
    third = np.float32(1.0 / 3.0)
    eps = np.float32(-1e-4)
    one, half = np.float32(1.0), np.float32(0.5)
    fx0, fy0, fws, fhs = np.float32(wx0), np.float32(wy0), np.float32(wx1), np.float32(wy1)
    grid, zmax = np.float32(GRID_MAX), np.float32(FINITE_MAX)
    ww = wx1 - wx0
    for i in range(t.shape[0]):
        dx, dy, dz = t[i, 0] - ox, t[i, 1] - oy, t[i, 2] - oz
        X0 = m00 * dx + m01 * dy + m02 * dz + tx
        Y0 = m10 * dx + m11 * dy + m12 * dz + ty
        Z0 = m20 * dx + m21 * dy + m22 * dz
        dx, dy, dz = t[i, 3] - ox, t[i, 4] - oy, t[i, 5] - oz
        X1 = m00 * dx + m01 * dy + m02 * dz + tx
        Y1 = m10 * dx + m11 * dy + m12 * dz + ty
        Z1 = m20 * dx + m21 * dy + m22 * dz
        dx, dy, dz = t[i, 6] - ox, t[i, 7] - oy, t[i, 8] - oz
        X2 = m00 * dx + m01 * dy + m02 * dz + tx
        Y2 = m10 * dx + m11 * dy + m12 * dz + ty
        Z2 = m20 * dx + m21 * dy + m22 * dz
        # Every loop bound below comes from X and Y: a corner off the grid (NaN, inf, or a triangle left
        # out of the framing because its projection overflowed) is dropped before any is computed.
        # Framed corners lie within the screen, far inside +-GRID_MAX.
        if not (
            -grid < X0 < grid
            and -grid < X1 < grid
            and -grid < X2 < grid
            and -grid < Y0 < grid
            and -grid < Y1 < grid
            and -grid < Y2 < grid
            and -zmax < Z0 < zmax
            and -zmax < Z1 < zmax
            and -zmax < Z2 < zmax
        ):
            continue
        # Normal in screen space; mz is also twice the signed screen area.
        ax, ay, az = X1 - X0, Y1 - Y0, Z1 - Z0
        bx, by, bz = X2 - X0, Y2 - Y0, Z2 - Z0
        mx = ay * bz - az * by
        my = az * bx - ax * bz
        mz = ax * by - ay * bx
        nl2 = mx * mx + my * my + mz * mz
        if nl2 == 0.0:  # zero area in 3D: no normal, nothing to draw
            continue
        xmin, xmax = min(X0, X1, X2), max(X0, X1, X2)
        ymin, ymax = min(Y0, Y1, Y2), max(Y0, Y1, Y2)
        if xmax - xmin < one and ymax - ymin < one:
            # Smaller than a sample (most triangles of a dense mesh): its box holds at most one sample
            # centre. Draw that sample if the triangle covers it; with no centre in the box, splat the
            # centroid instead, so that sub-sample triangles still leave a mark. Depth: the centroid's.
            sx = _ceil(xmin - half)
            sy = _ceil(ymin - half)
            if sx <= _floor(xmax - half) and sy <= _floor(ymax - half):
                fx = np.float32(sx) + half
                fy = np.float32(sy) + half
                w0 = (X2 - X1) * (fy - Y1) - (Y2 - Y1) * (fx - X1)
                w1 = (X0 - X2) * (fy - Y2) - (Y0 - Y2) * (fx - X2)
                w2 = mz - w0 - w1
                if mz < 0.0:
                    w0, w1, w2 = -w0, -w1, -w2
                tol = eps * abs(mz)
                write = w0 >= tol and w1 >= tol and w2 >= tol
            else:
                cx = (X0 + X1 + X2) * third
                cy = (Y0 + Y1 + Y2) * third
                sx, sy = int(cx), int(cy)
                write = cx >= 0.0 and cy >= 0.0
            if write and wx0 <= sx < wx1 and wy0 <= sy < wy1:
                k = (sy - wy0) * ww + sx - wx0
                zc = (Z0 + Z1 + Z2) * third
                if zc >= zbuf[k]:  # shade only now: most of these are hidden
                    zbuf[k] = zc
                    sbuf[k] = _shade(mx, my, mz, nl2, lights, amb, k1, k2)
                    if colored:
                        cbuf[k] = _mix(cols, i, third, third, third) if blend else cols[i, 0]
            continue

        shade = _shade(mx, my, mz, nl2, lights, amb, k1, k2)
        x0 = _ceil(xmin - half)
        x1 = _floor(xmax - half)
        y0 = _ceil(ymin - half)
        y1 = _floor(ymax - half)
        no_x, no_y = x1 < x0, y1 < y0  # not both: the box is at least a sample wide or high
        cx2, cy2 = X0 - X2, Y0 - Y2
        ex, ey = X2 - X1, Y2 - Y1
        l01, l12, l20 = ax * ax + ay * ay, ex * ex + ey * ey, cx2 * cx2 + cy2 * cy2
        lmax = max(l01, l12, l20)
        # A sliver (thinner than half a sample: 2 * area / longest edge < 0.5) at least two samples
        # long covers samples only here and there, so thin walls would turn into dotted lines or
        # vanish. Draw it as a line instead, one sample per step along its longest edge (every corner
        # is within half a sample of it).
        if no_x or no_y or (lmax >= np.float32(4.0) and np.float32(4.0) * mz * mz < lmax):
            if lmax == l01:
                pax, pay, paz, qx, qy, qz = X0, Y0, Z0, X1, Y1, Z1
            elif lmax == l12:
                pax, pay, paz, qx, qy, qz = X1, Y1, Z1, X2, Y2, Z2
            else:
                pax, pay, paz, qx, qy, qz = X2, Y2, Z2, X0, Y0, Z0
            dlx, dly, dlz = qx - pax, qy - pay, qz - paz
            steps = int(max(abs(dlx), abs(dly))) + 1
            inv_n = one / np.float32(steps)
            for st in range(steps + 1):
                f = np.float32(st) * inv_n
                lx = pax + dlx * f
                ly = pay + dly * f
                if lx >= fx0 and ly >= fy0 and lx < fws and ly < fhs:
                    k = (int(ly) - wy0) * ww + int(lx) - wx0
                    z = paz + dlz * f
                    if z >= zbuf[k]:
                        zbuf[k] = z
                        sbuf[k] = shade
                        if colored:
                            cbuf[k] = _mix(cols, i, third, third, third) if blend else cols[i, 0]
            # The line is the sliver: the samples whose centres it truly covers lie within a quarter
            # sample of its longest edge, which the line steps along. Walking its box row by row as
            # well cost ~10x a compact triangle for fans of long thin wedges (CAD caps, gears).
            continue
        if mz == 0.0:
            continue
        x0 = max(x0, wx0)
        x1 = min(x1, wx1 - 1)
        y0 = max(y0, wy0)
        y1 = min(y1, wy1 - 1)
        inv = one / mz
        e0x, e0y = X2 - X1, Y2 - Y1
        e1x, e1y = X0 - X2, Y0 - Y2
        # Along a row each barycentric is linear in x, b = a + s * x, so the row's first covered
        # sample can be solved for instead of searched (long diagonal slivers have boxes far wider than
        # themselves). The solve only picks where to start: the start is moved left while the sample
        # before it passes the exact test, so rounding in it cannot change the image.
        s0, s1 = -e0y * inv, -e1y * inv
        s2 = -(s0 + s1)
        wide = x1 - x0 >= 8
        for py in range(y0, y1 + 1):
            fy = np.float32(py) + half
            r0 = e0x * (fy - Y1)
            r1 = e1x * (fy - Y2)
            row = (py - wy0) * ww - wx0
            xa = x0
            if wide:
                a0 = (r0 + e0y * X1) * inv
                a1 = (r1 + e1y * X2) * inv
                a2 = one - a0 - a1
                lo = fws
                lo = min(lo, max(-one, (eps - a0) / s0)) if s0 > 0.0 else lo
                lo = min(lo, max(-one, (eps - a1) / s1)) if s1 > 0.0 else lo
                lo = min(lo, max(-one, (eps - a2) / s2)) if s2 > 0.0 else lo
                if s0 <= 0.0 and s1 <= 0.0 and s2 <= 0.0:
                    lo = -one
                xa = min(max(int(lo - half) - 1, x0), x1)
                while xa > x0:
                    fx = np.float32(xa - 1) + half
                    b0 = (r0 - e0y * (fx - X1)) * inv
                    b1 = (r1 - e1y * (fx - X2)) * inv
                    if b0 >= eps and b1 >= eps and one - b0 - b1 >= eps:
                        xa -= 1
                    else:
                        break
            entered = False
            for px in range(xa, x1 + 1):
                fx = np.float32(px) + half
                b0 = (r0 - e0y * (fx - X1)) * inv
                b1 = (r1 - e1y * (fx - X2)) * inv
                b2 = one - b0 - b1
                if b0 >= eps and b1 >= eps and b2 >= eps:
                    entered = True
                    z = b0 * Z0 + b1 * Z1 + b2 * Z2
                    k = row + px
                    if z >= zbuf[k]:
                        zbuf[k] = z
                        sbuf[k] = shade
                        if colored:
                            cbuf[k] = _mix(cols, i, b0, b1, b2) if blend else cols[i, 0]
                elif entered:  # a triangle is convex: once out of it, the rest of the row is too
                    break


@njit(_SIG_RESOLVE, **_JIT)
def _resolve(
    zbuf: np.ndarray,
    sbuf: np.ndarray,
    cbuf: np.ndarray,
    colored: bool,
    ss: int,
    base: np.ndarray,
    depth_cue: float,
    edge_darken: float,
    edge_jump: float,
    out: np.ndarray,
) -> None:
    hs, ws = zbuf.shape
    empty = EMPTY_DEPTH
    zlo, zhi = np.float32(3.0e38), np.float32(-3.0e38)
    for y in range(hs):
        for x in range(ws):
            z = zbuf[y, x]
            if z > empty:
                zlo = min(zlo, z)
                zhi = max(zhi, z)
    if zhi < zlo:
        return
    dc = np.float32(depth_cue)
    inv_zr = np.float32(1.0) / max(zhi - zlo, np.float32(1e-6))
    keep = np.float32(1.0 - edge_darken)
    jump = np.float32(edge_jump)
    one = np.float32(1.0)
    h, w = hs // ss, ws // ss
    full = np.float32(255.0 / (ss * ss))
    for oy in range(h):
        for ox in range(w):
            acc = np.float32(0.0)
            acc_r, acc_g, acc_b = np.float32(0.0), np.float32(0.0), np.float32(0.0)
            cov = 0
            for j in range(ss):
                y = oy * ss + j
                for i in range(ss):
                    x = ox * ss + i
                    z = zbuf[y, x]
                    if z <= empty:
                        continue
                    cov += 1
                    v = sbuf[y, x] * (one - dc * (one - (z - zlo) * inv_zr))
                    # Outline: silhouette (a 4-neighbour is empty or off-screen) or a depth jump.
                    zl = zbuf[y, x - 1] if x > 0 else empty
                    zr = zbuf[y, x + 1] if x + 1 < ws else empty
                    zu = zbuf[y - 1, x] if y > 0 else empty
                    zd = zbuf[y + 1, x] if y + 1 < hs else empty
                    if (
                        zl <= empty
                        or zr <= empty
                        or zu <= empty
                        or zd <= empty
                        or abs(zl + zr - z - z) > jump
                        or abs(zu + zd - z - z) > jump
                    ):
                        v *= keep
                    if colored:
                        packed = cbuf[y, x]
                        acc_r += v * np.float32((packed >> 16) & 255)
                        acc_g += v * np.float32((packed >> 8) & 255)
                        acc_b += v * np.float32(packed & 255)
                    else:
                        acc += v
            if cov > 0:
                inv_cov = np.float32(1.0) / np.float32(cov)
                if colored:
                    out[oy, ox, 0] = min(int(acc_r * inv_cov + np.float32(0.5)), 255)
                    out[oy, ox, 1] = min(int(acc_g * inv_cov + np.float32(0.5)), 255)
                    out[oy, ox, 2] = min(int(acc_b * inv_cov + np.float32(0.5)), 255)
                else:
                    v = acc / np.float32(cov)
                    for c in range(3):
                        out[oy, ox, c] = min(int(v * base[c] + np.float32(0.5)), 255)
                out[oy, ox, 3] = int(np.float32(cov) * full + np.float32(0.5))


def render(
    triangles: np.ndarray,
    screen_size: int,
    supersample: int,
    margin: float,
    shading: Shading,
    colors: np.ndarray | None = None,
) -> np.ndarray | None:
    """Render a float32 triangle soup; ``None`` when no triangle is drawable.

    Args:
        triangles: float32 (N, 9) in model space (corner-major xyz); any strides.
        screen_size: Output width and height in pixels.
        supersample: Samples per pixel along each axis.
        margin: Framing margin (fraction of the side).
        shading: Lights and colour.
        colors: packed 0xRRGGBB int32 drawn instead of the base colour: (N, 1) per triangle, or (N, 3) per
            corner (blended across the triangle); None for the base colour.

    Returns:
        RGBA uint8 (screen_size, screen_size, 4), straight alpha, or ``None`` if nothing is drawable.
    """
    from sidecar_thumbs.render.camera import fit_to_screen, sample_window

    t = triangles
    first = _first_finite(t)
    if first < 0:
        return None
    origin = np.array(t[first, :3], dtype=np.float32)  # a writable copy: kernels take C arrays
    xlo, xhi, ylo, yhi, n = _extents(t, origin, VIEW_XY)
    if n == 0:
        return None
    ws = hs = screen_size * supersample
    xf: ScreenTransform = fit_to_screen((xlo, xhi, ylo, yhi), origin, ws, hs, margin)
    wx0, wy0, wx1, wy1 = sample_window(xf, (xlo, xhi, ylo, yhi), ws, hs, supersample)
    win = (wy1 - wy0, wx1 - wx0)
    zbuf = np.full(win, EMPTY_DEPTH, dtype=np.float32)
    sbuf = np.zeros(win, dtype=np.float32)
    colored = colors is not None and colors.shape[0] == t.shape[0]
    cols = colors if colored and colors is not None else _NO_COLORS
    blend = bool(colored and cols.shape[1] == 3)
    cbuf = np.zeros(win if colored else (1, 1), dtype=np.int32)
    _raster(
        t,
        xf.origin,
        xf.matrix,
        xf.offset,
        shading.lights,
        shading.ambient,
        shading.key,
        shading.fill,
        wx0,
        wy0,
        wx1,
        wy1,
        zbuf.reshape(-1),
        sbuf.reshape(-1),
        cols,
        blend,
        cbuf.reshape(-1),
    )
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
    return out
