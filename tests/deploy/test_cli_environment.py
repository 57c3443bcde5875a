"""Settings from the environment, as a container passes them: every option of every command has a
WASMFLEET_<COMMAND>_<OPTION> variable; names declared earlier (WASMFLEET_NATS_URL, KUBECONFIG) keep
working and lose to the rule's name; a bad value or an unknown command is one line on stderr and a
non-zero exit (checked through the real `python -m wasmfleet` process)."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from wasmfleet.cli import main


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wasmfleet", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", list(main.COMMANDS))
def test_every_option_of_every_command_has_its_rule_variable(name: str) -> None:
    command = main.cli.get_command(click.Context(main.cli), name)
    assert command is not None
    for param in command.params:
        if isinstance(param, click.Option) and any(o.startswith("--") for o in param.opts):
            expected = main.env_name(name, param)
            assert expected is not None and expected.startswith(f"WASMFLEET_{name.upper()}_")
            assert isinstance(param.envvar, list) and param.envvar[0] == expected, (name, param.opts)


def test_rule_name_is_derived_from_the_long_option() -> None:
    command = main.cli.get_command(click.Context(main.cli), "host")
    assert command is not None
    names = {p.opts[0]: p.envvar for p in command.params if isinstance(p, click.Option)}
    assert names["--http-addr"][0] == "WASMFLEET_HOST_HTTP_ADDR"
    # --nats kept its older name second
    assert names["--nats"] == ["WASMFLEET_HOST_NATS", "WASMFLEET_NATS_URL"]


def test_environment_value_reaches_the_command_and_rule_name_wins() -> None:
    seen: dict[str, object] = {}

    @click.command("probe")
    @click.option("--listen-addr", default="a", envvar="OLD_NAME")
    @click.option("--tag", "tags", multiple=True)
    @click.option("--verbose", is_flag=True)
    def probe(listen_addr: str, tags: tuple[str, ...], verbose: bool) -> None:
        seen.update(listen_addr=listen_addr, tags=tags, verbose=verbose)

    main.settable_from_environment(probe, "probe")
    runner = CliRunner()
    result = runner.invoke(probe, [], env={"OLD_NAME": "old", "WASMFLEET_PROBE_TAG": "x y",
                                           "WASMFLEET_PROBE_VERBOSE": "true"})
    assert result.exit_code == 0, result.output
    assert seen == {"listen_addr": "old", "tags": ("x", "y"), "verbose": True}
    result = runner.invoke(probe, [], env={"OLD_NAME": "old", "WASMFLEET_PROBE_LISTEN_ADDR": "new"})
    assert seen["listen_addr"] == "new"
    result = runner.invoke(probe, ["--listen-addr", "flag"], env={"WASMFLEET_PROBE_LISTEN_ADDR": "new"})
    assert seen["listen_addr"] == "flag"


def test_bad_environment_value_is_one_line_naming_the_variable() -> None:
    proc = _run(["host"], {"WASMFLEET_HOST_WORKERS": "zero"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "--workers" in lines[0] and "WASMFLEET_HOST_WORKERS" in lines[0] and "'zero'" in lines[0]


def test_unknown_command_is_one_line() -> None:
    proc = _run(["frobnicate"], {})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "wasmfleet: No such command 'frobnicate'. (see 'python -m wasmfleet --help')"]


def test_explicit_legacy_name_still_read() -> None:
    proc = _run(["operator"], {"KUBECONFIG": "/nonexistent/kubeconfig"})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "Error: kubeconfig /nonexistent/kubeconfig does not exist"
