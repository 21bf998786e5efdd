"""Shared pieces of the command-line tests: a small library of real corpus models, a clean working
folder, and ways to run the real command (in process with ``CliRunner``, or as a subprocess).

Test modules import the fixtures by name (``from cli_helpers import bad, cwd, lib``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sidecar_thumbs.cli.main import cli

GOOD = {
    "block.stl": "stl-binary/admesh__binary.stl",
    "pyramid.stl": "stl-binary/prusaslicer__pyramid.stl",
    "box.3mf": "3mf/3mfsamples__box.3mf",
}
BAD = "bad/openscad__unparseable.stl"
SETTING_VARS = ("SIDECAR_THUMBS_", "DAM_DATABASE_PATH")
COMPILE_NOTICE = "compiling the renderer"


def copy_file(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


@pytest.fixture
def lib(tmp_path: Path, corpus: Path) -> Path:
    root = tmp_path / "lib"
    for name, src in GOOD.items():
        copy_file(corpus / src, root / name)
    return root


@pytest.fixture
def bad(lib: Path, corpus: Path) -> Path:
    return copy_file(corpus / BAD, lib / "broken.stl")


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean working folder (no .env) and no settings in the environment."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for var in list(os.environ):
        if var.startswith(SETTING_VARS):
            monkeypatch.delenv(var)
    monkeypatch.setenv("DAM_DATABASE_PATH", str(tmp_path / "default-db" / "state.sqlite3"))
    yield work


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


def err_lines(stderr: str) -> list[str]:
    """stderr's lines without the one-time "compiling the renderer" notice (a fresh clone's first render)."""
    return [line for line in stderr.splitlines() if not line.startswith(COMPILE_NOTICE)]


def clean_env(cwd: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without our settings, with a default database in ``cwd``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_VARS)}
    base["DAM_DATABASE_PATH"] = str(cwd / "default.sqlite3")
    return {**base, **(extra or {})}


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "sidecar_thumbs", *map(str, args)]


def run_cli(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``sidecar-thumbs ARGS`` as a real process (``python -m sidecar_thumbs``)."""
    return subprocess.run(command(*args), cwd=cwd, env=clean_env(cwd, env), capture_output=True, text=True, timeout=120)
