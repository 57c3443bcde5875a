"""The `wasmfleet` command: one group, each subcommand in its own module.

Subcommands are listed here by hand (no import-time self-registration) so what the CLI exposes is
readable in one place. They load lazily: `wasmfleet validate` must not pay for importing wasmtime,
aiohttp and the Kubernetes client, and every child process `wasmfleet up` starts imports only its
own command.

Every option of every command can also be set from the environment, by one rule applied here (so
command modules need not name variables): WASMFLEET_<COMMAND>_<OPTION>, the command and the long
option name upper-cased with dashes as underscores, e.g. `wasmfleet host --http-addr` is
WASMFLEET_HOST_HTTP_ADDR. A repeatable option takes a space-separated list; a flag takes true/false.
Names an option declared before the rule existed (KUBECONFIG, WASMFLEET_NATS_URL, ...) still work;
the rule's name wins when both are set. `--help` shows each option's variables.

A usage error (unknown command, bad option or environment value) is one line on stderr and exit
status 2: in a container log a usage dump would bury it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from wasmfleet import __version__

# name -> (module under wasmfleet.cli, attribute, one-line help shown by `wasmfleet --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": ("up_cmd", "up", "Start NATS, the API server, the operator, the hosts and the gateway on this machine."),
    "apply": ("resources_cmd", "apply", "Create or update objects from manifests (server-side apply)."),
    "get": ("resources_cmd", "get", "List objects of a kind (hosts, workloads/ww, workloaddeployments/wd, ...)."),
    "describe": ("resources_cmd", "describe", "Show one object: spec, status, conditions and recent events."),
    "delete": ("resources_cmd", "delete", "Delete objects by kind and name, or those in manifests."),
    "logs": ("logs_cmd", "logs", "Print what a workload's components wrote on stdout/stderr (or a deployment's)."),
    "validate": ("validate_cmd", "validate", "Validate wasmCloud v2 manifests offline."),
    "crds": ("crds_cmd", "crds", "Print the runtime.wasmcloud.dev CRDs as YAML."),
    "run": ("run_cmd", "run", "Run a command component (wasi:cli/run) with args, env, dirs, stdio, like wasmtime run."),
    "serve": ("serve_cmd", "serve", "Serve a wasi:http component over HTTP (development mode)."),
    "apiserver": ("apiserver_cmd", "apiserver", "Serve the embedded Kubernetes-compatible API server (SQLite)."),
    "operator": ("operator_cmd", "operator", "Reconcile the runtime.wasmcloud.dev resources and drive hosts."),
    "host": ("host_cmd", "host", "Join the fleet over NATS and run the workloads the operator asks for."),
    "gateway": ("gateway_cmd", "gateway", "Route HTTP by Host header to the Ready replicas of workloads."),
    "dashboard": ("dashboard_cmd", "dashboard", "Serve a read-only web view of the fleet: hosts, workloads, traffic."),
    "push": ("push_cmd", "push", "Push a wasm component to an OCI registry (like wash oci push)."),
    "pull": ("push_cmd", "pull", "Pull a wasm component from an OCI registry (like wash oci pull)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attr, _ = entry
        command = getattr(importlib.import_module(f"wasmfleet.cli.{module}"), attr)
        assert isinstance(command, click.Command)
        settable_from_environment(command, cmd_name)
        return command

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            click.echo(f"{prog_name or 'wasmfleet'}: {usage_error_line(exc)}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Uses the table's help lines so `--help` imports no command module.
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wasmfleet")
def cli() -> None:
    """Run WebAssembly workloads across a fleet of machines (wasmCloud v2 compatible)."""


ENV_PREFIX = "WASMFLEET"


def env_name(command_name: str, option: click.Option) -> str | None:
    """The variable the environment rule gives an option (None for an option with no long name)."""
    long_names = [name for name in option.opts if name.startswith("--")]
    if not long_names:
        return None
    return f"{ENV_PREFIX}_{command_name}_{long_names[0][2:]}".upper().replace("-", "_")


def settable_from_environment(command: click.Command, command_name: str) -> None:
    """Attach the rule's variable to every option of `command` (and of its subcommands), ahead of
    any name the option declared itself. Idempotent: commands are module-level singletons."""
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        name = env_name(command_name, param)
        if name is None:
            continue
        declared = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
        if name not in declared:
            param.envvar = [name, *declared]
            param.show_envvar = True
    if isinstance(command, click.Group):
        for sub_name, sub in command.commands.items():
            settable_from_environment(sub, f"{command_name}_{sub_name}")


def usage_error_line(exc: click.UsageError) -> str:
    """One line: the problem (click names the option and its variables) and where to look."""
    message = " ".join(exc.format_message().split())
    where = exc.ctx.command_path if exc.ctx is not None else "wasmfleet"
    return f"{message} (see '{where} --help')"


def main() -> None:
    cli()
