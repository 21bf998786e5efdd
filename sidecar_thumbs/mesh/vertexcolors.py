"""Triangle colours from vertex colours (PLY, OBJ): the mean of a triangle's three corners, as RGBA rows.

A vertex-coloured 100k-triangle PLY spent 16 ms here in NumPy (a float64 (T, 3, 3) gather for the mean,
NaN masks, masked copies), twice its uncoloured load; the numba pass
(:mod:`sidecar_thumbs.mesh.vertexcolors_numba`) does it in one pass, with the same float64 operations
in the same order, so the same bytes. The NumPy code stays as its twin where numba is missing.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from sidecar_thumbs import numba_cache
from sidecar_thumbs.mesh.soup import rgba_from_unit

__all__ = ["mean_vertex_rgba", "warm_up"]


def _load_kernel() -> ModuleType | None:
    return numba_cache.import_kernel("sidecar_thumbs.mesh.vertexcolors_numba")


def warm_up() -> None:
    """Load (or compile) the numba pass: it compiles when its module is imported, so a worker does this
    at start, not on its first coloured PLY or OBJ."""
    _load_kernel()


def mean_vertex_rgba(
    vcolors: np.ndarray,
    tris: np.ndarray,
    base: np.ndarray | None,
    vertex_first: bool,
    use_numba: bool | None = None,
) -> np.ndarray:
    """:func:`~sidecar_thumbs.mesh.soup.rgba_from_unit` of each triangle's colour: its corners' mean
    vertex colour, or its ``base`` colour.

    Args:
        vcolors: float (V, 3) vertex colours in 0..1, NaN where a vertex has none.
        tris: int (T, 3) vertex indices (all < V).
        base: float (T, 3) the triangles' own colours in 0..1 (NaN: none), or None (none anywhere).
        vertex_first: True (OBJ): the mean wins wherever it has no NaN; False (PLY): the base colour
            wins wherever it has no NaN.
        use_numba: None takes the numba pass when it is importable; False the NumPy twin.

    Returns:
        uint8 (T, 4), alpha 255 where a triangle has a colour.
    """
    kernel = numba_cache.chosen_kernel(_load_kernel(), use_numba)
    if kernel is None:
        rgb = np.full((len(tris), 3), np.nan) if base is None else np.array(base, np.float64)
        per_tri = vcolors[tris].mean(axis=1)  # NaN when a corner has no colour
        use = ~np.isnan(per_tri).any(axis=1) if vertex_first else np.isnan(rgb).any(axis=1)
        rgb[use] = per_tri[use]
        return rgba_from_unit(rgb)
    out = np.zeros((len(tris), 4), np.uint8) if base is None else rgba_from_unit(base)
    kernel.put_vertex_means(
        np.ascontiguousarray(vcolors, np.float64), np.ascontiguousarray(tris, np.int64), out, vertex_first
    )
    return out
