"""The fast lane's own machinery: which corpus files stand for their folder, how a corpus sweep is
split between the lanes, and which test files the fast lane does not import."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from corpus_paths import FAST_LANE, corpus_sweep
from fast_lane import in_fast_lane, integration_only

if TYPE_CHECKING:
    from _pytest.mark.structures import ParameterSet


def test_every_fast_lane_file_is_in_the_corpus(corpus: Path) -> None:
    present = {p.name for p in corpus.rglob("*") if p.is_file()}
    assert sorted(FAST_LANE - present) == []


def _lanes(params: list[ParameterSet]) -> dict[str, bool]:
    """Test id -> whether the parameter runs in the fast lane."""
    return {p.id: not any(m.name == "integration" for m in p.marks) for p in params}


def test_a_sweep_keeps_its_fast_lane_files_and_the_named_ones_and_marks_the_rest_integration() -> None:
    paths = [Path("stl-binary/openscad__import_bin_solid.stl"), Path("stl-binary/big.stl"), Path("x/odd case.stl")]
    assert _lanes(corpus_sweep(paths)) == {
        "openscad__import_bin_solid.stl": True,
        "big.stl": False,
        "odd case.stl": False,
    }
    assert _lanes(corpus_sweep(paths, also={"odd case.stl"}))["odd case.stl"]
    assert [p.values for p in corpus_sweep(paths)] == [(p,) for p in paths]  # same order, same values


def test_a_sweep_refuses_a_misspelt_name_and_a_sweep_with_nothing_in_the_fast_lane() -> None:
    with pytest.raises(ValueError, match="not among"):
        corpus_sweep([Path("stl-binary/openscad__import_bin_solid.stl")], also=["openscad__import_bin_solid.STL"])
    with pytest.raises(ValueError, match="no file in the fast lane"):
        corpus_sweep([Path("stl-binary/big.stl")])
    assert corpus_sweep([], also=["anything.stl"]) == []  # no corpus: the tests that need it skip


@pytest.mark.parametrize(
    ("source", "whole_file"),
    [
        ("import pytest\n\npytestmark = pytest.mark.integration  # real processes\n", True),
        ("pytestmark = [\n    pytest.mark.integration,\n    pytest.mark.skipif(True, reason='x'),\n]\n", True),
        ("pytestmark = pytest.mark.skipif(True, reason='x')\n", False),
        ("@pytest.mark.integration\ndef test_one() -> None: ...\n", False),
        ("pytestmark = pytest.mark.integration_like\n", False),
        ("if x:\n    pytestmark = pytest.mark.integration\n", False),
    ],
)
def test_a_file_is_integration_only_when_its_module_mark_says_so(tmp_path: Path, source: str, whole_file: bool) -> None:
    path = tmp_path / "test_x.py"
    path.write_text(source, encoding="utf-8")
    assert integration_only(path) is whole_file


@pytest.mark.parametrize(
    ("expression", "skips"),
    [
        ("not integration and not soak", True),
        ("not  integration", True),
        ("not soak and not integration", True),
        ("", False),
        ("integration", False),
        ("not integration or soak", False),
        ("soak", False),
    ],
)
def test_only_the_fast_lane_expressions_leave_files_out(
    pytestconfig: pytest.Config, monkeypatch: pytest.MonkeyPatch, expression: str, skips: bool
) -> None:
    monkeypatch.setattr(pytestconfig.option, "markexpr", expression)
    assert in_fast_lane(pytestconfig) is skips
