"""The fast lane (`pytest -m "not integration and not soak"`) does not import the test files whose
every test is ``integration``: their tests would all be deselected anyway, and importing them
(Dask, Playwright, trimesh, hypothesis strategies, the reliability helpers) and rewriting their
asserts cost about 2 s of the lane's CPU. Plain `pytest` collects and runs everything as before.

A file counts as integration-only when it sets ``pytestmark = pytest.mark.integration`` (or a list
that starts with it) at module level, which marks every test in it. Only the fast lane's own mark
expressions skip files; any other ``-m`` collects them and lets pytest's own selection decide.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# `-m` expressions (spaces normalised) under which no integration test can be selected.
FAST_LANE_EXPRESSIONS = frozenset({"not integration", "not integration and not soak", "not soak and not integration"})
_WHOLE_FILE_INTEGRATION = re.compile(rb"^pytestmark = (?:\[\s*)?pytest\.mark\.integration\b", re.MULTILINE)


def in_fast_lane(config: pytest.Config) -> bool:
    expression = " ".join((config.getoption("markexpr", "") or "").split())
    return expression in FAST_LANE_EXPRESSIONS


def integration_only(path: Path) -> bool:
    """Whether the test file marks its every test ``integration`` (read as text: not imported)."""
    try:
        return _WHOLE_FILE_INTEGRATION.search(path.read_bytes()) is not None
    except OSError:
        return False  # let pytest's own collection report it


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.suffix == ".py" and collection_path.name.startswith("test_") and in_fast_lane(config):
        return integration_only(collection_path) or None
    return None
