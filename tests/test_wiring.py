"""The parts built from settings: what the API and the CLI both use, so a setting means one thing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sidecar_thumbs.errors import ConfigError, DatabaseError
from sidecar_thumbs.settings.fields import Settings
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.wiring import executor_for, open_state_db, roots_from, thumbnail_options
from sidecar_thumbs.work.executors.local import InlineExecutor


def test_thumbnail_options_follow_the_settings() -> None:
    s = Settings(
        size=128, color="#102030", renderer="numpy", embedded=False, model_colors=False, max_file_mb=2,
        max_triangles=99,
    )  # fmt: skip
    options = thumbnail_options(s)
    assert (options.render.size, options.render.color, options.render.kernel) == (128, (16, 32, 48), "numpy")
    assert not options.use_embedded and not options.model_colors
    assert (options.limits.max_file_bytes, options.limits.max_triangles) == (2 * 1024 * 1024, 99)
    assert options.describe() == "look=2 size=128 color=#102030 embedded=0 colors=0 gcode=1"
    assert thumbnail_options(Settings()).model_colors  # the model's own colours by default


def test_the_state_database_is_created_unless_it_must_exist(tmp_path: Path) -> None:
    s = Settings(database=tmp_path / "sub" / "state.sqlite3")
    with pytest.raises(DatabaseError):
        open_state_db(s, readonly=True)
    with pytest.raises(DatabaseError):
        open_state_db(s, must_exist=True)
    db = open_state_db(s)
    assert isinstance(db, StateDB) and db.dam is None
    db.close()
    open_state_db(s, readonly=True).close()  # now it exists


def test_zero_workers_render_inline() -> None:
    assert isinstance(executor_for(Settings(workers=0), thumbnail_options(Settings())), InlineExecutor)
    assert isinstance(executor_for(Settings(workers=8), thumbnail_options(Settings()), workers=0), InlineExecutor)


def test_roots_are_absolute_and_a_single_path_is_not_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    s = Settings()
    assert roots_from("models", s) == [str(tmp_path / "models")]
    assert roots_from(Path("a"), s) == [str(tmp_path / "a")]
    assert roots_from(["a", "~/b"], s) == [str(tmp_path / "a"), os.path.join(str(tmp_path), "b")]


def test_no_paths_fall_back_to_the_configured_roots(tmp_path: Path) -> None:
    assert roots_from((), Settings(roots=(tmp_path / "lib",))) == [str(tmp_path / "lib")]
    with pytest.raises(ConfigError, match="SIDECAR_THUMBS_ROOTS"):
        roots_from([], Settings())
