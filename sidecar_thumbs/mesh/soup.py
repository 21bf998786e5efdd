"""The last step of every loader: turn parsed coordinates into the triangle soup a :class:`Mesh` holds."""

from __future__ import annotations

import numpy as np

from sidecar_thumbs.errors import NoGeometryError

__all__ = ["finish_coloured", "finish_triangles", "finite_rows", "rgba_from_unit"]


def finite_rows(triangles: np.ndarray) -> np.ndarray | None:
    """Which triangles :func:`finish_triangles` keeps: None when all are finite (the common case, two
    vectorised reductions), else a bool mask, so per-triangle data (colours) can be kept in step."""
    tri = triangles.reshape(-1, 9)
    if tri.shape[0] == 0 or (np.isfinite(tri.min()) and np.isfinite(tri.max())):
        return None
    return np.isfinite(tri).all(axis=1)


def finish_triangles(triangles: np.ndarray, what: str = "no triangles") -> np.ndarray:
    """Return ``triangles`` as a C-contiguous float32 ``(N, 3, 3)`` array without non-finite triangles.

    A triangle with a NaN or infinite coordinate cannot be framed or rasterised: one such vertex would
    make the bounding box (and so the camera) infinite and the whole thumbnail blank. Such triangles
    are dropped rather than failing the file, because the rest of the model is usually fine (they
    come from degenerate exports or coordinates overflowing float32).

    Args:
        triangles: array reshapeable to ``(N, 3, 3)``.
        what: message of the :class:`NoGeometryError` raised when nothing is left.

    Raises:
        NoGeometryError: no finite triangle remains.
    """
    tri = np.ascontiguousarray(triangles, dtype=np.float32).reshape(-1, 3, 3)
    if tri.shape[0] == 0:
        raise NoGeometryError(what)
    # min/max propagate NaN and expose ±inf without allocating a mask: the common all-finite case
    # costs two vectorised reductions.
    if np.isfinite(tri.min()) and np.isfinite(tri.max()):
        return tri
    finite = np.isfinite(tri.reshape(-1, 9)).all(axis=1)
    tri = np.ascontiguousarray(tri[finite])
    if tri.shape[0] == 0:
        raise NoGeometryError(f"{what}: every triangle has a non-finite coordinate")
    return tri


def finish_coloured(
    triangles: np.ndarray, colors: np.ndarray | None, what: str = "no triangles"
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`finish_triangles` for a soup with per-triangle colours: a dropped triangle drops its
    colour too, so the two arrays stay aligned. ``colors`` (``(N, 4)`` uint8 or None) is returned
    C-contiguous, or None when no triangle has a colour (alpha 0 everywhere)."""
    tri = np.ascontiguousarray(triangles, dtype=np.float32).reshape(-1, 3, 3)
    if colors is not None and len(tri) and not (np.isfinite(tri.min()) and np.isfinite(tri.max())):
        colors = colors[np.isfinite(tri.reshape(-1, 9)).all(axis=1)]
    tri = finish_triangles(tri, what)
    if colors is None or not colors[:, 3].any():
        return tri, None
    return tri, np.ascontiguousarray(colors, dtype=np.uint8)


def rgba_from_unit(rgb: np.ndarray) -> np.ndarray:
    """``(N, 3)`` colours in 0..1 (NaN: no colour) -> ``(N, 4)`` uint8 with alpha 255 where given."""
    rgb = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    given = ~np.isnan(rgb).any(axis=1)
    out = np.zeros((len(rgb), 4), np.uint8)
    out[given, :3] = np.round(np.clip(rgb[given], 0.0, 1.0) * 255.0)
    out[given, 3] = 255
    return out
