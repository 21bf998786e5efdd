"""Choosing the numba kernel or its pure twin: one rule for every reader that has both."""

from __future__ import annotations

import types

import pytest

from sidecar_thumbs.mesh.cutout import cut_out
from sidecar_thumbs.numba_cache import chosen_kernel

KERNEL = types.ModuleType("a_kernel")


def test_the_kernel_runs_when_it_was_imported_and_nothing_is_forced() -> None:
    assert chosen_kernel(KERNEL, None) is KERNEL
    assert chosen_kernel(None, None) is None  # no numba: the twin


def test_forcing_the_twin_skips_an_imported_kernel() -> None:
    assert chosen_kernel(KERNEL, False) is None
    assert chosen_kernel(None, False) is None


def test_forcing_the_kernel_without_numba_is_an_error() -> None:
    assert chosen_kernel(KERNEL, True) is KERNEL
    with pytest.raises(RuntimeError, match="numba is not available"):
        chosen_kernel(None, True)


def test_cut_out_removes_each_range_and_keeps_the_rest() -> None:
    data = b"<a>0123<b>4567</b></a>"
    assert cut_out(data, [(3, 7), (10, 14)]) == b"<a><b></b></a>"
    assert cut_out(data, []) == data
    assert cut_out(data, [(0, len(data))]) == b""
