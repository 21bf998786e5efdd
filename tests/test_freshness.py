"""The one freshness rule (verify, gallery and scan's adoption use it): real sidecars of real files."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from mesh_builders import binary_stl

from sidecar_thumbs.files.fingerprint import hash_file
from sidecar_thumbs.files.formats import format_for_name, settings_for
from sidecar_thumbs.files.freshness import Verdict, check_freshness
from sidecar_thumbs.files.sidecar import SidecarInfo, encode_png, metadata_for, read_sidecar, sidecar_path_for
from sidecar_thumbs.render.thumbnail import ThumbnailOptions, make_thumbnail

SETTINGS = "look=1 size=64"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A model with a fresh sidecar of ours made from it."""
    p = tmp_path / "part.stl"
    p.write_bytes(b"solid part\nendsolid part\n")
    st = p.stat()
    meta = metadata_for(p, size=st.st_size, mtime_ns=st.st_mtime_ns, content_hash=hash_file(p), source="rendered",
                        settings=SETTINGS)  # fmt: skip
    sidecar_path_for(p).write_bytes(encode_png(np.zeros((4, 4, 4), np.uint8), meta))
    return p


def _check(model: Path, info: SidecarInfo | None = None, **kwargs: object) -> Verdict:
    st = model.stat()
    info = info if info is not None else read_sidecar(sidecar_path_for(model))
    return check_freshness(str(model), st.st_size, st.st_mtime_ns, info, **kwargs).verdict  # type: ignore[arg-type]


def test_a_sidecar_made_from_this_file_is_fresh(model: Path) -> None:
    assert _check(model) is Verdict.FRESH
    assert _check(model, expected_settings=SETTINGS) is Verdict.FRESH


def test_no_sidecar_is_missing(model: Path) -> None:
    assert check_freshness(str(model), 1, 1, None).verdict is Verdict.MISSING


def test_someone_elses_file_and_a_damaged_one(model: Path) -> None:
    sidecar = sidecar_path_for(model)
    data = sidecar.read_bytes()
    sidecar.write_bytes(data[:-10])
    assert _check(model) is Verdict.CORRUPT
    sidecar.write_bytes(b"\x89PNG\r\n\x1a\nsomething else")
    assert _check(model) is Verdict.FOREIGN


def test_other_settings_count_only_when_asked(model: Path) -> None:
    assert _check(model, expected_settings="look=1 size=512") is Verdict.OTHER_SETTINGS
    assert _check(model) is Verdict.FRESH


def test_a_touch_is_fresh_by_content_hash(model: Path) -> None:
    os.utime(model, ns=(1, 1))
    hashed: list[str] = []

    def counting_hash(path: str) -> str:
        hashed.append(path)
        return hash_file(path)

    st = model.stat()
    info = read_sidecar(sidecar_path_for(model))
    result = check_freshness(str(model), st.st_size, st.st_mtime_ns, info, hasher=counting_hash)
    assert result.fresh and result.content_hash == hash_file(model) and hashed == [str(model)]
    assert _check(model, hasher=None) is Verdict.CHANGED  # by size and mtime alone, a touch is a change


def test_a_known_hash_spares_reading_the_file(model: Path) -> None:
    os.utime(model, ns=(1, 1))

    def must_not_hash(path: str) -> str:
        raise AssertionError("hashed although the hash was known")

    assert _check(model, known_hash=hash_file(model), hasher=must_not_hash) is Verdict.FRESH
    assert _check(model, known_hash="0" * 32, hasher=must_not_hash) is Verdict.CHANGED


def test_changed_content_is_changed(model: Path) -> None:
    model.write_bytes(b"solid other\nendsolid other\n")
    assert _check(model) is Verdict.CHANGED


def test_a_model_that_cannot_be_read_says_why(model: Path) -> None:
    info = read_sidecar(sidecar_path_for(model))
    model.unlink()
    result = check_freshness(str(model), 999, 999, info)
    assert result.verdict is Verdict.UNHASHABLE and result.reason == "No such file or directory"


def test_a_format_with_a_look_revision_redraws_only_its_own_sidecars(tmp_path: Path) -> None:
    """STEP learnt colours (its reader's look revision 1): a STEP sidecar from before is stale, while an
    STL sidecar made with the same settings stays fresh, so `verify --fix` redraws STEP files only."""
    step_format = format_for_name("part.step")
    assert step_format is not None and step_format.look >= 1
    assert settings_for("part.STP", SETTINGS) == f"{SETTINGS} reader={step_format.look}"
    assert settings_for("part.stl", SETTINGS) == SETTINGS
    verdicts = {}
    for name in ("part.stl", "part.step"):
        p = tmp_path / name
        p.write_bytes(b"solid part\nendsolid part\n")
        st = p.stat()
        before = metadata_for(p, size=st.st_size, mtime_ns=st.st_mtime_ns, content_hash=hash_file(p),
                              source="rendered", settings=SETTINGS)  # fmt: skip
        sidecar_path_for(p).write_bytes(encode_png(np.zeros((4, 4, 4), np.uint8), before))
        verdicts[name] = _check(p, expected_settings=SETTINGS)
    assert verdicts == {"part.stl": Verdict.FRESH, "part.step": Verdict.OTHER_SETTINGS}


def test_the_renderer_writes_the_settings_freshness_expects(tmp_path: Path) -> None:
    """The writer and the rule use one spelling: a sidecar just made is fresh under its options."""
    options = ThumbnailOptions()
    for name in ("cube.stl", "cube.zip"):
        p = tmp_path / name
        stl = binary_stl(200)
        if name.endswith(".zip"):
            with zipfile.ZipFile(p, "w") as zf:
                zf.writestr("cube.stl", stl)
        else:
            p.write_bytes(stl)
        sidecar_path_for(p).write_bytes(make_thumbnail(p, options).png)
        assert _check(p, expected_settings=options.describe()) is Verdict.FRESH, name
    archive = read_sidecar(sidecar_path_for(tmp_path / "cube.zip"))
    assert archive is not None and archive.settings.endswith(" reader=1")
