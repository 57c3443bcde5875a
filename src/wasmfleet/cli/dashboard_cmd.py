"""`wasmfleet dashboard`: the read-only web view of the fleet (see docs/dashboard.md)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from wasmfleet.bus.connection_options import NatsConnectionOptions
from wasmfleet.cli.nats_options import nats_connection_options
from wasmfleet.dashboard import access, serving
from wasmfleet.dashboard.settings import DashboardSettings


def _addr(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8088, or :0 for a free port)",
                                 param_hint="'--addr'")
    return (host.strip("[]") or "127.0.0.1"), int(port)


@click.command("dashboard")
@click.option("--kubeconfig", type=click.Path(dir_okay=False, path_type=Path), required=True, envvar="KUBECONFIG",
              help="Kubeconfig whose identity the dashboard reads the fleet with (default: $KUBECONFIG).")
@click.option("--addr", default="127.0.0.1:8088", show_default=True, metavar="HOST:PORT",
              help="Where to listen. A non-loopback address needs --token or --auth-header.")
@click.option("--token", default=None, help="Viewers must send this token (Authorization: Bearer, or open "
                                            "the dashboard once with ?token=TOKEN).")
@click.option("--auth-header", default=None, metavar="NAME",
              help="Viewers must arrive with this header, set by an authenticating proxy (e.g. X-Forwarded-User).")
@click.option("-n", "--namespace", default=None, help="Show one namespace only (default: all).")
@click.option("--metrics-url", "metrics_urls", multiple=True, metavar="URL",
              help="Prometheus /metrics of a gateway or host to chart traffic from; repeatable. Scraped with "
                   "the kubeconfig's token (roles with --metrics-auth check it).")
@click.option("--metrics-interval", default=2.0, show_default=True, type=click.FloatRange(min=0.2),
              help="Seconds between scrapes (one chart point each).")
@click.option("--nats", "nats_url", default=None, metavar="URL",
              help="NATS of the fleet, for the log lines of the per-workload page (like `wasmfleet logs`).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@nats_connection_options
def dashboard(kubeconfig: Path, addr: str, token: str | None, auth_header: str | None, namespace: str | None,
              metrics_urls: tuple[str, ...], metrics_interval: float, nats_url: str | None, log_level: str,
              nats_connection: NatsConnectionOptions) -> None:
    """Serve a read-only web dashboard: hosts, deployments, workloads, events, placement and traffic.

    \b
    Example:
      wasmfleet dashboard --kubeconfig .wasmfleet/kubeconfig \\
          --metrics-url http://127.0.0.1:8000/metrics
      open http://127.0.0.1:8088/
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s dashboard %(levelname)s %(message)s")
    host, port = _addr(addr)
    if token is not None and not token.strip():
        raise click.BadParameter("must not be empty", param_hint="'--token'")
    if auth_header is not None and not auth_header.strip():
        raise click.BadParameter("must not be empty", param_hint="'--auth-header'")
    try:
        access.check_exposure(host, token, auth_header)
    except access.ExposureError as exc:
        raise click.UsageError(str(exc)) from None
    for url in metrics_urls:
        if not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="'--metrics-url'")
    if not kubeconfig.is_file():
        raise click.ClickException(f"kubeconfig {kubeconfig} does not exist")
    settings = DashboardSettings(host=host, port=port, token=token, auth_header=auth_header, namespace=namespace,
                                 metrics_urls=metrics_urls, metrics_interval_s=metrics_interval, nats_url=nats_url,
                                 nats_options=nats_connection)
    try:
        asyncio.run(serving.run(str(kubeconfig), settings, announce=lambda line: click.echo(line)))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {addr}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        pass
