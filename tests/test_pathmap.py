"""Path mapping for remote workers: longest prefix, whole components, clear errors."""

from __future__ import annotations

import unicodedata

import pytest

from sidecar_thumbs.errors import ConfigError
from sidecar_thumbs.work.executors.pathmap import PathMap, parse_path_map, parse_path_map_setting, parse_path_mapping


def test_maps_prefix_and_keeps_the_rest() -> None:
    m = parse_path_map(["/Volumes/3D-Files=/mnt/3d"])
    assert m("/Volumes/3D-Files/Cars/a b.stl") == "/mnt/3d/Cars/a b.stl"
    assert m("/Volumes/3D-Files") == "/mnt/3d"


def test_only_whole_components_match() -> None:
    m = parse_path_map(["/Volumes/3D=/mnt/3d"])
    assert m("/Volumes/3D-Files/x.stl") == "/Volumes/3D-Files/x.stl"
    assert m("/Volumes/3D/x.stl") == "/mnt/3d/x.stl"


def test_longest_prefix_wins_whatever_the_order() -> None:
    rules = ["/Volumes/3D-Files=/mnt/3d", "/Volumes/3D-Files/Big=/mnt/big"]
    for specs in (rules, rules[::-1]):
        m = parse_path_map(specs)
        assert m("/Volumes/3D-Files/Big/x.stl") == "/mnt/big/x.stl"
        assert m("/Volumes/3D-Files/Bigger/x.stl") == "/mnt/3d/Bigger/x.stl"


def test_unmatched_and_relative_paths_are_unchanged() -> None:
    m = parse_path_map(["/Volumes/3D-Files=/mnt/3d"])
    assert m("/Users/me/x.stl") == "/Users/me/x.stl"
    assert m("Volumes/3D-Files/x.stl") == "Volumes/3D-Files/x.stl"
    assert not PathMap() and PathMap()("/a/b") == "/a/b"


def test_trailing_and_double_slashes_are_tolerated() -> None:
    m = parse_path_map(["/Volumes/3D-Files/=/mnt/3d/"])
    assert m("/Volumes//3D-Files/x.stl") == "/mnt/3d/x.stl"
    assert parse_path_mapping("/a/=/b/").source == "/a"


def test_windows_targets_use_their_separator() -> None:
    assert parse_path_map(["/Volumes/3D=Z:\\3d"])("/Volumes/3D/Cars/x.stl") == "Z:\\3d\\Cars\\x.stl"
    assert parse_path_map(["/Volumes/3D=\\\\nas\\3d"])("/Volumes/3D/x.stl") == "\\\\nas\\3d\\x.stl"
    assert parse_path_map(["/Volumes/3D=Z:/3d"])("/Volumes/3D/Cars/x.stl") == "Z:/3d/Cars/x.stl"


def test_unicode_normalisation_does_not_prevent_a_match() -> None:
    composed, decomposed = (unicodedata.normalize(f, "Modèles") for f in ("NFC", "NFD"))
    m = parse_path_map([f"/Volumes/{composed}=/mnt/m"])
    assert m(f"/Volumes/{decomposed}/x.stl") == "/mnt/m/x.stl"


def test_equals_sign_inside_a_path() -> None:
    rule = parse_path_mapping("/Volumes/a=b=/mnt/ab")
    assert (rule.source, rule.target) == ("/Volumes/a=b", "/mnt/ab")


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("/Volumes/3D", "no '='"),
        ("3D=/mnt/3d", "absolute"),
        ("/Volumes/3D=mnt", "absolute"),
        ("/a=/b=/c", "ambiguous"),
    ],
)
def test_malformed_rules_are_config_errors(spec: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_path_mapping(spec)


def test_one_source_with_two_targets_is_an_error() -> None:
    with pytest.raises(ConfigError, match="two targets"):
        parse_path_map(["/a=/b", "/a/=/c"])
    assert parse_path_map(["/a=/b", "/a/=/b"])("/a/x") == "/b/x"  # the same rule twice is fine


def test_setting_splits_on_newlines_and_semicolons() -> None:
    m = parse_path_map_setting("/Volumes/A=/mnt/a\n/Volumes/B=Z:\\b; /Volumes/C=/mnt/c\n")
    assert [str(r) for r in m.mappings] == ["/Volumes/A=/mnt/a", "/Volumes/B=Z:\\b", "/Volumes/C=/mnt/c"]
    assert m("/Volumes/C/x") == "/mnt/c/x"
