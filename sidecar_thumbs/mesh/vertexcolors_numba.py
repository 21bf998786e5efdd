"""The numba pass of :func:`sidecar_thumbs.mesh.vertexcolors.mean_vertex_rgba`.

The twin's arithmetic exactly: NumPy's ``mean`` over a triangle's three corners adds them in order and
divides by 3 (a reduction over three elements is not pairwise), ``rgba_from_unit`` clips to 0..1,
multiplies by 255 and rounds half to even (``np.rint`` here, the same rule).

Importing this module imports numba; :mod:`vertexcolors` uses its twin when that fails.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import types

__all__ = ["put_vertex_means"]


# One signature (the caller hands contiguous float64 colours and int64 indices): compiled, or loaded from
# the cache, at import, one machine-code version for every file.
_SIGNATURE = types.void(
    types.Array(types.float64, 2, "C", readonly=True),
    types.Array(types.int64, 2, "C", readonly=True),
    types.Array(types.uint8, 2, "C"),
    types.boolean,
)


@nb.njit(_SIGNATURE, cache=True, nogil=True)
def put_vertex_means(vcolors: np.ndarray, tris: np.ndarray, out: np.ndarray, vertex_first: bool) -> None:
    """Write each triangle's mean vertex colour into ``out`` (uint8 (T, 4) RGBA, holding the base
    colours) where it applies: ``vertex_first``, wherever the mean has no NaN; else wherever the base
    row has no colour (alpha 0; a NaN mean then leaves it so)."""
    mean = np.empty(3, np.float64)
    for t in range(tris.shape[0]):
        if not vertex_first and out[t, 3] != 0:
            continue
        a, b, c = tris[t, 0], tris[t, 1], tris[t, 2]
        given = True
        for ch in range(3):
            m = (vcolors[a, ch] + vcolors[b, ch] + vcolors[c, ch]) / 3.0
            if np.isnan(m):
                given = False
            mean[ch] = m
        if not given:
            continue  # the base row stays, as the twin's masks leave it
        for ch in range(3):
            out[t, ch] = np.uint8(np.rint(min(max(mean[ch], 0.0), 1.0) * 255.0))
        out[t, 3] = 255
