"""The numba kernel of :mod:`sidecar_thumbs.mesh.polygons`: its loop, compiled.

The source stays in ``polygons.py`` so that there is one triangulation (numba's on-disk cache
follows any change to it, see :mod:`sidecar_thumbs.numba_cache`). Importing this module imports
numba; ``polygons`` falls back to NumPy and plain Python when that fails.
"""

from __future__ import annotations

import numba as nb

from sidecar_thumbs.mesh import polygons

__all__ = ["triangulate_loop"]

triangulate_loop = nb.njit(cache=True, nogil=True)(polygons.triangulate_loop)
