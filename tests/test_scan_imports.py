"""A no-op rescan loads no renderer: the CLI's ``scan`` of an unchanged library never imports numpy, numba or
Pillow (issue 17 item 3: they are a third of the command's CPU time), and a scan with work to do still renders."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cli_helpers import clean_env, command, cwd, lib  # noqa: F401 (fixtures)

HEAVY = ("numpy", "numba", "PIL")
# Not needed to compare a walk with the database either: hashlib starts OpenSSL (~10 ms of every command's start).
SLOW_START = ("hashlib", "secrets")


def imported_top_level(stderr: str) -> set[str]:
    """Top-level package names from ``python -X importtime`` lines (``import time: self | cumulative | name``)."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".")[0])
    return names


def scan_with_importtime(root: Path, work: Path) -> subprocess.CompletedProcess[str]:
    argv = command("scan", root)
    argv.insert(1, "-Ximporttime")
    env = clean_env(work, {"SIDECAR_THUMBS_RENDERER": "numpy", "SIDECAR_THUMBS_WORKERS": "0"})
    return subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.integration  # two CLI processes
def test_noop_rescan_does_not_import_numpy(lib: Path, cwd: Path) -> None:  # noqa: F811 (fixtures)
    first = scan_with_importtime(lib, cwd)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "rendered 3" in first.stdout
    # The check itself can fail: a scan that renders does import them.
    assert set(HEAVY[:1]) <= imported_top_level(first.stderr)

    again = scan_with_importtime(lib, cwd)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "unchanged 3" in again.stdout
    assert imported_top_level(again.stderr).isdisjoint(HEAVY + SLOW_START)


@pytest.mark.integration  # two CLI processes
def test_rescan_with_one_changed_model_still_renders_it(lib: Path, cwd: Path) -> None:  # noqa: F811 (fixtures)
    assert scan_with_importtime(lib, cwd).returncode == 0
    model = lib / "block.stl"
    model.write_bytes(model.read_bytes() + b"\n")  # a changed file: hashed, then rendered with lazily made options
    again = scan_with_importtime(lib, cwd)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "rendered 1" in again.stdout and "unchanged 2" in again.stdout
    assert "numpy" in imported_top_level(again.stderr)
