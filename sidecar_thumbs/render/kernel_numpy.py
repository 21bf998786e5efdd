"""The fallback kernel: the numba kernel's algorithm, vectorised with numpy only.

Used where numba is not installed (Intel Macs, brand-new Pythons). It evaluates the same float32
formulas as :mod:`.kernel_numba`, sorts triangles into the same three kinds (sub-sample, sliver, area)
and resolves depth ties the same way (nearest sample wins; among equal depths the later triangle), so
the two kernels' images agree except for last-bit rounding at a few edge pixels.

Layout: projected corners are kept as ``P[coordinate, corner]`` rows of length N (structure of arrays),
because numpy reduces along a length-3 axis about ten times slower than it combines three rows.
Every kind of triangle yields candidate samples (sample index, depth, triangle id); one
``np.maximum.at`` over a packed (depth, id) key then does the depth test for all of them at once.
"""

from __future__ import annotations

import numpy as np

from sidecar_thumbs.render.camera import (
    EMPTY_DEPTH,
    FINITE_MAX,
    GRID_MAX,
    VIEW_XY,
    Shading,
    fit_to_screen,
    sample_window,
)

_BATCH_SAMPLES = 1 << 18  # candidate samples per dense batch in the area walk (bounds memory)
_F = np.float32
_HALF = _F(0.5)
_THIRD = _F(1.0 / 3.0)
_EPS = _F(-1e-4)

Candidates = tuple[np.ndarray, np.ndarray, np.ndarray]  # sample index, depth, triangle id


def _within(a: np.ndarray, bound: float) -> np.ndarray:
    """Per triangle (last axis): every value strictly inside +-bound; False for NaN and inf."""
    ok = np.abs(a) < _F(bound)
    return ok.reshape(-1, ok.shape[-1]).all(axis=0)


def _min3(a: np.ndarray) -> np.ndarray:
    return np.minimum(np.minimum(a[0], a[1]), a[2])


def _max3(a: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(a[0], a[1]), a[2])


