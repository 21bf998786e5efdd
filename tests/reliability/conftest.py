"""Reliability and security suite: soak deselection and fixtures shared by its files (the ``soak`` and
``integration`` markers are registered in pyproject.toml; every file here is ``integration``).

Soak variants (long kill loops, 5,000-file load) are deselected unless ``-m soak`` is given or
``SIDECAR_THUMBS_SOAK=1`` is set, so CI runs the bounded variants every time.
"""

from __future__ import annotations

import os

import pytest

SOAK_ENV = "SIDECAR_THUMBS_SOAK"


def soak_enabled(config: pytest.Config) -> bool:
    """Whether soak tests run: asked for by env or by a ``-m`` expression naming the marker."""
    return os.environ.get(SOAK_ENV) == "1" or "soak" in (config.getoption("markexpr", "") or "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if soak_enabled(config):
        return
    keep, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("soak") else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
