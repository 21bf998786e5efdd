"""One switch for the byte-level kernels of the G-code readers: numba-compiled, or plain Python.

The G-code scanner, the MeatPack and the heatshrink decoders are state machines over bytes; a
vectorised NumPy twin of them (as the 3MF scanner has) would be a second program to keep in step.
Instead each is written once in the subset numba compiles, and :func:`kernel` either compiles it or
returns it unchanged: the same code then runs as (slow but correct) Python where numba is missing
or ``SIDECAR_THUMBS_NO_NUMBA=1`` is set. The choice is made once, when this module is imported.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from sidecar_thumbs import numba_cache

__all__ = ["COMPILED", "kernel"]

F = TypeVar("F", bound=Callable[..., Any])


def _numba_jit() -> Callable[[Any], Any] | None:
    if os.environ.get("SIDECAR_THUMBS_NO_NUMBA"):
        return None
    numba_cache.configure()
    try:
        import numba
    except ImportError:
        return None
    return numba.njit(cache=True, nogil=True)


_JIT = _numba_jit()
COMPILED = _JIT is not None


def kernel(fn: F) -> F:
    """Compile ``fn`` with numba when it is available; otherwise return it as it is."""
    return fn if _JIT is None else _JIT(fn)
