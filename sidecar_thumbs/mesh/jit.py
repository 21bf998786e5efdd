"""One switch for the byte-level kernels of the G-code readers: numba-compiled, or plain Python.

The G-code scanner, the MeatPack and the heatshrink decoders are state machines over bytes; a
vectorised NumPy twin of them (as the 3MF scanner has) would be a second program to keep in step.
Instead each is written once in the subset numba compiles, and :func:`kernel` either compiles it or
returns it unchanged: the same code then runs as (slow but correct) Python where numba is missing
or ``SIDECAR_THUMBS_NO_NUMBA=1`` is set. The choice is made once, when this module is imported.
The shared lexing helpers (:mod:`sidecar_thumbs.mesh.lex`) and the polygon triangulation
(:func:`jitable`) use the same switch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from sidecar_thumbs import numba_cache

__all__ = ["COMPILED", "inline", "jitable", "kernel"]

F = TypeVar("F", bound=Callable[..., Any])


def _numba() -> ModuleType | None:
    if os.environ.get("SIDECAR_THUMBS_NO_NUMBA"):
        return None
    try:
        with numba_cache.loading():
            import numba
            import numba.extending
    except ImportError:
        return None
    return numba


_NUMBA = _numba()
COMPILED = _NUMBA is not None


def kernel(fn: F) -> F:
    """Compile ``fn`` with numba (cached on disk, GIL released) when it is available; otherwise return
    it as it is."""
    return fn if _NUMBA is None else _NUMBA.njit(cache=True, nogil=True)(fn)


def inline(fn: F) -> F:
    """:func:`kernel` for a small helper that numba inlines into each compiled caller (``inline="always"``):
    the scanners call these once or twice a byte, where a call costs more than the work."""
    return fn if _NUMBA is None else _NUMBA.njit(cache=True, nogil=True, inline="always")(fn)


def jitable(fn: F) -> F:
    """Let compiled kernels call ``fn`` (numba's ``register_jitable``: compiled into each caller), and
    plain Python call it as it is."""
    return fn if _NUMBA is None else _NUMBA.extending.register_jitable(fn)
