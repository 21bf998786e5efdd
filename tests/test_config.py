"""Settings: precedence, parsing, validation messages, .env.example completeness."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from corpus_paths import REPO_ROOT

from sidecar_thumbs.errors import ConfigError
from sidecar_thumbs.mesh import LoadLimits
from sidecar_thumbs.settings.dbplace import _mount_fstype, database_on_network_share
from sidecar_thumbs.settings.docs import env_example_text, iter_setting_docs
from sidecar_thumbs.settings.fields import Settings, default_database_path, default_workers
from sidecar_thumbs.settings.loading import load_settings

ENV_EXAMPLE = REPO_ROOT / ".env.example"


def load(tmp_path: Path, environ: dict[str, str] | None = None, **kwargs: object) -> Settings:
    """Load with an explicit, empty-by-default environment and tmp_path as the current folder."""
    return load_settings(environ=environ or {}, cwd=tmp_path, **kwargs)  # type: ignore[arg-type]


# --- defaults ----------------------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert s == Settings()
    assert s.database == default_database_path()
    assert s.database.name == "state.sqlite3"
    assert "sidecar-thumbs" in s.database.parts
    assert not s.database_explicit
    assert s.roots == ()
    assert s.workers == default_workers() >= 1
    assert (s.batch_size, s.sweep_interval, s.timeout, s.settle) == (200, 2.0, 300.0, 3.0)
    assert (s.rescan_interval, s.max_tasks_per_worker, s.size, s.color) == (600.0, 500, 256, "#5c8fdb")
    assert (s.renderer, s.embedded, s.model_colors, s.executor, s.dask_scheduler) == ("auto", False, True, "local", "")
    assert (s.max_file_mb, s.max_triangles, s.max_decompressed_mb) == (1024, 20_000_000, 2048)
    assert (s.polling, s.log_format, s.busy_timeout_ms, s.grace_period) == (False, "text", 5000, 30.0)
    assert all(source == "default" for *_, source in s.describe())


def test_default_database_is_in_user_data_dir_not_the_share(tmp_path: Path) -> None:
    import platformdirs

    assert default_database_path() == Path(platformdirs.user_data_dir("sidecar-thumbs")) / "state.sqlite3"


def test_color_rgb_and_load_limits() -> None:
    s = Settings(color="#ff8000", max_file_mb=2, max_triangles=10, max_decompressed_mb=3)
    assert Settings().color_rgb == (0x5C, 0x8F, 0xDB)
    assert s.color_rgb == (255, 128, 0)
    assert s.load_limits() == LoadLimits(max_file_bytes=2 << 20, max_triangles=10, max_decompressed_bytes=3 << 20)
    assert Settings().load_limits() == LoadLimits()  # the loaders' own defaults agree with ours


def test_settings_are_frozen_and_hashable() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.size = 10  # type: ignore[misc]
    assert hash(s) == hash(Settings())


# --- precedence --------------------------------------------------------------------------------


def test_precedence_flags_over_env_over_local_over_dotenv_over_defaults(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "SIDECAR_THUMBS_SIZE=100\nSIDECAR_THUMBS_BATCH_SIZE=11\nSIDECAR_THUMBS_TIMEOUT=12\nSIDECAR_THUMBS_SETTLE=13\n"
    )
    (tmp_path / ".env.local").write_text(
        "SIDECAR_THUMBS_SIZE=101\nSIDECAR_THUMBS_BATCH_SIZE=21\nSIDECAR_THUMBS_TIMEOUT=22\n"
    )
    environ = {"SIDECAR_THUMBS_SIZE": "102", "SIDECAR_THUMBS_BATCH_SIZE": "31"}
    s = load(tmp_path, environ, overrides={"size": 103, "workers": None})
    assert (s.size, s.batch_size, s.timeout, s.settle, s.sweep_interval) == (103, 31, 22.0, 13.0, 2.0)
    sources = {name: source for name, _, _, source in s.describe()}
    assert sources["size"] == "command line"
    assert sources["batch_size"] == "environment"
    assert sources["timeout"] == str(tmp_path / ".env.local")
    assert sources["settle"] == str(tmp_path / ".env")
    assert sources["sweep_interval"] == sources["workers"] == "default"  # None override is ignored


def test_env_file_replaces_the_dotenv_pair(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SIDECAR_THUMBS_SIZE=100\n")
    (tmp_path / ".env.local").write_text("SIDECAR_THUMBS_BATCH_SIZE=21\n")
    custom = tmp_path / "conf" / "thumbs.env"
    custom.parent.mkdir()
    custom.write_text("SIDECAR_THUMBS_TIMEOUT=9\n")
    s = load(tmp_path, env_file="conf/thumbs.env")  # relative to cwd
    assert (s.size, s.batch_size, s.timeout) == (256, 200, 9.0)


def test_missing_env_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"settings file .*nope\.env does not exist"):
        load(tmp_path, env_file=tmp_path / "nope.env")
    with pytest.raises(ConfigError, match="is not a file"):
        load(tmp_path, env_file=tmp_path)


def test_missing_dotenv_files_are_fine(tmp_path: Path) -> None:
    assert load(tmp_path) == Settings()


def test_loading_does_not_touch_os_environ(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SIDECAR_THUMBS_SIZE=100\nSOMETHING_ELSE=1\n")
    before = dict(os.environ)
    assert load_settings(cwd=tmp_path, environ={}).size == 100
    assert dict(os.environ) == before


def test_os_environ_is_the_default_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDECAR_THUMBS_SIZE", "64")
    assert load_settings(cwd=tmp_path).size == 64


def test_empty_value_means_default_even_over_a_lower_layer(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SIDECAR_THUMBS_SIZE=100\nDAM_DATABASE_PATH=/srv/x.sqlite3\n")
    s = load(tmp_path, {"SIDECAR_THUMBS_SIZE": "", "DAM_DATABASE_PATH": "  "})
    assert s.size == 256
    assert s.database == default_database_path()
    assert not s.database_explicit


def test_key_without_value_in_a_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SIDECAR_THUMBS_SIZE=100\n")
    (tmp_path / ".env.local").write_text("SIDECAR_THUMBS_SIZE\n")
    assert load(tmp_path).size == 100


def test_no_variable_interpolation_from_the_real_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAK", "/leaked")
    (tmp_path / ".env").write_text("DAM_DATABASE_PATH=${LEAK}/db.sqlite3\n")
    assert load(tmp_path).database == tmp_path / "${LEAK}" / "db.sqlite3"


# --- values ------------------------------------------------------------------------------------


def test_database_path_explicit_expanded_and_absolute(tmp_path: Path) -> None:
    s = load(tmp_path, {"DAM_DATABASE_PATH": "~/thumbs/state.db"})
    assert s.database == Path.home() / "thumbs" / "state.db"
    assert s.database_explicit
    rel = load(tmp_path, {"DAM_DATABASE_PATH": "data/state.db"})
    assert rel.database == tmp_path / "data" / "state.db"
    flag = load(tmp_path, overrides={"database": tmp_path / "flag.db"})
    assert flag.database == tmp_path / "flag.db"
    assert flag.database_explicit


def test_roots_pathsep_separated(tmp_path: Path) -> None:
    s = load(tmp_path, {"SIDECAR_THUMBS_ROOTS": f"/srv/models{os.pathsep}rel/dir{os.pathsep}{os.pathsep}~/lib"})
    assert s.roots == (Path("/srv/models"), tmp_path / "rel" / "dir", Path.home() / "lib")


def test_roots_one_per_line_allow_pathsep_in_names(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text('SIDECAR_THUMBS_ROOTS="/srv/a:b\n  /srv/My Models  \n\n"\n')
    assert load(tmp_path).roots == (Path("/srv/a:b"), Path("/srv/My Models"))


def test_roots_from_flags_as_a_list(tmp_path: Path) -> None:
    s = load(tmp_path, overrides={"roots": ["/a", Path("b")]})
    assert s.roots == (Path("/a"), tmp_path / "b")
    assert s.describe()[1] == (
        "roots",
        "SIDECAR_THUMBS_ROOTS",
        f"/a{os.pathsep}{tmp_path / 'b'}",
        "command line",
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" on ", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("OFF", False),
    ],
)
def test_booleans(tmp_path: Path, raw: str, expected: bool) -> None:
    assert load(tmp_path, {"SIDECAR_THUMBS_POLLING": raw}).polling is expected
    assert load(tmp_path, {"SIDECAR_THUMBS_EMBEDDED": raw}).embedded is expected


def test_typed_overrides_and_string_overrides(tmp_path: Path) -> None:
    s = load(tmp_path, overrides={"workers": 0, "timeout": 5, "polling": True, "size": "128", "color": "#ABCDEF"})
    assert (s.workers, s.timeout, s.polling, s.size, s.color) == (0, 5.0, True, 128, "#abcdef")
    assert isinstance(s.timeout, float)


def test_workers_zero_means_inline(tmp_path: Path) -> None:
    assert load(tmp_path, {"SIDECAR_THUMBS_WORKERS": "0"}).workers == 0


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "raw", "message"),
    [
        ("SIDECAR_THUMBS_WORKERS", "abc", "SIDECAR_THUMBS_WORKERS=abc: not an integer"),
        ("SIDECAR_THUMBS_WORKERS", "-1", "SIDECAR_THUMBS_WORKERS=-1: must be at least 0"),
        ("SIDECAR_THUMBS_BATCH_SIZE", "0", "SIDECAR_THUMBS_BATCH_SIZE=0: must be at least 1"),
        ("SIDECAR_THUMBS_SIZE", "8", "SIDECAR_THUMBS_SIZE=8: must be between 16 and 4096"),
        ("SIDECAR_THUMBS_SIZE", "4097", "SIDECAR_THUMBS_SIZE=4097: must be between 16 and 4096"),
        ("SIDECAR_THUMBS_SIZE", "2.5", "SIDECAR_THUMBS_SIZE=2.5: not an integer"),
        ("SIDECAR_THUMBS_TIMEOUT", "soon", "SIDECAR_THUMBS_TIMEOUT=soon: not a number"),
        ("SIDECAR_THUMBS_TIMEOUT", "nan", "SIDECAR_THUMBS_TIMEOUT=nan: must be a finite number"),
        ("SIDECAR_THUMBS_TIMEOUT", "0", "SIDECAR_THUMBS_TIMEOUT=0: must be at least 0.001"),
        ("SIDECAR_THUMBS_SETTLE", "-3", "SIDECAR_THUMBS_SETTLE=-3: must be at least 0"),
        (
            "SIDECAR_THUMBS_POLLING",
            "maybe",
            "SIDECAR_THUMBS_POLLING=maybe: not a boolean (use 1/0, true/false,",
        ),
        (
            "SIDECAR_THUMBS_RENDERER",
            "opengl",
            "SIDECAR_THUMBS_RENDERER=opengl: must be one of auto, numba, numpy",
        ),
        ("SIDECAR_THUMBS_EXECUTOR", "ray", "SIDECAR_THUMBS_EXECUTOR=ray: must be one of local, dask"),
        ("SIDECAR_THUMBS_LOG_FORMAT", "xml", "SIDECAR_THUMBS_LOG_FORMAT=xml: must be one of text, json"),
        ("SIDECAR_THUMBS_COLOR", "blue", "SIDECAR_THUMBS_COLOR=blue: not a colour like #5c8fdb"),
        ("SIDECAR_THUMBS_COLOR", "#12345g", "SIDECAR_THUMBS_COLOR=#12345g: not a colour like #5c8fdb"),
        ("SIDECAR_THUMBS_MAX_TRIANGLES", "0", "SIDECAR_THUMBS_MAX_TRIANGLES=0: must be at least 1"),
    ],
)
def test_invalid_values_name_the_variable(tmp_path: Path, var: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, {var: raw})
    assert str(info.value).startswith(message)
    assert str(info.value).endswith(" (from the environment)")
    assert "\n" not in str(info.value)


def test_error_names_the_file_it_came_from(tmp_path: Path) -> None:
    (tmp_path / ".env.local").write_text("SIDECAR_THUMBS_WORKERS=many\n")
    with pytest.raises(ConfigError, match=re.escape(f"SIDECAR_THUMBS_WORKERS=many: not an integer (from {tmp_path}")):
        load(tmp_path)


def test_error_from_a_flag_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--max-file-mb=0: must be at least 1$"):
        load(tmp_path, overrides={"max_file_mb": 0})
    with pytest.raises(ConfigError, match=r"^--size=big: not an integer$"):
        load(tmp_path, overrides={"size": "big"})
    with pytest.raises(ConfigError, match=r"^--size=True: wrong type bool$"):
        load(tmp_path, overrides={"size": True})


def test_multiline_value_in_error_stays_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, {"SIDECAR_THUMBS_SIZE": "1\n2"})
    assert "\n" not in str(info.value)


def test_unknown_override_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting 'wrokers'"):
        load(tmp_path, overrides={"wrokers": 3})


def test_direct_construction_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"^SIDECAR_THUMBS_SIZE=2: must be between 16 and 4096$"):
        Settings(size=2)


def test_unreadable_env_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"SIDECAR_THUMBS_SIZE=\xff\xfe\n")
    with pytest.raises(ConfigError, match="cannot read settings file"):
        load(tmp_path)


# --- documentation -----------------------------------------------------------------------------


def test_every_setting_is_documented() -> None:
    docs = list(iter_setting_docs())
    names = [d.name for d in docs]
    assert names == [name for name, *_ in Settings().describe()]
    assert "database_explicit" not in names and "sources" not in names
    for d in docs:
        assert d.help and d.group
        assert d.env == ("DAM_DATABASE_PATH" if d.name == "database" else f"SIDECAR_THUMBS_{d.name.upper()}")
        assert bool(d.default_doc) == (d.name in {"database", "workers"})


def test_env_example_is_complete_and_current() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    # Regenerate: python -c "from sidecar_thumbs.settings.docs import env_example_text as t; print(t(), end='')" \
    #   > .env.example
    assert text == env_example_text()
    for d in iter_setting_docs():
        assert f"# {d.env}={d.default}\n" in text
        assert d.help in text
        assert (d.default_doc or d.default or "empty") in text


def test_env_example_uncommented_loads_to_the_defaults(tmp_path: Path) -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    assignments = [line[2:] for line in lines if re.match(r"# [A-Z_]+=", line)]
    assert len(assignments) == len(list(iter_setting_docs()))
    env_file = tmp_path / "uncommented.env"
    env_file.write_text("\n".join(assignments) + "\n")
    assert load(tmp_path, env_file=env_file) == Settings()


# --- where the database lives ------------------------------------------------------------------


def test_local_database_is_not_on_a_network_share(tmp_path: Path) -> None:
    assert database_on_network_share(tmp_path / "state.sqlite3") is False
    assert Settings(database=tmp_path / "state.sqlite3").database_warnings() == []


MOUNTS = r"""/dev/sda1 / ext4 rw,relatime 0 0
//nas/models /mnt/models cifs rw,vers=3.0 0 0
nas:/export /mnt/nfs nfs4 rw 0 0
/dev/sdb1 /mnt/models/local\040disk ext4 rw 0 0
tmpfs /tmp tmpfs rw 0 0
"""


@pytest.mark.parametrize(
    ("path", "fstype"),
    [
        ("/home/u/.local/share/sidecar-thumbs/state.sqlite3", "ext4"),
        ("/mnt/models/state.sqlite3", "cifs"),
        ("/mnt/models", "cifs"),
        ("/mnt/modelsX/state.sqlite3", "ext4"),  # prefix of a name is not a parent folder
        ("/mnt/nfs/a/b.db", "nfs4"),
        ("/mnt/models/local disk/x.db", "ext4"),  # escaped space, nested mount wins
        ("/tmp/x", "tmpfs"),
    ],
)
def test_mount_type_lookup(path: str, fstype: str) -> None:
    assert _mount_fstype(path, MOUNTS) == fstype


def test_database_inside_a_root_is_warned(tmp_path: Path) -> None:
    s = Settings(database=tmp_path / "lib" / ".thumbs" / "state.sqlite3", roots=(tmp_path / "lib",))
    [warning] = s.database_warnings()
    assert "inside library root" in warning
    assert Settings(database=tmp_path / "library.db", roots=(tmp_path / "lib",)).database_warnings() == []
