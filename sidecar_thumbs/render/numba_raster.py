"""The numba kernel's rasteriser: every triangle into the sample window's depth, shade and colour buffers.

Kept apart from :mod:`.kernel_numba` (framing, resolve, entry point) so that each reads as one concept;
its inline helpers live here with it because numba's cache does not notice a changed helper imported
from another file. JIT options and argument types: :mod:`.numba_jit`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types

from sidecar_thumbs.render.camera import FINITE_MAX, GRID_MAX
from sidecar_thumbs.render.numba_backfaces import TILE
from sidecar_thumbs.render.numba_jit import _COLS, _FACES, _IVEC, _JIT, _MAT, _SOUP, _VEC, _VERTS

_SIG_RASTER = types.int64(
    _SOUP,
    _VERTS,
    _FACES,
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
    types.int64,
    _IVEC,
    _IVEC,
    _MAT,
    _IVEC,
    _MAT,
    _VEC,
    _VEC,
    _COLS,
    types.boolean,
    _IVEC,
)


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


@njit(inline="always", **_JIT)
def _channels(cols: np.ndarray, i: int, shift: int) -> tuple[np.float32, np.float32, np.float32]:
    """One channel of triangle ``i``'s three corner colours, as the floats :func:`_mix` weighs."""
    return (
        np.float32((cols[i, 0] >> shift) & 255),
        np.float32((cols[i, 1] >> shift) & 255),
        np.float32((cols[i, 2] >> shift) & 255),
    )


@njit(inline="always", **_JIT)
def _blend(c: tuple[np.float32, np.float32, np.float32], b0: float, b1: float, b2: float, shift: int) -> int:
    """One channel of :func:`_mix` from its corner floats, placed at ``shift``."""
    v = b0 * c[0] + b1 * c[1] + b2 * c[2]
    return min(max(int(v + np.float32(0.5)), 0), 255) << shift


@njit(inline="always", **_JIT)
def _reach(z0: float, z1: float, z2: float) -> np.float32:
    """The nearest depth a triangle can write: its nearest corner's, plus the inside test's tolerance."""
    zlo, zhi = min(z0, z1, z2), max(z0, z1, z2)
    return zhi + np.float32(1e-3) * (zhi - zlo) + np.float32(1e-5) * abs(zhi) + np.float32(1e-6)


