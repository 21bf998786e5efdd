"""The command line: render/scan behaviour, exit codes 0/1/2/3, JSON output and settings precedence.

Mostly ``CliRunner`` (fast, in-process, ``--workers 0``); a few real ``python -m sidecar_thumbs``
subprocesses, one of them with a real 2-process render pool.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_helpers import GOOD, invoke
from cli_helpers import copy_file as _copy
from cli_helpers import err_lines as _err_lines
from cli_helpers import run_cli as _run
from PIL import Image

from sidecar_thumbs.files.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.render.thumbnail import make_thumbnail

EMBEDDED = "3mf/lib3mf__Thumbnail_Package.3mf"  # carries a slicer thumbnail
SCAN_JSON_KEYS = {
    "found", "unchanged", "adopted", "known_failed", "pending", "retried", "new", "changed", "touched", "healed",
    "hashed", "missing", "rendered", "embedded", "failed", "requeued", "deferred", "temp_removed", "elapsed_s",
    "renders_per_s", "interrupted", "failures", "problems",
}  # fmt: skip


def _width(png: Path) -> int:
    with Image.open(png) as im:
        return im.width


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# -- render --------------------------------------------------------------------------------------


def test_render_writes_sidecars_beside_the_models(cwd: Path, lib: Path) -> None:
    models = [lib / n for n in GOOD]
    before = {m: m.read_bytes() for m in models}
    result = invoke("render", *models)
    assert result.exit_code == 0, result.output
    # Each sidecar written is named on stdout, nothing else (stderr: at most the first-run notice).
    assert result.stdout.splitlines() == [str(sidecar_path_for(m)) for m in models]
    assert _err_lines(result.stderr) == []
    for m in models:
        info = read_sidecar(sidecar_path_for(m))
        assert info is not None and info.ours and info.readable and info.width == 256
        assert m.read_bytes() == before[m]  # a model is never modified


def test_render_output_file_for_one_model(cwd: Path, lib: Path) -> None:
    out = cwd / "part.png"
    result = invoke("render", lib / "block.stl", "-o", out, "--size", "64")
    assert result.exit_code == 0, result.output
    assert _width(out) == 64
    assert not sidecar_path_for(lib / "block.stl").exists()
    assert not list(cwd.glob("*.tmp"))


def test_render_output_folder_for_several_models(cwd: Path, lib: Path) -> None:
    out = cwd / "thumbs" / "new"  # created when missing
    result = invoke("render", *(lib / n for n in GOOD), "-o", out)
    assert result.exit_code == 0, result.output
    assert _files(out) == {f"{n}.png" for n in GOOD}
    assert not any(sidecar_path_for(lib / n).exists() for n in GOOD)


def test_render_output_folder_never_overwrites_an_earlier_output(cwd: Path, corpus: Path) -> None:
    first = _copy(corpus / GOOD["block.stl"], cwd / "a" / "part.stl")
    second = _copy(corpus / GOOD["pyramid.stl"], cwd / "b" / "part.stl")
    out = cwd / "out"
    result = invoke("render", first, second, "-o", out)
    assert read_sidecar(out / "part.stl.png").content_hash == make_thumbnail(first).content_hash  # type: ignore[union-attr]
    assert result.exit_code == 3
    assert [line.split(": ", 1)[0] for line in _err_lines(result.stderr)] == [str(second)]


def test_render_orders_each_file_and_fsyncs_each_folder_once(
    cwd: Path, lib: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each file's data is still ordered before its rename; the renames cost one folder fsync per folder
    # at the end of the command, not one per file.
    from sidecar_thumbs.files import atomic

    calls: list[str] = []
    real_order, real_dir = atomic.order_fsync, atomic.fsync_dir
    monkeypatch.setattr(atomic, "order_fsync", lambda fd, **kw: (calls.append("data"), real_order(fd, **kw))[1])
    monkeypatch.setattr(atomic, "fsync_dir", lambda path: (calls.append(os.fspath(path)), real_dir(path))[1])
    models = [lib / n for n in GOOD]
    result = invoke("render", *models, "-o", cwd / "out")
    assert result.exit_code == 0, result.output
    assert calls == ["data"] * len(models) + [os.path.abspath(cwd / "out")]
    calls.clear()
    result = invoke("render", *models)
    assert result.exit_code == 0, result.output
    assert calls == ["data"] * len(models) + [os.path.abspath(lib)]


def test_render_output_existing_folder_for_one_model(cwd: Path, lib: Path) -> None:
    result = invoke("render", lib / "block.stl", "-o", cwd)
    assert result.exit_code == 0, result.output
    assert (cwd / "block.stl.png").is_file()


def test_bad_file_prints_one_line_writes_nothing_and_others_render(cwd: Path, lib: Path, bad: Path) -> None:
    result = invoke("render", lib / "block.stl", bad, lib / "box.3mf")
    assert result.exit_code == 3
    lines = _err_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"{bad}: ") and len(lines[0]) > len(f"{bad}: ")
    assert result.stdout.splitlines() == [str(sidecar_path_for(lib / n)) for n in ("block.stl", "box.3mf")]
    assert not sidecar_path_for(bad).exists()
    assert sidecar_path_for(lib / "block.stl").exists() and sidecar_path_for(lib / "box.3mf").exists()
    assert not [n for n in _files(lib) if n.endswith(".tmp")]


def test_bad_file_writes_nothing_into_the_output_folder(cwd: Path, lib: Path, bad: Path) -> None:
    out = cwd / "out"
    result = invoke("render", bad, lib / "block.stl", "-o", out)
    assert result.exit_code == 3
    assert len(_err_lines(result.stderr)) == 1
    assert _files(out) == {"block.stl.png"}


def test_missing_file_is_one_line_and_exit_3(cwd: Path, lib: Path) -> None:
    ghost = lib / "no-such-model.stl"
    result = invoke("render", ghost, lib / "block.stl")
    assert result.exit_code == 3
    assert [line.split(": ")[0] for line in _err_lines(result.stderr)] == [str(ghost)]
    assert sidecar_path_for(lib / "block.stl").exists()


def test_render_draws_the_mesh_unless_embedded_is_asked_for(cwd: Path, corpus: Path) -> None:
    model = _copy(corpus / EMBEDDED, cwd / "thumb.3mf")
    assert invoke("render", model).exit_code == 0
    assert read_sidecar(sidecar_path_for(model)).source == "rendered"  # type: ignore[union-attr]
    assert invoke("render", model, "--embedded").exit_code == 0
    assert read_sidecar(sidecar_path_for(model)).source == "embedded"  # type: ignore[union-attr]
    assert invoke("render", model, "--no-embedded").exit_code == 0
    assert read_sidecar(sidecar_path_for(model)).source == "rendered"  # type: ignore[union-attr]


# -- scan ----------------------------------------------------------------------------------------


def test_scan_json_parses_and_has_the_documented_keys(cwd: Path, lib: Path, tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite3"
    first = invoke("scan", lib, "--db", db, "--workers", "0", "--json")
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)  # stdout holds the JSON and nothing else (no progress bar)
    assert set(data) == SCAN_JSON_KEYS
    assert (data["found"], data["new"], data["rendered"] + data["embedded"], data["failed"]) == (3, 3, 3, 0)
    again = json.loads(invoke("scan", lib, "--db", db, "--workers", "0", "--json").stdout)
    assert (again["unchanged"], again["rendered"]) == (3, 0)


def test_scan_with_a_bad_file_exits_3_and_renders_the_rest(cwd: Path, lib: Path, bad: Path, tmp_path: Path) -> None:
    result = invoke("scan", lib, "--db", tmp_path / "s.sqlite3", "--workers", "0", "--json")
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert data["failed"] == 1 and data["failures"][0]["path"] == str(bad)
    assert data["rendered"] + data["embedded"] == len(GOOD)


def test_scan_text_summary(cwd: Path, lib: Path, tmp_path: Path) -> None:
    result = invoke("-q", "scan", lib, "--db", tmp_path / "t.sqlite3", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("found 3: ")


# -- exit codes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["scan", "verify"])
def test_database_path_that_is_a_folder_exits_1(cwd: Path, lib: Path, tmp_path: Path, command: str) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    result = invoke(command, lib, "--workers", "0", env={"DAM_DATABASE_PATH": str(folder)})
    assert result.exit_code == 1
    assert result.stderr.startswith("sidecar-thumbs: ") and len(_err_lines(result.stderr)) == 1
    assert str(folder) in result.stderr


def test_db_flag_naming_a_folder_exits_1(cwd: Path, lib: Path, tmp_path: Path) -> None:
    result = invoke("scan", lib, "--db", tmp_path, "--workers", "0")
    assert result.exit_code == 1


@pytest.mark.parametrize("command", ["scan", "verify"])
def test_garbage_database_file_exits_1(cwd: Path, lib: Path, tmp_path: Path, command: str) -> None:
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(os.urandom(4096))
    before = garbage.read_bytes()
    result = invoke(command, lib, "--db", garbage, "--workers", "0")
    assert result.exit_code == 1
    assert result.stderr == f"sidecar-thumbs: {garbage} is not a SQLite database\n"
    assert garbage.read_bytes() == before
    assert not sidecar_path_for(lib / "block.stl").exists()


def test_invalid_setting_exits_1_with_one_line(cwd: Path, lib: Path) -> None:
    result = invoke("render", lib / "block.stl", env={"SIDECAR_THUMBS_COLOR": "blue"})
    assert result.exit_code == 1
    assert _err_lines(result.stderr) == [
        "sidecar-thumbs: SIDECAR_THUMBS_COLOR=blue: not a colour like #5c8fdb (from the environment)"
    ]


def test_missing_env_file_exits_1(cwd: Path, lib: Path) -> None:
    result = invoke("--env-file", cwd / "nope.env", "render", lib / "block.stl")
    assert result.exit_code == 1
    assert "does not exist" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "--bogus"],
        ["render"],  # FILES is required
        ["render", "x.stl", "--size", "8"],  # below the allowed range
        ["scan"],  # no PATH and no SIDECAR_THUMBS_ROOTS
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2(cwd: Path, args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.stderr


# -- settings precedence ---------------------------------------------------------------------------


def test_settings_precedence_flag_env_env_local_env(cwd: Path, lib: Path) -> None:
    model, out = lib / "block.stl", cwd / "out.png"
    assert invoke("render", model, "-o", out).exit_code == 0 and _width(out) == 256  # the default
    (cwd / ".env").write_text("SIDECAR_THUMBS_SIZE=32\n")
    assert invoke("render", model, "-o", out).exit_code == 0 and _width(out) == 32
    (cwd / ".env.local").write_text("SIDECAR_THUMBS_SIZE=48\n")
    assert invoke("render", model, "-o", out).exit_code == 0 and _width(out) == 48
    env = {"SIDECAR_THUMBS_SIZE": "64"}
    assert invoke("render", model, "-o", out, env=env).exit_code == 0 and _width(out) == 64
    assert invoke("render", model, "-o", out, "--size", "80", env=env).exit_code == 0 and _width(out) == 80


def test_env_file_replaces_the_dotenv_files(cwd: Path, lib: Path, tmp_path: Path) -> None:
    model, out = lib / "block.stl", cwd / "out.png"
    (cwd / ".env").write_text("SIDECAR_THUMBS_SIZE=32\nSIDECAR_THUMBS_COLOR=#ff0000\n")
    (cwd / ".env.local").write_text("SIDECAR_THUMBS_SIZE=48\n")
    other = tmp_path / "other.env"
    other.write_text("SIDECAR_THUMBS_SIZE=40\n")
    assert invoke("--env-file", other, "render", model, "-o", out).exit_code == 0
    assert _width(out) == 40
    assert "color=#5c8fdb" in read_sidecar(out).settings  # type: ignore[union-attr,operator]
    env = {"SIDECAR_THUMBS_SIZE": "64"}
    assert invoke("--env-file", other, "render", model, "-o", out, env=env).exit_code == 0
    assert _width(out) == 64


def test_empty_value_in_a_higher_layer_means_the_default(cwd: Path, lib: Path) -> None:
    model, out = lib / "block.stl", cwd / "out.png"
    (cwd / ".env").write_text("SIDECAR_THUMBS_SIZE=32\n")
    (cwd / ".env.local").write_text("SIDECAR_THUMBS_SIZE=\n")
    assert invoke("render", model, "-o", out).exit_code == 0 and _width(out) == 256


# -- real processes ------------------------------------------------------------------------------


@pytest.mark.integration
def test_subprocess_render_with_a_bad_file(tmp_path: Path, lib: Path, bad: Path) -> None:
    r = _run("render", lib / "block.stl", bad, cwd=tmp_path)
    assert r.returncode == 3
    assert r.stdout.splitlines() == [str(sidecar_path_for(lib / "block.stl"))]
    assert [line.split(": ", 1)[0] for line in _err_lines(r.stderr)] == [str(bad)]
    assert sidecar_path_for(lib / "block.stl").exists() and not sidecar_path_for(bad).exists()


@pytest.mark.integration
def test_subprocess_scan_json_with_a_real_pool(tmp_path: Path, lib: Path, bad: Path) -> None:
    db = tmp_path / "pool.sqlite3"
    r = _run("scan", lib, "--db", db, "--workers", "2", "--json", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    data = json.loads(r.stdout)
    assert set(data) == SCAN_JSON_KEYS
    assert data["rendered"] + data["embedded"] == len(GOOD) and data["failed"] == 1
    for name in GOOD:
        info = read_sidecar(sidecar_path_for(lib / name))
        assert info is not None and info.ours and info.readable


@pytest.mark.integration
def test_subprocess_precedence_through_cwd_dotenv_files(tmp_path: Path, lib: Path) -> None:
    (tmp_path / ".env").write_text("SIDECAR_THUMBS_SIZE=32\n")
    (tmp_path / ".env.local").write_text("SIDECAR_THUMBS_SIZE=48\n")
    out = tmp_path / "out.png"
    assert _run("render", lib / "block.stl", "-o", out, cwd=tmp_path).returncode == 0
    assert _width(out) == 48
    r = _run("render", lib / "block.stl", "-o", out, cwd=tmp_path, env={"SIDECAR_THUMBS_SIZE": "64"})
    assert r.returncode == 0 and _width(out) == 64


@pytest.mark.integration
@pytest.mark.parametrize(("args", "code"), [(["--version"], 0), (["--bogus"], 2), (["verify", "--nope"], 2)])
def test_subprocess_exit_codes(tmp_path: Path, args: list[str], code: int) -> None:
    r = _run(*args, cwd=tmp_path)
    assert r.returncode == code, r.stderr
