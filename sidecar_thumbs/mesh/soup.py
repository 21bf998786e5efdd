"""The last step of every loader: turn parsed coordinates into the triangle soup a :class:`Mesh` holds."""

from __future__ import annotations

import numpy as np

from sidecar_thumbs.errors import NoGeometryError

__all__ = ["finish_triangles", "finite_rows"]


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
