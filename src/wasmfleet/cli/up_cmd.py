"""`wasmfleet up`: the whole fleet on this machine, in one command."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import click

from wasmfleet.bus import http_routing
from wasmfleet.cli import resources_api as rapi
from wasmfleet.cli import resources_cmd
from wasmfleet.embedded import fleet, running, supervising
from wasmfleet.gateway import routes


def _groups(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    groups = tuple(g.strip() for g in value.split(",") if g.strip())
    if not groups:
        raise click.BadParameter("name at least one host group")
    for g in groups:
        if not g.replace("-", "").isalnum() or g != g.lower():
            raise click.BadParameter(f"{g!r} is not a valid group name (lower-case letters, digits, '-')")
    return groups


@click.command("up")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".wasmfleet"),
              show_default=True, help="Where state, logs and the kubeconfig live; rerun to resume.")
@click.option("--host-groups", default=",".join(fleet.DEFAULT_GROUPS), show_default=True, callback=_groups,
              help="Comma-separated host groups (label hostgroup=<name> on each host).")
@click.option("--hosts-per-group", default=1, show_default=True, type=click.IntRange(0, 64),
              help="Hosts started in every group.")
@click.option("--gateway-port", default=8000, show_default=True, type=click.IntRange(1, 65535),
              help="Gateway port (another free one is used, and printed, when it is taken).")
@click.option("--dashboard-port", default=8088, show_default=True, type=click.IntRange(1, 65535),
              help="Dashboard port on 127.0.0.1 (another free one is used, and printed, when it is taken).")
@click.option("--host-workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Wasm worker processes per host.")
@click.option("--public-address", default="127.0.0.1", show_default=True,
              help="Bind address of public-ingress hosts (0.0.0.0 exposes them to the network).")
@click.option("--apply", "apply_paths", multiple=True, metavar="PATH",
              help="Manifests to apply once the fleet is up (e.g. examples/hello/deployment.yaml); repeatable.")
@click.option("--allow-file-root", "file_roots", multiple=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory hosts may read file:// images from, besides examples/ and DATA_DIR; repeatable.")
@click.option("--allow-host-path", "host_paths", multiple=True, metavar="PREFIX",
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory hostPath volumes may name, besides DATA_DIR/host-paths; repeatable.")
def up(data_dir: Path, host_groups: tuple[str, ...], hosts_per_group: int, gateway_port: int, dashboard_port: int,
       host_workers: int, public_address: str, apply_paths: tuple[str, ...], file_roots: tuple[Path, ...],
       host_paths: tuple[Path, ...]) -> None:
    """Start NATS, the API server, the operator, the hosts, the gateway and the dashboard; Ctrl-C stops them.

    \b
    Example:
      wasmfleet up --apply examples/hello/deployment.yaml
      export KUBECONFIG=.wasmfleet/kubeconfig; kubectl get hosts
    """
    from wasmfleet.cli import main  # the command table, to know which subcommands this build has

    options = fleet.FleetOptions(
        data_dir=data_dir.resolve(),
        host_groups=host_groups,
        hosts_per_group=hosts_per_group,
        gateway_port=gateway_port,
        dashboard_port=dashboard_port,
        public_address=public_address,
        host_workers=host_workers,
        allow_file_roots=tuple(p.resolve() for p in file_roots),
        allow_host_paths=tuple(p.resolve() for p in host_paths),
    )
    started = time.monotonic()

    def report(line: str) -> None:
        stamp = f"{time.monotonic() - started:6.1f}s" if line.strip() else ""
        click.echo(f"{stamp} {line}".rstrip() if line.startswith(("[", "stopping", "stopped")) else line)

    try:
        docs = rapi.load_manifests(apply_paths) if apply_paths else []
    except rapi.ApiError as exc:
        raise click.ClickException(str(exc)) from None

    async def after_start(endpoints: fleet.Endpoints) -> None:
        if docs:
            await _apply_and_wait(options.data_dir / "kubeconfig", docs, endpoints.gateway_url, report)

    try:
        asyncio.run(running.run(options, sorted(main.COMMANDS), report, after_start=after_start))
    except (supervising.StartError, running.AlreadyRunning) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


async def _apply_and_wait(kubeconfig: Path, docs: list[tuple[str, rapi.Obj]], gateway_url: str,
                          report: Callable[[str], None], timeout_s: float = 120.0) -> None:
    """Apply the manifests, then wait until each HTTP hostname they declare answers through the gateway."""
    try:
        api = await rapi.Api.connect(kubeconfig)
        try:
            await resources_cmd.apply_documents(api, docs, None, report)
        finally:
            await api.close()
    except rapi.ApiError as exc:
        report(f"apply failed: {exc}")
        return
    hostnames: list[str] = []
    for _, obj in docs:
        spec = obj.get("spec") or {}
        template = spec.get("template")
        workload_spec = template.get("spec") if isinstance(template, dict) else spec
        if isinstance(workload_spec, dict):
            hostnames += http_routing.route_names(routes.handler_configs(workload_spec))[:1]
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for name in dict.fromkeys(hostnames):
            report(f"waiting for {name} to serve through the gateway ...")
            while True:
                try:
                    async with session.get(gateway_url + "/", headers={"Host": name}) as resp:
                        if resp.status < 500:
                            report(f"{name} is serving. Try:  curl -H 'Host: {name}' {gateway_url}/")
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    report(f"{name} not serving after {timeout_s:g} s; see `wasmfleet describe wd` and the logs")
                    break
                await asyncio.sleep(0.5)
