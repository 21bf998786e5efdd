"""Documentation checks (sqlite-utils style): every command and option explains itself, every
command's help shows an example, and the README mentions every command.

``.env.example`` is checked against the settings by tests/test_config.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sidecar_thumbs.cli.main import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def _walk(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    """Every command under ``group`` (sub-groups included), as ("scan", cmd) or ("db migrate", cmd)."""
    for name, cmd in sorted(group.commands.items()):
        yield " ".join((*prefix, name)), cmd
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, (*prefix, name))


COMMANDS = list(_walk(cli))
OPTIONS = [
    (f"{name} {'/'.join(p.opts)}".strip(), p)
    for name, cmd in [("", cli), *COMMANDS]
    for p in cmd.params
    if isinstance(p, click.Option)
]


def test_the_cli_has_commands() -> None:
    # Guards the parametrised tests below against silently checking nothing.
    assert {"render", "scan", "verify", "clean"} <= {name for name, _ in COMMANDS}


@pytest.mark.parametrize(("name", "cmd"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_command_has_help_with_an_example(name: str, cmd: click.Command) -> None:
    assert cmd.help and cmd.help.strip(), f"{name}: no docstring/help"
    assert cmd.get_short_help_str(), f"{name}: no short help for the command list"
    assert re.search(r"^\s*Example:\s*\S", cmd.help, re.MULTILINE), f"{name}: help has no 'Example:' line"


@pytest.mark.parametrize(("name", "option"), OPTIONS, ids=[n for n, _ in OPTIONS])
def test_option_has_help(name: str, option: click.Option) -> None:
    assert option.help and option.help.strip(), f"{name}: option without help"


def test_group_help_has_an_example() -> None:
    assert cli.help and "Example:" in cli.help


@pytest.mark.parametrize(("name", "cmd"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_help_renders(name: str, cmd: click.Command) -> None:
    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.stdout


@pytest.mark.parametrize(("name", "cmd"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_readme_mentions_every_command(name: str, cmd: click.Command) -> None:
    mentioned = f"sidecar-thumbs {name}" in README.read_text(encoding="utf-8")
    assert mentioned, f"README.md does not mention `sidecar-thumbs {name}`"


# -- options everywhere, JSON log fields, the quick start and CI --------------------------------------

GLOBAL_OPTIONS = [p for p in cli.params if isinstance(p, click.Option) and p.name not in ("version", "help")]


def test_readme_documents_every_global_option() -> None:
    text = README.read_text(encoding="utf-8")
    for option in GLOBAL_OPTIONS:
        assert f"`{option.opts[-1]}" in text, f"README.md does not document {option.opts[-1]}"


@pytest.mark.parametrize(("name", "cmd"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_command_takes_the_global_options_after_its_name(name: str, cmd: click.Command) -> None:
    # --db is left out only where there is no database (render, clean).
    own = {opt for p in cmd.params if isinstance(p, click.Option) for opt in p.opts}
    wanted = {opt for p in GLOBAL_OPTIONS for opt in p.opts} - ({"--db"} if name in ("render", "clean") else set())
    assert wanted <= own, f"{name} lacks {sorted(wanted - own)}"


def test_readme_documents_every_json_log_field() -> None:
    from sidecar_thumbs.logs import FIELDS

    logs = README.read_text(encoding="utf-8").split("### Logs", 1)[1].split("\n## ", 1)[0]
    for field in ("time", "level", "logger", "message", *FIELDS):
        assert f"`{field}`" in logs, f"README.md's Logs section does not document the JSON field {field!r}"


def _fenced_after(text: str, marker: str) -> str:
    """The first line of the first ```sh block after ``marker``."""
    after = text.split(marker, 1)[1]
    return after.split("```sh\n", 1)[1].split("\n", 1)[0]


def test_quick_start_makes_and_activates_a_venv() -> None:
    first = _fenced_after(README.read_text(encoding="utf-8"), "## Quick start")
    assert first.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install . && sidecar-thumbs scan")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    command = _fenced_after(README.read_text(encoding="utf-8"), "Run the tests")
    assert command == "pip install -e '.[test]' && pytest"
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert f"{{ {command}; }} || exit 1" in ci.splitlines(), ".ci/run must run the README's test command as written"


def test_plain_pytest_finds_the_test_helpers() -> None:
    # `pytest` (not only `python -m pytest`) puts the repository folder on sys.path.
    import tomllib

    config = tomllib.loads((README.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert "." in config["tool"]["pytest"]["ini_options"]["pythonpath"]
