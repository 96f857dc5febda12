"""Every command documents itself, and none is built in a way click warns about."""

from __future__ import annotations

import warnings

import click
import pytest
from click.testing import CliRunner

from tui.cli import COMMANDS, cli


def all_commands() -> list[list[str]]:
    ctx = click.Context(cli)
    paths = []
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        paths.append([name])
        if isinstance(command, click.Group):
            paths += [[name, sub] for sub in command.list_commands(ctx)]
    return paths


def test_every_registered_command_is_available():
    assert sorted(cli.list_commands(click.Context(cli))) == sorted(COMMANDS)


@pytest.mark.parametrize("path", all_commands(), ids=" ".join)
def test_help_without_warnings(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = CliRunner().invoke(cli, [*path, "--help"], catch_exceptions=False)
    assert result.exit_code == 0 and "Usage:" in result.output
