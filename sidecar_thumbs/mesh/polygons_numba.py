"""The numba kernel of :mod:`sidecar_thumbs.mesh.polygons`: its loop, compiled.

The source stays in ``polygons.py`` so that there is one triangulation, and numba's on-disk cache
(keyed by the source file of the compiled function) notices any change to it. Importing this module
imports numba; ``polygons`` falls back to NumPy and plain Python when that fails.
"""

from __future__ import annotations

import numba as nb

from sidecar_thumbs.mesh import polygons

__all__ = ["triangulate_loop"]

triangulate_loop = nb.njit(cache=True, nogil=True)(polygons.triangulate_loop)
