"""The fallback kernel: the numba kernel's algorithm, vectorised with numpy only.

Used where numba is not installed (Intel Macs, brand-new Pythons). It evaluates the same float32
formulas in the same order as :mod:`.kernel_numba` and resolves depth ties the same way (the nearest
sample wins; among equal depths the later triangle wins), so the two kernels' images agree to within
rounding at a few edge pixels.

Rasterising is done in batches: sub-sample triangles become one centroid splat each; larger ones are
bucketed by the power-of-two size of their sample bounding box, and each bucket is tested against a
dense grid of candidate samples, ``_BATCH_SAMPLES`` candidates at a time to bound memory.
"""

from __future__ import annotations

import numpy as np

from sidecar_thumbs.render.camera import EMPTY_DEPTH, VIEW_XY, Shading, fit_to_screen

_BATCH_SAMPLES = 1 << 20
_F = np.float32
_HALF = _F(0.5)


def _project(t: np.ndarray, origin: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
    """``rows @ (v - origin)`` for every vertex: one (N, 3) array per row (same order as numba)."""
    dx = t[:, 0::3] - origin[0]
    dy = t[:, 1::3] - origin[1]
    dz = t[:, 2::3] - origin[2]
    return [r[0] * dx + r[1] * dy + r[2] * dz for r in rows]


def _candidates(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, ids: np.ndarray, ws: int, hs: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Samples covered by the (non-sub-sample) triangles ``ids``: (sample index, depth, triangle id)."""
    ks: list[np.ndarray] = []
    zs: list[np.ndarray] = []
    fs: list[np.ndarray] = []
    if len(ids) == 0:
        return ks, zs, fs
    X, Y, Z = x[ids], y[ids], z[ids]
    half = _F(0.5)
    bx0 = np.maximum(np.ceil(X.min(1) - half).astype(np.int64), 0)
    bx1 = np.minimum(np.floor(X.max(1) - half).astype(np.int64), ws - 1)
    by0 = np.maximum(np.ceil(Y.min(1) - half).astype(np.int64), 0)
    by1 = np.minimum(np.floor(Y.max(1) - half).astype(np.int64), hs - 1)
    on = (bx1 >= bx0) & (by1 >= by0)  # clipping may leave nothing on screen
    sel = np.flatnonzero(on)
    if len(sel) == 0:
        return ks, zs, fs
    X, Y, Z, ids = X[sel], Y[sel], Z[sel], ids[sel]
    bx0, bx1, by0, by1 = bx0[sel], bx1[sel], by0[sel], by1[sel]
    nx, ny = bx1 - bx0 + 1, by1 - by0 + 1
    # Bucket by power-of-two box size so each bucket is one dense (triangles x samples) grid.
    kx = np.ceil(np.log2(nx)).astype(np.int64)
    ky = np.ceil(np.log2(ny)).astype(np.int64)
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
            fx = px.astype(_F) + half
            fy = py.astype(_F) + half
            X0, X1, X2 = X[o, 0:1], X[o, 1:2], X[o, 2:3]
            Y0, Y1, Y2 = Y[o, 0:1], Y[o, 1:2], Y[o, 2:3]
            mz = (X1 - X0) * (Y2 - Y0) - (Y1 - Y0) * (X2 - X0)
            inv = _F(1.0) / mz
            b0 = ((X2 - X1) * (fy - Y1) - (Y2 - Y1) * (fx - X1)) * inv
            b1 = ((X0 - X2) * (fy - Y2) - (Y0 - Y2) * (fx - X2)) * inv
            b2 = _F(1.0) - b0 - b1
            eps = _F(-1e-4)
            inside = valid & (b0 >= eps) & (b1 >= eps) & (b2 >= eps)
            ii, jj = np.nonzero(inside)
            zt = Z[o][ii]
            ks.append(py[ii, jj] * ws + px[ii, jj])
            zs.append(b0[ii, jj] * zt[:, 0] + b1[ii, jj] * zt[:, 1] + b2[ii, jj] * zt[:, 2])
            fs.append(ids[o][ii])
    return ks, zs, fs


def _tiny(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, mz: np.ndarray, ids: np.ndarray, ws: int, hs: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-sample triangles: their one candidate sample if covered, else a centroid splat (see numba)."""
    X, Y, m = x[ids], y[ids], mz[ids]
    half, third = _F(0.5), _F(1.0 / 3.0)
    sx = np.ceil(X.min(1) - half)
    sy = np.ceil(Y.min(1) - half)
    has = (sx <= np.floor(X.max(1) - half)) & (sy <= np.floor(Y.max(1) - half))
    fx, fy = sx + half, sy + half
    X0, X1, X2 = X[:, 0], X[:, 1], X[:, 2]
    Y0, Y1, Y2 = Y[:, 0], Y[:, 1], Y[:, 2]
    w0 = (X2 - X1) * (fy - Y1) - (Y2 - Y1) * (fx - X1)
    w1 = (X0 - X2) * (fy - Y2) - (Y0 - Y2) * (fx - X2)
    w2 = m - w0 - w1
    sgn = np.where(m < 0, _F(-1.0), _F(1.0))
    tol = _F(-1e-4) * np.abs(m)
    inside = (w0 * sgn >= tol) & (w1 * sgn >= tol) & (w2 * sgn >= tol)
    cx = (X0 + X1 + X2) * third
    cy = (Y0 + Y1 + Y2) * third
    px = np.where(has, sx, cx).astype(np.int64)
    py = np.where(has, sy, cy).astype(np.int64)
    write = np.where(has, inside, (cx >= 0) & (cy >= 0)) & (px < ws) & (py < hs)
    zc = (z[ids, 0] + z[ids, 1] + z[ids, 2]) * third
    return py[write] * ws + px[write], zc[write], ids[write]


def _lines(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, ids: np.ndarray, edges: np.ndarray, ws: int, hs: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slivers drawn as a line along their longest edge (see the numba kernel)."""
    # First longest edge, as numba's if/elif chain picks it: 0 = (v0, v1), 1 = (v1, v2), 2 = (v2, v0).
    e = np.argmax(edges[ids], axis=1)
    a, b = e, (e + 1) % 3
    ax, ay, az = x[ids, a], y[ids, a], z[ids, a]
    dx, dy, dz = x[ids, b] - ax, y[ids, b] - ay, z[ids, b] - az
    steps = np.maximum(np.abs(dx), np.abs(dy)).astype(np.int64) + 1
    inv_n = _F(1.0) / steps.astype(_F)
    counts = steps + 1
    rep = np.repeat(np.arange(len(ids)), counts)
    st = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    f = st.astype(_F) * inv_n[rep]
    lx = ax[rep] + dx[rep] * f
    ly = ay[rep] + dy[rep] * f
    on = (lx >= 0) & (ly >= 0) & (lx < ws) & (ly < hs)
    lz = az[rep] + dz[rep] * f
    return (ly[on].astype(np.int64) * ws + lx[on].astype(np.int64), lz[on], ids[rep[on]])


def _raster(
    t: np.ndarray, xf_origin: np.ndarray, m: np.ndarray, off: np.ndarray, sh: Shading, ws: int, hs: int
) -> tuple[np.ndarray, np.ndarray]:
    X, Y, Z = _project(t, xf_origin, m)
    X += off[0]
    Y += off[1]
    chk = X.sum(1) + Y.sum(1) + Z.sum(1)
    ax, ay, az = X[:, 1] - X[:, 0], Y[:, 1] - Y[:, 0], Z[:, 1] - Z[:, 0]
    bx, by, bz = X[:, 2] - X[:, 0], Y[:, 2] - Y[:, 0], Z[:, 2] - Z[:, 0]
    mx = ay * bz - az * by
    my = az * bx - ax * bz
    mz = ax * by - ay * bx
    nl2 = mx * mx + my * my + mz * mz
    drawable = np.isfinite(chk) & (nl2 != 0)
    # Two-sided: face every normal toward the camera (screen Y is down, hence the sign on my).
    sgn = np.where(mz < 0, _F(-1.0), _F(1.0))
    nx, ny, nz = mx * sgn, -my * sgn, mz * sgn
    inv_l = _F(1.0) / np.sqrt(nl2)
    (l1x, l1y, l1z), (l2x, l2y, l2z) = sh.lights
    d1 = (nx * l1x + ny * l1y + nz * l1z) * inv_l
    d2 = (nx * l2x + ny * l2y + nz * l2z) * inv_l
    shade = _F(sh.ambient) + _F(sh.key) * np.maximum(d1, _F(0)) + _F(sh.fill) * np.maximum(d2, _F(0))

    half = _F(0.5)
    xmin, xmax, ymin, ymax = X.min(1), X.max(1), Y.min(1), Y.max(1)
    tiny = drawable & (xmax - xmin < 1) & (ymax - ymin < 1)
    k0, z0, f0 = _tiny(X, Y, Z, mz, np.flatnonzero(tiny), ws, hs)

    rest = drawable & ~tiny
    no_x = np.floor(xmax - half) < np.ceil(xmin - half)
    no_y = np.floor(ymax - half) < np.ceil(ymin - half)
    cx2, cy2 = X[:, 0] - X[:, 2], Y[:, 0] - Y[:, 2]
    ex, ey = X[:, 2] - X[:, 1], Y[:, 2] - Y[:, 1]
    edges = np.stack([ax * ax + ay * ay, ex * ex + ey * ey, cx2 * cx2 + cy2 * cy2], axis=1)
    lmax = edges.max(axis=1)
    no_xy = no_x | no_y
    line = rest & (no_xy | ((lmax >= 4) & (_F(4.0) * mz * mz < lmax)))
    k1, z1, f1 = _lines(X, Y, Z, np.flatnonzero(line), edges, ws, hs)
    area = rest & ~no_xy & (mz != 0)
    k2, z2, f2 = _candidates(X, Y, Z, np.flatnonzero(area), ws, hs)
    k = np.concatenate([k0, k1, *k2])
    z = np.concatenate([z0, z1, *z2]).astype(_F, copy=False)
    f = np.concatenate([f0, f1, *f2])

    zbuf = np.full(ws * hs, EMPTY_DEPTH, dtype=_F)
    np.maximum.at(zbuf, k, z)
    win = z == zbuf[k]
    # Ties in depth go to the later triangle, as in the numba kernel's in-order `>=` test.
    owner = np.full(ws * hs, -1, dtype=np.int64)
    np.maximum.at(owner, k[win], f[win])
    sbuf = np.zeros(ws * hs, dtype=_F)
    hit = owner >= 0
    sbuf[hit] = shade[owner[hit]]
    return zbuf.reshape(hs, ws), sbuf.reshape(hs, ws)


def _resolve(zbuf: np.ndarray, sbuf: np.ndarray, ss: int, sh: Shading) -> np.ndarray:
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
    acc = np.zeros((h, w), dtype=_F)
    cnt = np.zeros((h, w), dtype=np.int64)
    for j in range(ss):
        for i in range(ss):
            acc += v[j::ss, i::ss]
            cnt += cov[j::ss, i::ss]
    some = cnt > 0
    mean = acc[some] / cnt[some].astype(_F)
    for c in range(3):
        out[..., c][some] = np.minimum((mean * sh.base_rgb[c] + _HALF).astype(np.int64), 255)
    full = _F(255.0 / (ss * ss))
    out[..., 3][some] = (cnt[some].astype(_F) * full + _HALF).astype(np.int64)
    return out


def render(
    triangles: np.ndarray, screen_size: int, supersample: int, margin: float, shading: Shading
) -> np.ndarray | None:
    """Render a float32 (N, 3, 3) triangle soup; ``None`` when no triangle is finite.

    Same contract as :func:`sidecar_thumbs.render.kernel_numba.render`.
    """
    # NaN/inf/overflow are expected here (they mark triangles to skip), not worth a warning.
    with np.errstate(all="ignore"):
        return _render(triangles.reshape(-1, 9), screen_size, supersample, margin, shading)


def _render(
    t: np.ndarray, screen_size: int, supersample: int, margin: float, shading: Shading
) -> np.ndarray | None:
    finite = np.isfinite(t).all(axis=1)
    first = int(np.argmax(finite))
    if not finite[first]:
        return None
    origin = np.ascontiguousarray(t[first, :3])
    x, y = _project(t, origin, VIEW_XY)
    ok = np.isfinite(x.sum(1) + y.sum(1))
    if not ok.any():
        return None
    x, y = x[ok], y[ok]
    ws = hs = screen_size * supersample
    xf = fit_to_screen((x.min(), x.max(), y.min(), y.max()), origin, ws, hs, margin)
    del x, y
    zbuf, sbuf = _raster(t, xf.origin, xf.matrix, xf.offset, shading, ws, hs)
    return _resolve(zbuf, sbuf, supersample, shading)
