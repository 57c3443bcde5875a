"""`wasmfleet operator`: reconcile runtime.wasmcloud.dev resources and drive hosts over NATS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

import click

from wasmfleet.bus import login_check
from wasmfleet.bus.connection_options import NatsConnectionOptions
from wasmfleet.cli.nats_options import nats_connection_options
from wasmfleet.kube import leasing, running
from wasmfleet.operator import manager, settings


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not HOST:PORT") from None


@click.command("operator")
@click.option("--kubeconfig", type=click.Path(path_type=Path), required=True, envvar="KUBECONFIG",
              help="Kubeconfig of the API server (embedded or a real cluster; default: $KUBECONFIG).")
@click.option("--nats", "nats_url", default="nats://127.0.0.1:4222", show_default=True, envvar="WASMFLEET_NATS",
              help="NATS URL(s) the hosts are connected to, comma-separated.")
@click.option("--namespace", default=None, help="Only reconcile this namespace (default: all).")
@click.option("--listen", default="127.0.0.1:8081", show_default=True,
              help="HOST:PORT for /metrics, /healthz and /readyz (port 0 picks a free one).")
@click.option("--host-namespace", default="default", show_default=True,
              help="Namespace Host objects are written to.")
@click.option("--host-expiry", default=3.0, show_default=True, type=click.FloatRange(0.5),
              help="Seconds without a heartbeat before a host is not Ready and its workloads move.")
@click.option("--concurrency", default=64, show_default=True, type=click.IntRange(1, 256),
              help="Workload reconciles in flight at once.")
@click.option("--sync-interval", default=30.0, show_default=True, type=click.FloatRange(1),
              help="Seconds between confirmations that a placed workload still runs on its host.")
@click.option("--host-forget-after", default=600.0, show_default=True, type=click.FloatRange(10),
              help="Seconds a host may stay not Ready before its Host object is deleted.")
@click.option("--start-backoff-max", default=30.0, show_default=True, type=click.FloatRange(0.5),
              help="Longest delay between retries of a start the host says may succeed later.")
@click.option("--rebalance/--no-rebalance", default=True, show_default=True,
              help="Spread replicas piled on few hosts back out (one at a time, without a gap).")
@click.option("--resync-interval", default=300.0, show_default=True, type=click.FloatRange(10),
              help="Seconds between full re-reads of the caches into the controllers (a safety net).")
@click.option("--artifact-poll-interval", default=300.0, show_default=True, type=click.FloatRange(0.5),
              help="Seconds between checks that an Artifact's tag still points at what was published "
                   "(one HEAD request per Artifact); a moved tag is pulled and rolled out.")
@click.option("--identity", default=None, help="Leader-election identity (default: hostname-pid).")
@click.option("--lease-namespace", default="default", show_default=True)
@click.option("--lease-name", default="wasmfleet-operator", show_default=True)
@click.option("--lease-duration", default=15.0, show_default=True, type=click.FloatRange(2),
              help="Seconds a silent leader is trusted; the worst-case takeover time.")
@click.option("--metrics-auth", is_flag=True,
              help="Serve /metrics only to bearer tokens the API server authenticates and allows to get "
                   "/metrics (TokenReview + SubjectAccessReview).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@nats_connection_options
def operator(
    kubeconfig: Path, nats_url: str, namespace: str | None, listen: str, host_namespace: str,
    host_expiry: float, concurrency: int, sync_interval: float, host_forget_after: float,
    start_backoff_max: float, rebalance: bool, resync_interval: float, artifact_poll_interval: float,
    identity: str | None,
    lease_namespace: str, lease_name: str, lease_duration: float, metrics_auth: bool, log_level: str,
    nats_connection: NatsConnectionOptions,
) -> None:
    """Reconcile WorkloadDeployments, ReplicaSets, Workloads, Hosts and Artifacts.

    \b
    Several operators may run at once: only the holder of the Lease reconciles, a standby takes
    over within --lease-duration when the holder dies.
    \b
    Example:
      wasmfleet operator --kubeconfig .wasmfleet/kubeconfig --nats nats://127.0.0.1:4222
      curl http://127.0.0.1:8081/metrics
    """
    handler = logging.StreamHandler()
    handler.addFilter(running.ReconcileIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s operator %(levelname)s [%(reconcile_id)s] %(message)s"))
    logging.basicConfig(level=log_level.upper(), handlers=[handler])
    if not kubeconfig.is_file():
        raise click.ClickException(f"kubeconfig {kubeconfig} does not exist")
    host, port = _listen(listen)
    renew = max(1.0, lease_duration * 2 / 3)
    cfg = settings.OperatorSettings(
        kubeconfig=str(kubeconfig),
        nats_url=nats_url,
        nats_connection=nats_connection,
        namespace=namespace,
        listen_host=host,
        listen_port=port,
        hosts=settings.HostHealth(expiry_s=host_expiry, namespace=host_namespace, forget_after_s=host_forget_after),
        reconciling=settings.Reconciling(
            concurrency=settings.Concurrency(workloads=concurrency), sync_interval_s=sync_interval,
            start_backoff_max_s=start_backoff_max, rebalance=rebalance, resync_s=resync_interval,
        ),
        lease=leasing.LeaseSettings(
            namespace=lease_namespace, name=lease_name, lease_duration_s=lease_duration,
            renew_deadline_s=renew, retry_period_s=max(0.5, lease_duration / 7.5),
        ),
        metrics_auth=metrics_auth,
        artifacts=settings.ArtifactPublishing(poll_interval_s=artifact_poll_interval),
        **({"identity": identity} if identity else {}),
    )
    try:
        asyncio.run(login_check.check(nats_url, nats_connection, role="operator"))
    except login_check.LoginRefused as exc:
        raise click.ClickException(str(exc)) from None
    try:
        code = asyncio.run(_run(cfg))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    sys.exit(code)


async def _run(cfg: settings.OperatorSettings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return await manager.Operator(cfg).run(stop)
