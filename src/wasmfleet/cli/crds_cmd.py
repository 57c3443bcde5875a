"""`wasmfleet crds`: print (or write) the CustomResourceDefinitions generated from the models."""

from __future__ import annotations

from pathlib import Path

import click

from wasmfleet.api import crds as crd_gen


@click.command("crds")
@click.option("--write", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write one YAML file per CRD into this folder instead of printing.")
def crds(out_dir: Path | None) -> None:
    """Print the runtime.wasmcloud.dev CRDs as multi-document YAML.

    \b
    Examples:
      wasmfleet crds | kubectl apply -f -
      wasmfleet crds --write deploy/crds
    """
    definitions = crd_gen.all_crds()
    if out_dir is None:
        click.echo("---\n".join(crd_gen.to_yaml(d) for d in definitions), nl=False)
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for definition in definitions:
        (out_dir / crd_gen.file_name(definition)).write_text(crd_gen.to_yaml(definition))
    click.echo(f"wrote {len(definitions)} CRDs to {out_dir}")
