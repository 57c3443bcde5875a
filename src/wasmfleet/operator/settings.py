"""Operator settings, grouped by concern; built once by the CLI and passed down explicitly.

Every tunable of the operator lives here with its unit and the reason for its default; nothing
below reads a global or an environment variable.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from wasmfleet.artifacts import object_store
from wasmfleet.bus.connection_options import NatsConnectionOptions
from wasmfleet.kube import leasing


@dataclass(frozen=True)
class HostHealth:
    """How host liveness is judged from heartbeats, and how Host objects are kept."""

    expiry_s: float = 3.0
    """Seconds a host may stay silent before it is not Ready and its workloads move elsewhere
    (at least: see missed_beats). Upstream waits 60 s; wasmfleet hosts heartbeat every second in a
    local fleet, so 3 missed beats meet the 5 s failover target. Raise it on slow or lossy networks."""

    status_interval_s: float = 10.0
    """Seconds a live Host object's status.lastSeen may lag. Host status writes are throttled to
    this, so a heartbeat a second does not become an API write a second per host."""

    namespace: str = "default"
    """Where Host objects are written (they mirror heartbeats, as Nodes mirror kubelets)."""

    missed_beats: float = 3.0
    """A host is also given this many of its own observed heartbeat intervals (median of the last
    five), so hosts beating every 15 s (upstream's default) are not declared dead between beats once
    their cadence is known. Before their second beat the plain expiry applies: with such hosts, set
    expiry_s to about 3 intervals (e.g. 45 s) to avoid one not-Ready blip after each host starts."""

    forget_after_s: float = 600.0
    """Seconds a host may stay not Ready before its Host object is deleted and the operator forgets
    it. Long enough (10 minutes) for a reboot or a network repair to bring it back under the same
    object; short enough that `kubectl get hosts` does not fill up with hosts that are gone."""


@dataclass(frozen=True)
class Concurrency:
    """Reconciles in flight at once, per controller (never two for one object)."""

    workloads: int = 64
    """Each Workload reconcile may wait up to Reconciling.start_timeout_s on a host pulling an
    image, so this is generous: slow pulls must not hold up the failover of other workloads."""

    replicasets: int = 16
    """ReplicaSet reconciles only create and delete Workloads (API calls, no host waits)."""

    deployments: int = 16
    """Deployment reconciles only write ReplicaSets (API calls, no host waits)."""

    hosts: int = 4
    """Host reconciles write Host objects from heartbeats; throttled writes, little to do."""

    artifacts: int = 2
    """Artifacts change rarely; a reconcile is one HEAD request, or a pull when a tag moved."""


@dataclass(frozen=True)
class Reconciling:
    """How the controllers pace their work."""

    concurrency: Concurrency = field(default_factory=Concurrency)

    resync_s: float = 300.0
    """Seconds between full re-reads of each informer's cache into its controllers. Events drive
    everything; this is the safety net for a missed one (controller-runtime's default is 10 h;
    5 minutes costs little at thousands of objects)."""

    sync_interval_s: float = 30.0
    """Seconds between confirmations that a placed workload still runs on its host
    (workload.status). A host that restarted without the operator noticing is found within this."""

    service_sync_interval_s: float = 2.0
    """The same, for a workload whose service is running or restarting: a host does not announce a
    crashed service (upstream has no such message), so the operator asks this often to turn Ready
    False within seconds. One small request per such workload every 2 s; a service that failed for
    good or completed is asked about at sync_interval_s again (nothing changes until a new start)."""

    start_timeout_s: float = 60.0
    """Seconds to wait for a host's answer to workload.start (upstream's timeout: the host answers
    after pulling and compiling, which takes a while for a large image)."""

    stop_timeout_s: float = 10.0
    """Seconds to wait for workload.stop (a stop drains in-flight requests first)."""

    status_timeout_s: float = 5.0
    """Seconds to wait for workload.status (upstream's timeout). A host judged dead meanwhile ends
    the wait at once (see hostcalls)."""

    unschedulable_retry_s: float = 10.0
    """Seconds before a Workload no host can take (or with a missing reference) is looked at again,
    besides whenever hosts or the referenced objects change."""

    start_backoff_s: float = 0.5
    """First delay after a failed start the host says may succeed later (retryable); doubles with
    each further failure. Half a second: a transient registry error is retried almost at once."""

    start_backoff_max_s: float = 30.0
    """Longest delay between retried starts, so a long outage is still retried twice a minute
    without hammering the host or its registry."""

    rebalance: bool = True
    """Spread a ReplicaSet's replicas back out when they are piled on fewer hosts than could take
    them (after a failover, when hosts join), one replica at a time without a gap."""

    rebalance_timeout_s: float = 60.0
    """Seconds a replacement replica may take to become Ready before that move is given up (the
    extra replica is removed; the move is tried again later)."""

    audit_interval_s: float = 2.0
    """Seconds between comparisons of hosts' reported workload counts with the placements (a host
    reporting more for two heartbeats in a row is asked which of the other workloads it runs, and
    those are stopped). Cheap: a comparison of numbers per host unless a host reports too many."""


@dataclass(frozen=True)
class ArtifactPublishing:
    """How Artifacts are pulled from registries into the JetStream Object Store and kept current."""

    poll_interval_s: float = 300.0
    """Seconds between checks that an Artifact's tag still points at the published manifest: one
    HEAD request per Artifact per interval, whatever else triggers a reconcile (upstream requeues
    Artifacts every 5 minutes too). Lower it to roll a re-pushed tag out sooner."""

    bucket: str = object_store.BUCKET
    """Object Store bucket the components are published to (objects named by digest)."""

    bucket_replicas: int = 1
    """JetStream replicas of the bucket when the operator creates it (1: a single nats-server)."""


@dataclass(frozen=True)
class OperatorSettings:
    kubeconfig: str
    nats_url: str
    nats_connection: NatsConnectionOptions = field(default_factory=NatsConnectionOptions)  # credentials, TLS
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    namespace: str | None = None  # None = watch every namespace
    listen_host: str = "127.0.0.1"
    listen_port: int = 8081  # /metrics, /healthz, /readyz; 0 = a free port
    hosts: HostHealth = field(default_factory=HostHealth)
    reconciling: Reconciling = field(default_factory=Reconciling)
    lease: leasing.LeaseSettings = field(default_factory=leasing.LeaseSettings)
    artifacts: ArtifactPublishing = field(default_factory=ArtifactPublishing)
    metrics_auth: bool = False  # /metrics only for tokens the API server allows (observability.metrics_auth)
