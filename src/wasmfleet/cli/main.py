"""The `wasmfleet` command: one group, each subcommand in its own module.

Subcommands are listed here by hand (no import-time self-registration) so what the CLI exposes is
readable in one place. They load lazily: `wasmfleet validate` must not pay for importing wasmtime,
aiohttp and the Kubernetes client, and every child process `wasmfleet up` starts imports only its
own command.
"""

from __future__ import annotations

import importlib

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
    "serve": ("serve_cmd", "serve", "Serve a wasi:http component over HTTP (development mode)."),
    "apiserver": ("apiserver_cmd", "apiserver", "Serve the embedded Kubernetes-compatible API server (SQLite)."),
    "operator": ("operator_cmd", "operator", "Reconcile the runtime.wasmcloud.dev resources and drive hosts."),
    "host": ("host_cmd", "host", "Join the fleet over NATS and run the workloads the operator asks for."),
    "gateway": ("gateway_cmd", "gateway", "Route HTTP by Host header to the Ready replicas of workloads."),
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
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Uses the table's help lines so `--help` imports no command module.
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wasmfleet")
def cli() -> None:
    """Run WebAssembly workloads across a fleet of machines (wasmCloud v2 compatible)."""


def main() -> None:
    cli()
