"""numba options and argument types shared by the numba kernel's modules (no compiled code here)."""

from __future__ import annotations

import numpy as np
from numba import types

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
# Model colours: packed 0xRRGGBB int32, (N, 1) per triangle or (N, 3) per corner; (0, 1) for the base colour.
_COLS = types.Array(types.int32, 2, "A", readonly=True)
_IVEC = types.Array(types.int32, 1, "C")
# The indexed form: vertices (V, 3) float32 and faces (F, 3) int32 into them, C-contiguous (a loader's arrays
# or views of them, possibly read-only); projected vertices (V, 3) are the kernel's own scratch.
_VERTS = types.Array(_F32, 2, "C", readonly=True)
_FACES = types.Array(types.int32, 2, "C", readonly=True)
_STATE = types.Array(types.uint8, 1, "C")

_NO_COLORS = np.zeros((0, 1), dtype=np.int32)
_NO_COLORS.setflags(write=False)
_NO_SOUP = np.zeros((0, 9), dtype=np.float32)
_NO_SOUP.setflags(write=False)
_NO_FACES = np.zeros((0, 3), dtype=np.int32)
_NO_FACES.setflags(write=False)
_NO_VERTS = np.zeros((0, 3), dtype=np.float32)
