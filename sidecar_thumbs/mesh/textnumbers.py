"""Blank-separated numbers in bulk, parsed by NumPy in C (the fast paths of the AMF, OBJ and PLY text readers)."""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["blank_separated"]


def blank_separated(text: bytes, dtype: type) -> np.ndarray | None:
    """Whitespace-separated numbers, or None where NumPy stops early.

    NumPy before 2.3 only warns (DeprecationWarning) on junk and returns what it read so far; later
    versions raise. Both become None so the caller falls back to its exact path or reports the file.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return np.fromstring(text, dtype=dtype, sep=" ")
        except (ValueError, DeprecationWarning):
            return None
