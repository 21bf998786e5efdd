"""Issue 15 item 1: one rule for "is a model" (discovery, watcher, loaders' dispatch, archives), set by
the extensions setting, and ``Thumb::Mimetype`` per format."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sidecar_thumbs.daemon.events import _relevant
from sidecar_thumbs.errors import BadModelError, ConfigError
from sidecar_thumbs.files import discover
from sidecar_thumbs.files.discover import find_model_files, is_model_name, set_model_extensions
from sidecar_thumbs.files.formats import ALL_SUFFIXES, FORMATS, format_for_name, mimetype_for_name, parse_suffixes
from sidecar_thumbs.files.sidecar import metadata_for
from sidecar_thumbs.mesh.archive import entry_kind
from sidecar_thumbs.mesh.load import detect_format
from sidecar_thumbs.settings.fields import Settings
from sidecar_thumbs.settings.loading import load_settings

EXTENSIONS = [".stl", ".3mf", ".obj", ".ply", ".amf", ".amf.xml", ".step", ".stp", ".gcode", ".bgcode", ".zip", ".7z"]
NOT_MODELS = ["cube.mtl", "preview.png", "photo.JPG", "README.txt", "notes.md", "x.xml", "LICENSE", "plate.gco"]
MIMETYPES = {
    ".stl": "model/stl",
    ".3mf": "model/3mf",
    ".obj": "model/obj",
    ".ply": "model/x-ply",
    ".amf": "application/x-amf",
    ".amf.xml": "application/x-amf",
    ".step": "model/step",
    ".stp": "model/step",
    ".gcode": "text/x-gcode",
    ".bgcode": "application/x-bgcode",
    ".zip": "application/zip",
    ".7z": "application/x-7z-compressed",
}


@pytest.fixture(autouse=True)
def _all_extensions() -> Iterator[None]:
    # The active set is per process: leave it as the other tests expect it.
    yield
    set_model_extensions(ALL_SUFFIXES)


def _cases(ext: str) -> list[str]:
    return [f"Part{ext}", f"Part{ext.upper()}", f"Part{ext.title()}", f"a b (2){ext}"]


def test_the_registry_lists_exactly_the_issue_extensions() -> None:
    assert sorted(ALL_SUFFIXES) == sorted(EXTENSIONS)
    assert sorted(MIMETYPES) == sorted(EXTENSIONS)


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_every_extension_in_any_case_is_a_model(ext: str) -> None:
    for name in _cases(ext):
        assert is_model_name(name), name
        assert format_for_name(name) is not None
        detect_format(name)  # no error


@pytest.mark.parametrize("name", NOT_MODELS)
def test_material_files_images_and_text_are_never_models(name: str) -> None:
    assert not is_model_name(name)
    assert format_for_name(name) is None
    with pytest.raises(BadModelError, match="not a model file"):
        detect_format(name)


def test_amf_xml_is_amf_but_plain_xml_is_not() -> None:
    assert detect_format("Cube.AMF.XML") == "amf"
    assert format_for_name("cube.xml") is None


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_sidecar_mimetype_per_format(ext: str) -> None:
    for name in _cases(ext):
        meta = metadata_for(name, size=1, mtime_ns=0, content_hash="h", source="rendered", settings="s")
        assert meta["Thumb::Mimetype"] == MIMETYPES[ext] == mimetype_for_name(name)


def test_unknown_extension_has_the_generic_mimetype() -> None:
    assert mimetype_for_name("x.mtl") == "application/octet-stream"


def test_walk_finds_every_format_in_any_case_and_nothing_else(tmp_path: Path) -> None:
    wanted = []
    for i, ext in enumerate(EXTENSIONS):
        p = tmp_path / f"m{i}{ext.upper() if i % 2 else ext}"
        p.write_bytes(b"x")
        wanted.append(str(p))
    for name in NOT_MODELS:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "._m0.stl").write_bytes(b"x")  # AppleDouble litter
    files, problems = find_model_files([tmp_path])
    assert problems == []
    assert sorted(f.path for f in files) == sorted(wanted)


def test_extensions_setting_narrows_discovery_and_the_watcher(tmp_path: Path) -> None:
    for name in ("a.stl", "b.zip", "c.STEP", "d.obj"):
        (tmp_path / name).write_bytes(b"x")
    set_model_extensions(".stl, STEP")
    assert discover.model_suffixes() == (".stl", ".step")
    files, _ = find_model_files([tmp_path])
    assert sorted(Path(f.path).name for f in files) == ["a.stl", "c.STEP"]
    assert _relevant(str(tmp_path / "c.STEP"), False)
    assert not _relevant(str(tmp_path / "b.zip"), False)
    assert not is_model_name("d.obj")


def test_extensions_setting_defaults_to_every_format_and_rejects_unknown_ones(tmp_path: Path) -> None:
    assert Settings().model_suffixes == ALL_SUFFIXES
    s = load_settings(environ={"SIDECAR_THUMBS_EXTENSIONS": ".STL .3mf zip"}, cwd=tmp_path)
    assert s.model_suffixes == (".stl", ".3mf", ".zip")
    with pytest.raises(ConfigError, match=r"unknown model extension '\.dwg'"):
        load_settings(environ={"SIDECAR_THUMBS_EXTENSIONS": ".stl .dwg"}, cwd=tmp_path)
    with pytest.raises(ValueError, match="no model extensions"):
        parse_suffixes(" , ")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("files/Part.STL", "model"),
        ("deep/er/x.amf.xml", "model"),
        ("STL files.zip", "archive"),
        ("x.7Z", "archive"),
        ("images/Photo.JPG", "image"),
        ("cube.mtl", "other"),
        ("__MACOSX/files/._Part.stl", "other"),
        ("files/._Part.stl", "other"),
        ("files/", "other"),
        ("../../x.stl", "model"),  # a name, never a path: it is read into memory, not extracted
    ],
)
def test_archive_entries_use_the_same_rule(name: str, kind: str) -> None:
    assert entry_kind(name) == kind


def test_every_format_has_a_reader_kind() -> None:
    # Formats whose readers are optional name their extra, which pyproject.toml must define.
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    for fmt in FORMATS:
        if fmt.extra:
            assert f"\n{fmt.extra} = [" in text, fmt


def test_scan_command_follows_the_extensions_setting(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import shutil

    from click.testing import CliRunner

    from sidecar_thumbs.cli.main import cli

    monkeypatch.chdir(tmp_path)  # no .env of the repo's
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy2(corpus / "stl-binary" / "admesh__binary.stl", lib / "part.STL")
    shutil.copy2(corpus / "zip" / "constructed__zip-in-zip.zip", lib / "kit.zip")
    (lib / "cube.mtl").write_text("newmtl x\n")
    env = {"SIDECAR_THUMBS_EXTENSIONS": ".stl", "SIDECAR_THUMBS_SIZE": "64"}
    args = ["scan", str(lib), "--db", str(tmp_path / "db.sqlite3"), "--workers", "0", "--json"]
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert json.loads(result.stdout)["found"] == 1
    env["SIDECAR_THUMBS_EXTENSIONS"] = ""  # empty: the default, every format
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    summary = json.loads(result.stdout)
    assert (summary["found"], summary["rendered"]) == (2, 1)
    assert (lib / ".kit.zip.thumbnail.png").is_file() and not (lib / ".cube.mtl.thumbnail.png").exists()


def test_the_python_api_follows_the_extensions_setting(tmp_path: Path, corpus: Path) -> None:
    import shutil

    import sidecar_thumbs

    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy2(corpus / "stl-binary" / "admesh__binary.stl", lib / "part.stl")
    shutil.copy2(corpus / "zip" / "constructed__zip-in-zip.zip", lib / "kit.zip")
    settings = Settings(database=tmp_path / "db.sqlite3", workers=0, size=64, extensions=".stl")
    assert sidecar_thumbs.scan([lib], settings).found == 1
    assert not (lib / ".kit.zip.thumbnail.png").exists()
    summary = sidecar_thumbs.scan([lib], replace(settings, extensions=".stl .zip"))
    assert (summary.found, summary.rendered) == (2, 1)