def _compile_raster(indexed: bool):  # type: ignore[no-untyped-def]
    """The raster for a soup (``indexed`` False) or an indexed mesh: one source, two machine-code versions.

    ``indexed`` is a constant of each version (a closure variable, which numba freezes and caches per
    value), so the soup's version has no trace of the indexed reads: a shared branch on the corners
    changed how LLVM regrouped the soup's float32 sums (fast-math 'reassoc') and moved a few pixels.
    """

    def _raster(
        t: np.ndarray,
        verts: np.ndarray,
        faces: np.ndarray,
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
        cull: int,
        order: np.ndarray,
        owner: np.ndarray,
        tiles: np.ndarray,
        deferred: np.ndarray,
        dbox: np.ndarray,
        zbuf: np.ndarray,
        sbuf: np.ndarray,
        cols: np.ndarray,
        blend: bool,
        cbuf: np.ndarray,
    ) -> int:
        # The buffers hold only the window [wx0, wx1) x [wy0, wy1) of the sample grid (camera.sample_window):
        # every corner projects inside it, so clipping to it instead of the screen changes no sample.
        # A coloured model also records, per sample, the colour of the triangle that drew it (blended
        # from its corners' colours when ``blend``). The branch is the same for every triangle, so an
        # uncoloured model pays nothing measurable for it.
        colored = cols.shape[0] > 0
        #
        # Back faces of a closed, consistently wound mesh are drawn in a second call, and only where they
        # may show, with the same result as drawing every face in order (kernel_numba.render):
        # * first call: ``cull`` is the sign of ``mz`` a back face has; back faces are not drawn but listed
        #   in ``deferred`` (the count is returned), and ``owner`` records which triangle drew each sample;
        # * second call: ``order`` lists those back faces; one whose nearest corner is farther than every
        #   sample in the tiles under its box (``tiles``: per TILE x TILE block, the farthest depth drawn,
        #   EMPTY_DEPTH where any sample is empty) cannot win a depth test and was dropped from the list
        #   (``numba_backfaces._visible``); the rest are drawn, winning a tie only against an earlier triangle
        #   (``owner``), as in one in-order pass.
        # With ``cull`` 0 and empty ``order``/``owner``/``tiles`` it is one pass over every face.
        #
        # Corners come from the soup ``t`` or, for an indexed mesh, from ``verts`` through the face's three
        # indices; either way they are projected here, in registers, by the same float32 expressions.
        back = np.float32(cull)
        track = owner.shape[0] > 0
        reject = tiles.shape[0] > 0
        n_def = 0
        count = order.shape[0] if order.shape[0] > 0 else (faces.shape[0] if indexed else t.shape[0])
        ox, oy, oz = origin[0], origin[1], origin[2]
        m00, m01, m02 = m[0, 0], m[0, 1], m[0, 2]
        m10, m11, m12 = m[1, 0], m[1, 1], m[1, 2]
        m20, m21, m22 = m[2, 0], m[2, 1], m[2, 2]
        tx, ty = off[0], off[1]
        amb, k1, k2 = np.float32(ambient), np.float32(key), np.float32(fill)
        third = np.float32(1.0 / 3.0)
        eps = np.float32(-1e-4)
        one, half, zero = np.float32(1.0), np.float32(0.5), np.float32(0.0)
        fx0, fy0, fws, fhs = np.float32(wx0), np.float32(wy0), np.float32(wx1), np.float32(wy1)
        grid, zmax = np.float32(GRID_MAX), np.float32(FINITE_MAX)
        ww = wx1 - wx0
        for j in range(count):
            i = order[j] if order.shape[0] > 0 else j
            if indexed:
                c0, c1, c2 = faces[i, 0], faces[i, 1], faces[i, 2]
                p0x, p0y, p0z = verts[c0, 0], verts[c0, 1], verts[c0, 2]
                p1x, p1y, p1z = verts[c1, 0], verts[c1, 1], verts[c1, 2]
                p2x, p2y, p2z = verts[c2, 0], verts[c2, 1], verts[c2, 2]
            else:
                p0x, p0y, p0z = t[i, 0], t[i, 1], t[i, 2]
                p1x, p1y, p1z = t[i, 3], t[i, 4], t[i, 5]
                p2x, p2y, p2z = t[i, 6], t[i, 7], t[i, 8]
            dx0, dy0, dz0 = p0x - ox, p0y - oy, p0z - oz
            dx1, dy1, dz1 = p1x - ox, p1y - oy, p1z - oz
            dx2, dy2, dz2 = p2x - ox, p2y - oy, p2z - oz
            X0 = m00 * dx0 + m01 * dy0 + m02 * dz0 + tx
            Y0 = m10 * dx0 + m11 * dy0 + m12 * dz0 + ty
            X1 = m00 * dx1 + m01 * dy1 + m02 * dz1 + tx
            Y1 = m10 * dx1 + m11 * dy1 + m12 * dz1 + ty
            X2 = m00 * dx2 + m01 * dy2 + m02 * dz2 + tx
            Y2 = m10 * dx2 + m11 * dy2 + m12 * dz2 + ty
            Z0 = m20 * dx0 + m21 * dy0 + m22 * dz0
            Z1 = m20 * dx1 + m21 * dy1 + m22 * dz1
            Z2 = m20 * dx2 + m21 * dy2 + m22 * dz2
            # Every loop bound below comes from X and Y: a corner off the grid (NaN, inf, or a triangle left
            # out of the framing because its projection overflowed) is dropped before any is computed.
            # Framed corners lie within the screen, far inside +-GRID_MAX. '&' rather than 'and': one test
            # without nine branches.
            on_grid = (
                (abs(X0) < grid)
                & (abs(X1) < grid)
                & (abs(X2) < grid)
                & (abs(Y0) < grid)
                & (abs(Y1) < grid)
                & (abs(Y2) < grid)
                & (abs(Z0) < zmax)
                & (abs(Z1) < zmax)
                & (abs(Z2) < zmax)
            )
            if not on_grid:
                continue
            # mz: twice the signed screen area, the normal's screen z.
            ax, ay = X1 - X0, Y1 - Y0
            bx, by = X2 - X0, Y2 - Y0
            mz = ax * by - ay * bx
            if mz * back > 0.0:  # a back face: set aside with its box and the nearest depth it can reach
                deferred[n_def] = i
                dbox[n_def, 0] = min(X0, X1, X2)
                dbox[n_def, 1] = max(X0, X1, X2)
                dbox[n_def, 2] = min(Y0, Y1, Y2)
                dbox[n_def, 3] = max(Y0, Y1, Y2)
                dbox[n_def, 4] = _reach(Z0, Z1, Z2)
                n_def += 1
                continue
            # Normal in screen space.
            az, bz = Z1 - Z0, Z2 - Z0
            mx = ay * bz - az * by
            my = az * bx - ax * bz
            nl2 = mx * mx + my * my + mz * mz
            if nl2 == 0.0:  # zero area in 3D: no normal, nothing to draw
                continue
            # Corners of one colour (most triangles of a per-corner model painted in patches) skip the blend:
            # it would give that colour back exactly.
            mixed = blend and (cols[i, 0] != cols[i, 1] or cols[i, 1] != cols[i, 2])
            xmin, xmax = min(X0, X1, X2), max(X0, X1, X2)
            ymin, ymax = min(Y0, Y1, Y2), max(Y0, Y1, Y2)
            zreach = dbox[j, 4] if reject else np.float32(0.0)
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
                    if zc > zbuf[k] or (zc == zbuf[k] and (not track or i >= owner[k])):  # shade only if it wins
                        zbuf[k] = zc
                        if track:
                            owner[k] = i
                        sbuf[k] = _shade(mx, my, mz, nl2, lights, amb, k1, k2)
                        if colored:
                            cbuf[k] = _mix(cols, i, third, third, third) if mixed else cols[i, 0]
                continue

            # Shaded on the first sample it wins: many small triangles cover no sample centre or lose
            # every depth test, and the shade (a square root and a division) is then never needed.
            shade = np.float32(0.0)
            shaded = False
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
                        # The depth test and writes below are the area loop's too, written twice on purpose:
                        # as a shared inlined helper they cost the 100k-triangle render 55 % (6.9 -> 10.7 ms).
                        if z > zbuf[k] or (z == zbuf[k] and (not track or i >= owner[k])):
                            zbuf[k] = z
                            if track:
                                owner[k] = i
                            if not shaded:
                                shade = _shade(mx, my, mz, nl2, lights, amb, k1, k2)
                                shaded = True
                            sbuf[k] = shade
                            if colored:
                                cbuf[k] = _mix(cols, i, third, third, third) if mixed else cols[i, 0]
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
            # A blended triangle's corner colours as floats once, not at every sample it wins.
            red = _channels(cols, i, 16) if mixed else (zero, zero, zero)
            green = _channels(cols, i, 8) if mixed else (zero, zero, zero)
            blue = _channels(cols, i, 0) if mixed else (zero, zero, zero)
            for py in range(y0, y1 + 1):
                fy = np.float32(py) + half
                r0 = e0x * (fy - Y1)
                r1 = e1x * (fy - Y2)
                row = (py - wy0) * ww - wx0
                rx0, rx1 = x0, x1
                if reject:  # only the part of the row over tiles where this triangle may win
                    b_y = (py - wy0) // TILE
                    first_t, last_t = (x0 - wx0) // TILE, (x1 - wx0) // TILE
                    while first_t <= last_t and tiles[b_y, first_t] > zreach:
                        first_t += 1
                    while last_t >= first_t and tiles[b_y, last_t] > zreach:
                        last_t -= 1
                    if first_t > last_t:
                        continue
                    rx0 = max(x0, wx0 + first_t * TILE)
                    rx1 = min(x1, wx0 + last_t * TILE + TILE - 1)
                xa = rx0
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
                    xa = min(max(int(lo - half) - 1, rx0), rx1)
                    while xa > rx0:
                        fx = np.float32(xa - 1) + half
                        b0 = (r0 - e0y * (fx - X1)) * inv
                        b1 = (r1 - e1y * (fx - X2)) * inv
                        if b0 >= eps and b1 >= eps and one - b0 - b1 >= eps:
                            xa -= 1
                        else:
                            break
                entered = False
                for px in range(xa, rx1 + 1):
                    fx = np.float32(px) + half
                    b0 = (r0 - e0y * (fx - X1)) * inv
                    b1 = (r1 - e1y * (fx - X2)) * inv
                    b2 = one - b0 - b1
                    # One branch, not three: whether a sample is inside is a coin toss for small triangles.
                    if (b0 >= eps) & (b1 >= eps) & (b2 >= eps):
                        entered = True
                        z = b0 * Z0 + b1 * Z1 + b2 * Z2
                        k = row + px
                        if z > zbuf[k] or (z == zbuf[k] and (not track or i >= owner[k])):
                            zbuf[k] = z
                            if track:
                                owner[k] = i
                            if not shaded:
                                shade = _shade(mx, my, mz, nl2, lights, amb, k1, k2)
                                shaded = True
                            sbuf[k] = shade
                            if colored:
                                if mixed:
                                    cbuf[k] = (
                                        _blend(red, b0, b1, b2, 16)
                                        | _blend(green, b0, b1, b2, 8)
                                        | _blend(blue, b0, b1, b2, 0)
                                    )
                                else:
                                    cbuf[k] = cols[i, 0]
                    elif entered:  # a triangle is convex: once out of it, the rest of the row is too
                        break
        return n_def

    return njit(_SIG_RASTER, **_JIT)(_raster)


# Draws a triangle soup (N, 9).
_raster = _compile_raster(False)
# Draws an indexed mesh: vertices (V, 3) and faces (F, 3).
_raster_indexed = _compile_raster(True)