def _project(tt: np.ndarray, origin: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``rows @ (v - origin)`` for every corner, as ``out[row, corner]`` (same operation order as numba).

    ``tt`` is the transposed soup, (9, N): row ``3 * corner + axis``.
    """
    out = np.empty((len(rows), 3, tt.shape[1]), dtype=_F)
    for k in range(3):
        dx = tt[3 * k] - origin[0]
        dy = tt[3 * k + 1] - origin[1]
        dz = tt[3 * k + 2] - origin[2]
        for r, row in enumerate(rows):
            out[r, k] = row[0] * dx + row[1] * dy + row[2] * dz
    return out


def _tiny(P: np.ndarray, mz: np.ndarray, ids: np.ndarray, ws: int, hs: int) -> Candidates:
    """Sub-sample triangles: their one candidate sample if covered, else a centroid splat."""
    (X0, X1, X2), (Y0, Y1, Y2), Z = P[:, :, ids]
    m = mz[ids]
    sx = np.ceil(np.minimum(np.minimum(X0, X1), X2) - _HALF)
    sy = np.ceil(np.minimum(np.minimum(Y0, Y1), Y2) - _HALF)
    has = (sx <= np.floor(np.maximum(np.maximum(X0, X1), X2) - _HALF)) & (
        sy <= np.floor(np.maximum(np.maximum(Y0, Y1), Y2) - _HALF)
    )
    fx, fy = sx + _HALF, sy + _HALF
    w0 = (X2 - X1) * (fy - Y1) - (Y2 - Y1) * (fx - X1)
    w1 = (X0 - X2) * (fy - Y2) - (Y0 - Y2) * (fx - X2)
    w2 = m - w0 - w1
    sgn = np.where(m < 0, _F(-1.0), _F(1.0))
    tol = _EPS * np.abs(m)
    inside = (w0 * sgn >= tol) & (w1 * sgn >= tol) & (w2 * sgn >= tol)
    cx = (X0 + X1 + X2) * _THIRD
    cy = (Y0 + Y1 + Y2) * _THIRD
    px = np.where(has, sx, cx).astype(np.int64)
    py = np.where(has, sy, cy).astype(np.int64)
    write = np.where(has, inside, (cx >= 0) & (cy >= 0)) & (px >= 0) & (py >= 0) & (px < ws) & (py < hs)
    zc = (Z[0] + Z[1] + Z[2]) * _THIRD
    return py[write] * ws + px[write], zc[write], ids[write]


def _lines(P: np.ndarray, edges: np.ndarray, ids: np.ndarray, ws: int, hs: int) -> Candidates:
    """Slivers drawn as a line along their longest edge, one sample per step."""
    # The first longest edge, as numba's if/elif chain picks it: 0 = (v0, v1), 1 = (v1, v2), 2 = (v2, v0).
    e = np.argmax(edges[:, ids], axis=0)
    a, b = e, (e + 1) % 3
    sub = P[:, :, ids]
    cols = np.arange(len(ids))
    (ax, ay, az), (bx, by, bz) = sub[:, a, cols], sub[:, b, cols]
    dx, dy, dz = bx - ax, by - ay, bz - az
    steps = np.maximum(np.abs(dx), np.abs(dy)).astype(np.int64) + 1
    inv_n = _F(1.0) / steps.astype(_F)
    counts = steps + 1
    rep = np.repeat(cols, counts)
    st = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    f = st.astype(_F) * inv_n[rep]
    lx = ax[rep] + dx[rep] * f
    ly = ay[rep] + dy[rep] * f
    on = (lx >= 0) & (ly >= 0) & (lx < ws) & (ly < hs)
    lz = az[rep] + dz[rep] * f
    return ly[on].astype(np.int64) * ws + lx[on].astype(np.int64), lz[on], ids[rep[on]]


def _areas(P: np.ndarray, ids: np.ndarray, ws: int, hs: int) -> list[Candidates]:
    """Samples covered by larger triangles: each tested against every sample centre of its box."""
    out: list[Candidates] = []
    (X0, X1, X2), (Y0, Y1, Y2), _ = P[:, :, ids]
    bx0 = np.maximum(np.ceil(np.minimum(np.minimum(X0, X1), X2) - _HALF).astype(np.int64), 0)
    bx1 = np.minimum(np.floor(np.maximum(np.maximum(X0, X1), X2) - _HALF).astype(np.int64), ws - 1)
    by0 = np.maximum(np.ceil(np.minimum(np.minimum(Y0, Y1), Y2) - _HALF).astype(np.int64), 0)
    by1 = np.minimum(np.floor(np.maximum(np.maximum(Y0, Y1), Y2) - _HALF).astype(np.int64), hs - 1)
    on = np.flatnonzero((bx1 >= bx0) & (by1 >= by0))  # clipping may leave nothing on screen
    if len(on) == 0:
        return out
    ids, bx0, bx1, by0, by1 = ids[on], bx0[on], bx1[on], by0[on], by1[on]
    # Bucket by power-of-two box size so that each bucket is one dense (triangles x samples) grid.
    kx = np.ceil(np.log2(bx1 - bx0 + 1)).astype(np.int64)
    ky = np.ceil(np.log2(by1 - by0 + 1)).astype(np.int64)
    key = kx * 64 + ky
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    for st, en in zip(starts, ends, strict=True):
        gw, gh = 1 << int(key[st] // 64), 1 << int(key[st] % 64)
        gx = np.tile(np.arange(gw), gh)
        gy = np.repeat(np.arange(gh), gw)
        step = max(1, _BATCH_SAMPLES // (gw * gh))
        for a in range(st, en, step):
            o = order[a : min(en, a + step)]
            px = bx0[o, None] + gx
            py = by0[o, None] + gy
            valid = (px <= bx1[o, None]) & (py <= by1[o, None])
            fx = px.astype(_F) + _HALF
            fy = py.astype(_F) + _HALF
            (x0, x1, x2), (y0, y1, y2), (z0, z1, z2) = P[:, :, ids[o], None]
            inv = _F(1.0) / ((x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0))
            b0 = ((x2 - x1) * (fy - y1) - (y2 - y1) * (fx - x1)) * inv
            b1 = ((x0 - x2) * (fy - y2) - (y0 - y2) * (fx - x2)) * inv
            b2 = _F(1.0) - b0 - b1
            ii, jj = np.nonzero(valid & (b0 >= _EPS) & (b1 >= _EPS) & (b2 >= _EPS))
            b0, b1, b2 = b0[ii, jj], b1[ii, jj], b2[ii, jj]
            z = b0 * z0[ii, 0] + b1 * z1[ii, 0] + b2 * z2[ii, 0]
            out.append((py[ii, jj] * ws + px[ii, jj], z, ids[o][ii]))
    return out


def _depth_test(cands: list[Candidates], n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: the nearest depth and the triangle that drew it (later triangle on ties), -1 if none."""
    k = np.concatenate([c[0] for c in cands])
    z = np.concatenate([c[1] for c in cands]).astype(_F, copy=False) + _F(0.0)  # -0.0 == 0.0, as in numba
    f = np.concatenate([c[2] for c in cands]).astype(np.int64, copy=False)
    # Pack (depth, triangle id) into one int64 that sorts like the pair, so that one maximum.at does
    # the depth test and the numba kernel's tie rule (its in-order `>=` keeps the later triangle).
    bits = z.view(np.int32)
    zkey = np.where(bits < 0, bits ^ np.int32(0x7FFFFFFF), bits).astype(np.int64)
    best = np.full(n_samples, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(best, k, (zkey << 32) | f)
    hit = best != np.iinfo(np.int64).min
    zbits = (best[hit] >> 32).astype(np.int32)
    zbuf = np.full(n_samples, EMPTY_DEPTH, dtype=_F)
    zbuf[hit] = np.where(zbits < 0, zbits ^ np.int32(0x7FFFFFFF), zbits).view(_F)
    owner = np.full(n_samples, -1, dtype=np.int64)
    owner[hit] = best[hit] & 0xFFFFFFFF
    return zbuf, owner


def _raster(
    tt: np.ndarray,
    origin: np.ndarray,
    m: np.ndarray,
    off: np.ndarray,
    sh: Shading,
    ws: int,
    hs: int,
    colors: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    P = _project(tt, origin, m)
    P[0] += off[0]
    P[1] += off[1]
    (X0, X1, X2), (Y0, Y1, Y2), (Z0, Z1, Z2) = P
    ax, ay, az = X1 - X0, Y1 - Y0, Z1 - Z0
    bx, by, bz = X2 - X0, Y2 - Y0, Z2 - Z0
    mx = ay * bz - az * by
    my = az * bx - ax * bz
    mz = ax * by - ay * bx
    nl2 = mx * mx + my * my + mz * mz
    # The numba kernel's test: corners on the grid (no NaN/inf, none far off the framed screen).
    drawable = _within(P[:2], GRID_MAX) & _within(P[2], FINITE_MAX) & (nl2 != 0)

    xmin, xmax, ymin, ymax = _min3(P[0]), _max3(P[0]), _min3(P[1]), _max3(P[1])
    tiny = drawable & (xmax - xmin < 1) & (ymax - ymin < 1)
    cands = [_tiny(P, mz, np.flatnonzero(tiny), ws, hs)]
    rest = drawable & ~tiny
    no_xy = (np.floor(xmax - _HALF) < np.ceil(xmin - _HALF)) | (np.floor(ymax - _HALF) < np.ceil(ymin - _HALF))
    ex, ey = X2 - X1, Y2 - Y1
    edges = np.stack([ax * ax + ay * ay, ex * ex + ey * ey, bx * bx + by * by])
    lmax = _max3(edges)
    line = rest & (no_xy | ((lmax >= 4) & (_F(4.0) * mz * mz < lmax)))
    cands.append(_lines(P, edges, np.flatnonzero(line), ws, hs))
    area = rest & ~line & (mz != 0)
    cands += _areas(P, np.flatnonzero(area), ws, hs)  # a sliver is its line
    zbuf, owner = _depth_test(cands, ws * hs)

    # Shade only the triangles that won a sample. Screen Y is down, hence the sign on my; two-sided
    # lighting faces every normal toward the camera.
    won = np.unique(owner[owner >= 0])
    sgn = np.where(mz[won] < 0, _F(-1.0), _F(1.0))
    nx, ny, nz = mx[won] * sgn, -my[won] * sgn, mz[won] * sgn
    inv_l = _F(1.0) / np.sqrt(nl2[won])
    (l1x, l1y, l1z), (l2x, l2y, l2z) = sh.lights
    d1 = (nx * l1x + ny * l1y + nz * l1z) * inv_l
    d2 = (nx * l2x + ny * l2y + nz * l2z) * inv_l
    shade = np.zeros(tt.shape[1], dtype=_F)
    shade[won] = _F(sh.ambient) + _F(sh.key) * np.maximum(d1, _F(0)) + _F(sh.fill) * np.maximum(d2, _F(0))
    sbuf = np.where(owner >= 0, shade[owner], _F(0.0))
    cbuf = None if colors is None else _sample_colors(P, owner, area, colors, ws).reshape(hs, ws)
    return zbuf.reshape(hs, ws), sbuf.reshape(hs, ws), cbuf


def _sample_colors(P: np.ndarray, owner: np.ndarray, area: np.ndarray, colors: np.ndarray, ws: int) -> np.ndarray:
    """Per sample, the packed colour of the triangle that drew it (0 where none did), as the numba
    kernel records it: corner colours blended by the sample centre's barycentrics for area triangles,
    the corners' mean for sub-sample and line-drawn ones, and no blending when corners agree."""
    out = np.zeros(owner.shape, dtype=np.int32)
    hit = np.flatnonzero(owner >= 0)
    tri = owner[hit]
    if colors.shape[1] == 1:
        out[hit] = colors[tri, 0]
        return out
    b = np.full((3, len(hit)), _THIRD, dtype=_F)
    a = area[tri]
    (X0, X1, X2), (Y0, Y1, Y2), _ = P[:, :, tri[a]]
    fx = (hit[a] % ws).astype(_F) + _HALF
    fy = (hit[a] // ws).astype(_F) + _HALF
    inv = _F(1.0) / ((X1 - X0) * (Y2 - Y0) - (Y1 - Y0) * (X2 - X0))
    b[0, a] = ((X2 - X1) * (fy - Y1) - (Y2 - Y1) * (fx - X1)) * inv
    b[1, a] = ((X0 - X2) * (fy - Y2) - (Y0 - Y2) * (fx - X2)) * inv
    b[2, a] = _F(1.0) - b[0, a] - b[1, a]
    packed = np.zeros(len(hit), dtype=np.int32)
    for shift in (16, 8, 0):
        v = b[0] * ((colors[tri, 0] >> shift) & 255).astype(_F)
        v = v + b[1] * ((colors[tri, 1] >> shift) & 255).astype(_F)
        v = v + b[2] * ((colors[tri, 2] >> shift) & 255).astype(_F)
        packed |= np.clip((v + _HALF).astype(np.int64), 0, 255).astype(np.int32) << shift
    out[hit] = packed
    return out


def _channels(packed: np.ndarray) -> list[np.ndarray]:
    return [((packed >> shift) & 255).astype(_F) for shift in (16, 8, 0)]


def _resolve(
    zbuf: np.ndarray, sbuf: np.ndarray, ss: int, sh: Shading, rgb: list[np.ndarray] | None = None
) -> np.ndarray:
    hs, ws = zbuf.shape
    h, w = hs // ss, ws // ss
    out = np.zeros((h, w, 4), dtype=np.uint8)
    empty = EMPTY_DEPTH
    cov = zbuf > empty
    if not cov.any():
        return out
    zlo, zhi = zbuf[cov].min(), zbuf[cov].max()
    one = _F(1.0)
    inv_zr = one / max(zhi - zlo, _F(1e-6))
    v = sbuf * (one - _F(sh.depth_cue) * (one - (zbuf - zlo) * inv_zr))
    p = np.pad(zbuf, 1, constant_values=empty)
    zl, zr, zu, zd = p[1:-1, :-2], p[1:-1, 2:], p[:-2, 1:-1], p[2:, 1:-1]
    jump = _F(sh.edge_depth_jump)
    edge = (
        (zl <= empty)
        | (zr <= empty)
        | (zu <= empty)
        | (zd <= empty)
        | (np.abs(zl + zr - zbuf - zbuf) > jump)  # overflows to inf next to empty samples: still "edge"
        | (np.abs(zu + zd - zbuf - zbuf) > jump)
    )
    v = np.where(edge, v * _F(1.0 - sh.edge_darken), v)
    v = np.where(cov, v, _F(0.0))
    # Same summation order as the numba loop (row of the block, then column).
    planes = [v] if rgb is None else [v * ch for ch in rgb]
    accs = [np.zeros((h, w), dtype=_F) for _ in planes]
    cnt = np.zeros((h, w), dtype=np.int64)
    for j in range(ss):
        for i in range(ss):
            for acc, plane in zip(accs, planes, strict=True):
                acc += plane[j::ss, i::ss]
            cnt += cov[j::ss, i::ss]
    some = cnt > 0
    if rgb is None:
        mean = accs[0][some] / cnt[some].astype(_F)
        for c in range(3):
            out[..., c][some] = np.minimum((mean * sh.base_rgb[c] + _HALF).astype(np.int64), 255)
    else:
        inv_cov = _F(1.0) / cnt[some].astype(_F)
        for c in range(3):
            out[..., c][some] = np.minimum((accs[c][some] * inv_cov + _HALF).astype(np.int64), 255)
    full = _F(255.0 / (ss * ss))
    out[..., 3][some] = (cnt[some].astype(_F) * full + _HALF).astype(np.int64)
    return out


def render_and_count(
    triangles: np.ndarray,
    screen_size: int,
    supersample: int,
    margin: float,
    shading: Shading,
    colors: np.ndarray | None = None,
    faces: np.ndarray | None = None,
    winding: int = 0,
) -> tuple[np.ndarray | None, int]:
    """:func:`render`, and for a soup the number of triangles with nine finite coordinates (-1 when
    nothing is drawable or for an indexed mesh), as :func:`sidecar_thumbs.render.kernel_numba.render_and_count`.
    ``winding`` is not used: this kernel draws every face in one pass."""
    img = render(triangles, screen_size, supersample, margin, shading, colors, faces)
    if img is None or faces is not None:
        return img, -1
    return img, int(np.isfinite(triangles).all(axis=1).sum())


def render(
    triangles: np.ndarray,
    screen_size: int,
    supersample: int,
    margin: float,
    shading: Shading,
    colors: np.ndarray | None = None,
    faces: np.ndarray | None = None,
) -> np.ndarray | None:
    """Render a float32 (N, 9) triangle soup, or (V, 3) vertices with ``faces``; ``None`` when no
    triangle is drawable.

    Same contract as :func:`sidecar_thumbs.render.kernel_numba.render`. An indexed mesh is drawn as its
    soup (this kernel projects every corner anyway).
    """
    if faces is not None:
        if faces.size and (faces.min() < 0 or faces.max() >= triangles.shape[0]):
            raise ValueError(f"a face index is outside the {triangles.shape[0]} vertices")
        triangles = triangles[faces].reshape(-1, 9)
    # NaN/inf/overflow are expected here (they mark triangles to skip), not worth a warning.
    with np.errstate(all="ignore"):
        return _render(triangles, screen_size, supersample, margin, shading, colors)


def _first_finite(t: np.ndarray) -> int:
    """Index of the first triangle with nine finite coordinates, -1 if none (usually looks at one block)."""
    for start in range(0, t.shape[0], 4096):
        ok = (np.abs(t[start : start + 4096]) < _F(FINITE_MAX)).all(axis=1)
        if ok.any():
            return start + int(np.argmax(ok))
    return -1


def _render(
    t: np.ndarray, screen_size: int, supersample: int, margin: float, shading: Shading, colors: np.ndarray | None
) -> np.ndarray | None:
    first = _first_finite(t)
    if first < 0:
        return None
    origin = np.ascontiguousarray(t[first, :3])
    tt = np.ascontiguousarray(t.T)  # one transposing copy; every later pass then reads contiguous rows
    x, y = _project(tt, origin, VIEW_XY)
    ok = _within(x, FINITE_MAX) & _within(y, FINITE_MAX)
    if not ok.all():
        if not ok.any():
            return None
        x, y = x[:, ok], y[:, ok]
    ws = hs = screen_size * supersample
    extents = (x.min(), x.max(), y.min(), y.max())
    xf = fit_to_screen(extents, origin, ws, hs, margin)
    del x, y
    colored = colors is not None and colors.shape[0] == t.shape[0]
    zbuf, sbuf, cbuf = _raster(tt, xf.origin, xf.matrix, xf.offset, shading, ws, hs, colors if colored else None)
    # Resolve only the window the model can touch (camera.sample_window): outside it every sample is
    # empty, so the pixels are the same.
    x0, y0, x1, y1 = sample_window(xf, extents, ws, hs, supersample)
    win = np.s_[y0:y1, x0:x1]
    part = _resolve(zbuf[win], sbuf[win], supersample, shading, None if cbuf is None else _channels(cbuf[win]))
    out = np.zeros((screen_size, screen_size, 4), dtype=np.uint8)
    ss = supersample
    out[y0 // ss : y1 // ss, x0 // ss : x1 // ss] = part
    return out
