"""Settings of a host agent, grouped; built once by `wasmfleet host` and passed down explicitly."""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from wasmfleet.artifacts.fetching import ArtifactSettings
from wasmfleet.bus.connection_options import NatsConnectionOptions
from wasmfleet.host import machine
from wasmfleet.host.policy import HostPolicy
from wasmfleet.host.runtime.specs import EngineSettings
from wasmfleet.lifecycle import stopping


@dataclass(frozen=True)
class Identity:
    host_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    """Unique, stable for the process lifetime; a token of every subject addressed to this host."""

    friendly_name: str = field(default_factory=machine.friendly_name)
    """Human name (adjective-noun-NNNN); the operator names the Host object after it."""

    hostname: str = ""
    """Where the gateway reaches this host's HTTP port, and the address the gateway lists in EndpointSlices
    ('' = derived from the HTTP bind address). On Kubernetes: the pod IP (`--hostname`, or
    WASMFLEET_HOSTNAME from the downward API), since Kubernetes refuses loopback addresses in slices."""

    labels: dict[str, str] = field(default_factory=dict)
    """Matched by Workload hostSelector; `hostgroup` is the group (default "default")."""

    environment: str = ""
    """Tenant/environment the host advertises; the operator's scheduler isolates on it."""


@dataclass(frozen=True)
class BusSettings:
    nats_url: str = "nats://127.0.0.1:4222"
    """One or more comma-separated NATS URLs."""

    reconnect_wait_s: float = 0.5
    """Pause between reconnect attempts. Short: a restarted nats-server should see hosts return within
    a second, and one TCP connect per host per half second is negligible load."""

    connect_timeout_s: float = 2.0
    """Bound of one connection attempt."""

    heartbeat_interval_s: float = 15.0
    """Period of published heartbeats (upstream: 15 s). The operator marks a host silent after several
    missed beats, so this bounds how fast a dead host is noticed."""

    connection: NatsConnectionOptions = field(default_factory=NatsConnectionOptions)
    """Credentials and TLS for the NATS link."""

    data_nats_url: str = ""
    """NATS servers of the data plane, where plugins keep workloads' data ('' = `nats_url`)."""

    data_connection: NatsConnectionOptions | None = None
    """Credentials and TLS of the data-plane identity (None = `connection`: one login for both, fine
    where NATS has no per-role permissions; `wasmfleet up` sets its `data` identity here)."""

    @property
    def data_url(self) -> str:
        return self.data_nats_url or self.nats_url

    @property
    def data_options(self) -> NatsConnectionOptions:
        return self.data_connection if self.data_connection is not None else self.connection


@dataclass(frozen=True)
class ServingSettings:
    http_host: str = "127.0.0.1"
    """Bind address of the HTTP data plane."""

    http_port: int = 0
    """0 = any free port (reported in heartbeats, so the gateway finds it)."""

    workers: int = 1
    """Worker processes serving wasm (wasmtime under the GIL scales by processes, not threads)."""

    metrics_host: str = "127.0.0.1"
    """Bind address of /metrics, /healthz, /readyz."""

    metrics_port: int | None = None
    """Port of those endpoints; None = not served (0 = any free port)."""

    metrics_auth_kubeconfig: Path | None = None
    """With a kubeconfig (--metrics-auth): /metrics answers only bearer tokens that API server
    authenticates and allows to get /metrics (observability.metrics_auth); None = open."""


@dataclass(frozen=True)
class LifecycleSettings:
    drain_timeout_s: float = 10.0
    """Bound of a graceful stop: in-flight commands and HTTP requests get this long to finish."""

    stop_overhead_s: float = 4.0
    """What a stop may take beyond the drain: announcing the leave, unwinding cancelled commands,
    stopping worker processes, closing NATS. Each of those steps is bounded on its own; this caps
    their sum, so a host stops within drain_timeout_s + stop_overhead_s whatever state NATS, its
    workers or its guests are in (and the process exits a moment later, see lifecycle.stopping)."""

    @property
    def stop_bound_s(self) -> float:
        """From SIGTERM to the process's exit, at most (enforced by `wasmfleet host`'s watchdog): the
        drain, the stop's overhead, the event loop's bounded clean-up and a second of slack."""
        return self.drain_timeout_s + self.stop_overhead_s + stopping.EXIT_CLEANUP_S + 1

    max_concurrent_starts: int = 8
    """Workload starts fetched/compiled at once; more queue up (compiles are CPU-bound)."""

    data_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "wasmfleet-host")
    """Per-workload scratch (ephemeral volumes) lives under data_dir/workloads/<workloadId>."""


@dataclass(frozen=True)
class HostSettings:
    identity: Identity = field(default_factory=Identity)
    bus: BusSettings = field(default_factory=BusSettings)
    serving: ServingSettings = field(default_factory=ServingSettings)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    artifacts: ArtifactSettings = field(default_factory=ArtifactSettings)
    runtime_cache_dir: Path | None = None
    """Compiled-component cache of the runtime (None = the runtime's default)."""
    engine: EngineSettings = field(default_factory=EngineSettings)
    """The wasmtime engine and host-call entry (`wasmfleet host` reads WASMFLEET_FASTHOST and
    WASMFLEET_POOLING into it)."""
    policy: HostPolicy = field(default_factory=HostPolicy)
    """What start requests may ask: local files, host paths, memory (default: no local files)."""
