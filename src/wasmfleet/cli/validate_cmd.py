"""`wasmfleet validate`: check manifests offline, before they reach an API server."""

from __future__ import annotations

import click

from wasmfleet.api import validation


@click.command("validate")
@click.option("-f", "--filename", "paths", multiple=True, required=True, metavar="PATH",
              help="A manifest file or a folder of them (.yaml, .yml, .json); repeatable.")
def validate(paths: tuple[str, ...]) -> None:
    """Validate wasmCloud v2 manifests: every error with file, document, object and field path.

    Rules spanning fields are the CRDs' CEL rules, evaluated as the API server evaluates them, with
    the same messages.

    \b
    Example:
      wasmfleet validate -f examples/ -f my-app.yaml
    Exit status: 0 when every document is valid, 1 otherwise.
    """
    try:
        count, problems = validation.validate_paths(paths)
    except validation.LoadError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        click.echo(f"{len(problems)} error(s) in {count} document(s)", err=True)
        raise SystemExit(1)
    click.echo(f"{count} document(s) valid")
