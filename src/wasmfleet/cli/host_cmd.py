"""`wasmfleet host`: join the fleet as a host (washlet) and run the workloads the operator places here."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import uuid
from pathlib import Path

import click

from wasmfleet.artifacts.fetching import ArtifactSettings
from wasmfleet.bus import login_check, subjects
from wasmfleet.bus.connection_options import NatsConnectionOptions
from wasmfleet.cli.nats_options import data_nats_connection_options, nats_connection_options
from wasmfleet.host import machine
from wasmfleet.host.policy import HostPolicy
from wasmfleet.host.runtime.specs import EngineSettings
from wasmfleet.host.settings import BusSettings, HostSettings, Identity, LifecycleSettings, ServingSettings
from wasmfleet.lifecycle import stopping
from wasmfleet.scheduler.filters import SHARED_HOSTING_LABEL


def _labels(values: tuple[str, ...]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not key=value", param_hint="--label")
        labels[key] = val
    return labels


def _mirrors(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    mirrors: dict[str, str] = {}
    for value in values:
        registry, sep, mirror = value.partition("=")
        if not sep or not registry or not mirror or "/" in registry or "/" in mirror:
            raise click.BadParameter(f"{value!r} is not REGISTRY=MIRROR (two registry hosts, e.g. "
                                     "ghcr.io=127.0.0.1:5000)", param_hint="--registry-mirror")
        mirrors[registry.lower()] = mirror
    return tuple(mirrors.items())


def _absolute(paths: tuple[Path, ...]) -> tuple[Path, ...]:
    return tuple(path.absolute() for path in paths)


def _http_addr(value: str, option: str = "--http-addr") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = value, "0"
    try:
        number = int(port)
    except ValueError:
        raise click.BadParameter(f"{value!r}: port {port!r} is not a number", param_hint=option) from None
    if not 0 <= number <= 65535:
        raise click.BadParameter(f"{value!r}: port out of range", param_hint=option)
    return host.strip("[]") or "0.0.0.0", number


@click.command("host")
@click.option("--nats", "nats_url", envvar="WASMFLEET_NATS_URL", default="nats://127.0.0.1:4222",
              show_default=True, help="NATS URL(s), comma-separated.")
@click.option("--name", default=None, help="Friendly name (default: a generated adjective-noun-NNNN).")
@click.option("--host-id", default=None, help="Unique host ID (default: a random UUID).")
@click.option("--group", default="default", show_default=True, help="Host group (the `hostgroup` label).")
@click.option("--label", "label_values", multiple=True, metavar="KEY=VALUE", help="Host label; repeatable.")
@click.option("--http-addr", default="127.0.0.1:0", show_default=True,
              help="HTTP bind address of the data plane, HOST:PORT (port 0 = any free port).")
@click.option("--hostname", envvar="WASMFLEET_HOSTNAME", default="",
              help="Name/IP the gateway and EndpointSlices use to reach this host (default: bind addr; "
                   "on Kubernetes set WASMFLEET_HOSTNAME to the pod IP from the downward API).")
@click.option("--environment", default="", help="Environment (tenant) this host advertises.")
@click.option("--heartbeat-interval", default=15.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between heartbeats.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes serving wasm.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Scratch space for ephemeral volumes (default: the system temp dir).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache of fetched components (default: ~/.cache/wasmfleet/artifacts).")
@click.option("--drain-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds a graceful stop waits for in-flight work.")
@click.option("--insecure-registry", "insecure", multiple=True,
              help="Registry host spoken to over plain HTTP (loopback always is); repeatable.")
@click.option("--registry-mirror", "mirror_values", multiple=True, metavar="REGISTRY=MIRROR",
              help="Pull images named on REGISTRY (e.g. ghcr.io) from MIRROR (host[:port]) instead, same "
                   "repository and tag, like containerd's mirrors; repeatable (env: space-separated).")
@click.option("--metrics-addr", default=None, metavar="HOST:PORT",
              help="Serve /metrics, /healthz and /readyz here (default: not served).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--allow-file-root", "file_roots", multiple=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory file:// images may be read from; repeatable (default: none).")
@click.option("--allow-host-path", "host_paths", multiple=True, metavar="PREFIX",
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory hostPath volumes may name or lie under; repeatable (default: none).")
@click.option("--max-component-memory-mb", default=0, show_default=True, type=click.IntRange(min=0),
              help="Cap of a component's memoryLimitMb, and its limit when it sets none and the "
                   "runtime's 512 MB default is above it (0: no cap).")
@click.option("--max-component-cpu", "max_component_cpu", default=0, show_default=True, type=click.IntRange(min=0),
              metavar="MILLICORES",
              help="Cap of a component's or service's cpuLimit in millicores (1000 = one core per guest "
                   "thread), and its limit when it sets none (0: no cap).")
@click.option("--allow-shared-hosting", is_flag=True,
              help="Take workloads of other environments too (label "
                   f"{SHARED_HOSTING_LABEL}=true); without it a host with --environment takes only its own.")
@click.option("--metrics-auth", is_flag=True,
              help="Serve /metrics only to bearer tokens the API server (--kubeconfig) authenticates and "
                   "allows to get /metrics (TokenReview + SubjectAccessReview).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False, path_type=Path), default=None, envvar="KUBECONFIG",
              help="API server that checks /metrics tokens (with --metrics-auth; hosts need no other API access).")
@click.option("--data-nats", "data_nats_url", default="", metavar="URL",
              help="NATS URL(s) of the data plane, where plugins keep workloads' keyvalue, blobstore and "
                   "messaging data (default: --nats).")
@nats_connection_options
@data_nats_connection_options
def host(
    nats_url: str, name: str | None, host_id: str | None, group: str, label_values: tuple[str, ...],
    http_addr: str, hostname: str, environment: str, heartbeat_interval: float, workers: int,
    data_dir: Path | None, cache_dir: Path | None, drain_timeout: float, insecure: tuple[str, ...],
    mirror_values: tuple[str, ...],
    metrics_addr: str | None, log_level: str, file_roots: tuple[Path, ...], host_paths: tuple[Path, ...],
    max_component_memory_mb: int, max_component_cpu: int, allow_shared_hosting: bool, metrics_auth: bool,
    kubeconfig: Path | None,
    data_nats_url: str, nats_connection: NatsConnectionOptions, data_nats_connection: NatsConnectionOptions | None,
) -> None:
    """Join the fleet over NATS and run the workloads the operator places on this host.

    SIGTERM or Ctrl-C stops gracefully: no new work, a leaving announcement to the operator,
    in-flight requests finished within --drain-timeout; the process is gone a few seconds after
    that whatever it is stuck on. A second signal exits at once.

    \b
    Example:
      wasmfleet host --nats nats://127.0.0.1:4222 --group public-ingress --http-addr 127.0.0.1:4000

    Plugins reach NATS as the data plane: --data-nats (default --nats) with the --data-nats-* login
    (default: the --nats-* one). Where NATS separates roles, give the data identity here: the control
    login of a host may not use JetStream.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    labels = {"hostgroup": group, **_labels(label_values)}
    if allow_shared_hosting:
        labels[SHARED_HOSTING_LABEL] = "true"
    try:
        checked_id = subjects.check_host_id(host_id) if host_id else str(uuid.uuid4())
    except subjects.InvalidHostId as exc:
        raise click.BadParameter(str(exc), param_hint="--host-id") from None
    identity = Identity(
        host_id=checked_id,
        friendly_name=name or machine.friendly_name(),
        hostname=hostname,
        labels=labels,
        environment=environment,
    )
    bind_host, bind_port = _http_addr(http_addr)
    metrics_host, metrics_port = "127.0.0.1", None
    if metrics_addr is not None:
        metrics_host, metrics_port = _http_addr(metrics_addr, "--metrics-addr")
    defaults = ArtifactSettings()
    artifacts = ArtifactSettings(
        cache_dir=cache_dir or defaults.cache_dir,
        insecure_registries=defaults.insecure_registries + insecure,
        registry_mirrors=_mirrors(mirror_values),
    )
    lifecycle = LifecycleSettings(drain_timeout_s=drain_timeout)
    if data_dir is not None:
        lifecycle = LifecycleSettings(drain_timeout_s=drain_timeout, data_dir=data_dir)
    settings = HostSettings(
        identity=identity,
        bus=BusSettings(nats_url=nats_url, heartbeat_interval_s=heartbeat_interval, connection=nats_connection,
                        data_nats_url=data_nats_url, data_connection=data_nats_connection),
        serving=ServingSettings(
            http_host=bind_host, http_port=bind_port, workers=workers,
            metrics_host=metrics_host, metrics_port=metrics_port,
        ),
        lifecycle=lifecycle,
        artifacts=artifacts,
        engine=EngineSettings.from_environment(os.environ),
        policy=HostPolicy(file_roots=_absolute(file_roots), host_path_prefixes=_absolute(host_paths),
                          max_component_memory_mb=max_component_memory_mb,
                          max_component_cpu_millicores=max_component_cpu),
    )
    if metrics_auth:
        if kubeconfig is None or not kubeconfig.is_file():
            raise click.BadParameter(f"needs --kubeconfig naming an existing file (got {kubeconfig})",
                                     param_hint="--metrics-auth")
        settings = dataclasses.replace(settings, serving=dataclasses.replace(
            settings.serving, metrics_auth_kubeconfig=kubeconfig))
    try:
        asyncio.run(login_check.check(nats_url, nats_connection, role=f"host {checked_id}"))
    except login_check.LoginRefused as exc:
        raise click.ClickException(str(exc)) from None
    try:
        # The whole stop, from SIGTERM to the process's exit, is bounded: drain, the agent's own
        # overhead, then the loop's bounded clean-up (a watchdog ends the process past that).
        stopping.run(functools.partial(_run, settings), stop_within_s=lifecycle.stop_bound_s)
    except OSError as exc:
        raise click.ClickException(f"host: {exc.strerror or exc} ({http_addr})") from None


async def _run(settings: HostSettings, stop: asyncio.Event) -> None:
    # Imported here: the agent pulls in wasmtime, nats and aiohttp, which other subcommands
    # (and `wasmfleet --help`) should not pay for.
    from wasmfleet.host.agent import Agent

    agent = Agent(settings)
    starting = asyncio.create_task(agent.start())
    stopping_ = asyncio.create_task(stop.wait())
    try:
        # Race the start with a signal: a host still waiting for NATS must stop on SIGTERM too.
        await asyncio.wait({starting, stopping_}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()
            metrics = f"; metrics on port {agent.metrics_port}" if agent.metrics_port is not None else ""
            click.echo(
                f"host {settings.identity.friendly_name} ({agent.host_id}) "
                f"serving HTTP on port {agent.http_port}{metrics}",
                err=True,
            )
            await stopping_
    finally:
        for task in (starting, stopping_):
            task.cancel()
        await asyncio.wait({starting, stopping_}, timeout=stopping.CANCEL_GRACE_S)
        await agent.shutdown()
