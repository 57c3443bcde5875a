"""The CLI surface: every listed command loads and has --help with an example; unknown commands
are a one-line usage error."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from wasmfleet.cli import main


@pytest.mark.parametrize("name", list(main.COMMANDS))
def test_every_command_loads_and_documents_an_example(name: str) -> None:
    result = CliRunner().invoke(main.cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output or "wasmfleet " in result.output


def test_top_level_help_lists_every_command() -> None:
    result = CliRunner().invoke(main.cli, ["--help"])
    assert result.exit_code == 0
    for name in main.COMMANDS:
        assert f"  {name} " in result.output


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main.cli, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.output
