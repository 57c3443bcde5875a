"""The `wasmfleet` command: one group, each subcommand in its own module.

Subcommands are registered here by hand (no import-time self-registration) so the list of what
the CLI exposes is readable in one place.
"""

from __future__ import annotations

import click

from wasmfleet import __version__
from wasmfleet.cli import (
    apiserver_cmd,
    crds_cmd,
    gateway_cmd,
    host_cmd,
    operator_cmd,
    resources_cmd,
    serve_cmd,
    up_cmd,
    validate_cmd,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wasmfleet")
def cli() -> None:
    """Run WebAssembly workloads across a fleet of machines (wasmCloud v2 compatible)."""


cli.add_command(crds_cmd.crds)
cli.add_command(apiserver_cmd.apiserver)
cli.add_command(validate_cmd.validate)
cli.add_command(gateway_cmd.gateway)
cli.add_command(up_cmd.up)
cli.add_command(operator_cmd.operator)
cli.add_command(serve_cmd.serve)
cli.add_command(host_cmd.host)
for _verb in (resources_cmd.apply, resources_cmd.get, resources_cmd.describe, resources_cmd.delete):
    cli.add_command(_verb)


def main() -> None:
    cli()
