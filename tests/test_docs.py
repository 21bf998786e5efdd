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

from sidecar_thumbs.cli import cli

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
