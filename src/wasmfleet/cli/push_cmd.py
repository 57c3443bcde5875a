"""`wasmfleet push REF FILE` and `wasmfleet pull REF [FILE]`: wasm components as OCI artifacts.

Like `wash oci push/pull`: the artifact layout, media types and annotations are in
wasmfleet.artifacts.transfers (and docs/artifacts.md). Credentials, first found wins:
--username/--password, then $WASMFLEET_REGISTRY_USERNAME/$WASMFLEET_REGISTRY_PASSWORD, then the
registry's entry in the docker config ($DOCKER_CONFIG/config.json, else ~/.docker/config.json;
credential helpers are not consulted). Registries on loopback are spoken to over plain HTTP;
--insecure does so for any registry.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import click

from wasmfleet.artifacts import oci, pull_secrets, references, transfers, wasm_kinds
from wasmfleet.artifacts.errors import ArtifactError
from wasmfleet.artifacts.fetching import ArtifactSettings

USERNAME_ENV = "WASMFLEET_REGISTRY_USERNAME"
PASSWORD_ENV = "WASMFLEET_REGISTRY_PASSWORD"


def _auth_options(func: Any) -> Any:
    func = click.option("--insecure", is_flag=True, help="Speak plain HTTP to this registry (no TLS).")(func)
    func = click.option("--password", "-p", envvar=PASSWORD_ENV, show_envvar=True, help="Registry password.")(func)
    func = click.option("--username", "-u", envvar=USERNAME_ENV, show_envvar=True,
                        help="Registry user (without one: the docker config's entry, else anonymous).")(func)
    return func


@click.command()
@click.argument("ref")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--annotation", "-a", "annotations", multiple=True, metavar="KEY=VALUE",
              help="Manifest annotation, e.g. org.opencontainers.image.source=https://... (repeatable).")
@_auth_options
def push(ref: str, file: Path, annotations: tuple[str, ...], username: str | None, password: str | None,
         insecure: bool) -> None:
    """Push the component FILE to the registry as REF.

    Example: wasmfleet push localhost:5000/hello:1.0.0 build/hello.wasm
    """
    extra: dict[str, str] = {}
    for item in annotations:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--annotation")
        extra[key] = value
    try:
        wasm = file.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"{file}: {exc.strerror or exc}") from None
    if wasm_kinds.describe(wasm[: wasm_kinds.HEADER_BYTES]) != "component":
        raise click.ClickException(f"{file}: {wasm_kinds.describe(wasm[: wasm_kinds.HEADER_BYTES])}, "
                                   "not a wasm component")

    async def run(registry: oci.RegistryClient, oci_ref: references.OciRef, creds: oci.Credentials | None) -> None:
        pushed = await transfers.push_component(registry, oci_ref, wasm, creds, annotations=extra)
        click.echo(f"pushed {pushed.reference} ({pushed.size} bytes)")
        click.echo(f"manifest {pushed.manifest_digest}")
        click.echo(f"layer    {pushed.layer_digest}")

    _run(ref, username, password, insecure, run)


@click.command()
@click.argument("ref")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@_auth_options
def pull(ref: str, file: Path | None, username: str | None, password: str | None, insecure: bool) -> None:
    """Pull the component REF from its registry into FILE (default: ./<name>.wasm).

    Example: wasmfleet pull localhost:5000/hello:1.0.0 hello.wasm
    """

    async def run(registry: oci.RegistryClient, oci_ref: references.OciRef, creds: oci.Credentials | None) -> None:
        target = file or Path(oci_ref.repository.rsplit("/", 1)[-1] + ".wasm")
        layer = await transfers.pull_component(registry, oci_ref, creds, target.absolute(),
                                               max_bytes=ArtifactSettings().max_bytes)
        click.echo(f"pulled {oci_ref} to {target} ({layer.size} bytes, {layer.digest})")

    _run(ref, username, password, insecure, run)


def _run(ref: str, username: str | None, password: str | None, insecure: bool, action: Any) -> None:
    try:
        parsed = references.parse(ref)
    except references.InvalidReference as exc:
        raise click.ClickException(str(exc)) from None
    if not isinstance(parsed, references.OciRef):
        raise click.ClickException(f"{ref}: not an OCI registry reference (registry/repository:tag)")
    try:
        creds = credentials(ref, username, password)
        asyncio.run(_with_registry(parsed, creds, insecure, action))
    except ArtifactError as exc:
        raise click.ClickException(str(exc)) from None


async def _with_registry(ref: references.OciRef, creds: oci.Credentials | None, insecure: bool, action: Any) -> None:
    settings = ArtifactSettings()
    plain = (*settings.insecure_registries, ref.api_host) if insecure else settings.insecure_registries
    timeout = aiohttp.ClientTimeout(total=settings.timeout_s, connect=settings.connect_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            await action(oci.RegistryClient(session, insecure_registries=plain), ref, creds)
        except TimeoutError:
            raise ArtifactError(str(ref), f"registry {ref.api_host} timed out", retryable=True) from None
        except aiohttp.ClientError as exc:
            raise ArtifactError(str(ref), f"registry {ref.api_host}: {exc}", retryable=True) from None


def credentials(ref: str, username: str | None, password: str | None) -> oci.Credentials | None:
    """--username/--password (or their variables), else the docker config, else anonymous."""
    if username or password:
        return oci.Credentials(username or "", password or "")
    config_dir = os.environ.get("DOCKER_CONFIG")
    path = Path(config_dir) / "config.json" if config_dir else Path.home() / ".docker" / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ArtifactError(ref, f"cannot read docker config {path}: {exc}") from None
    if not isinstance(config, dict):
        raise ArtifactError(ref, f"docker config {path} is not a JSON object")
    return pull_secrets.credentials_from_docker_config(config, ref)
