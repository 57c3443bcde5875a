"""Operator settings, grouped by concern; built once by the CLI and passed down explicitly."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from wasmfleet.kube import leasing


@dataclass(frozen=True)
class HostHealth:
    """How host liveness is judged from heartbeats.

    expiry_s: a host silent for this long (at least) is not Ready and its workloads move elsewhere.
    Upstream waits 60 s; wasmfleet hosts heartbeat every second in a local fleet, so 3 missed beats
    suffice for the 5 s failover target. Raise it on slow or lossy networks.
    status_interval_s: the longest a live Host object's status.lastSeen may lag (Host status writes
    are throttled to this, so frequent heartbeats do not turn into a stream of API writes).
    """

    expiry_s: float = 3.0
    status_interval_s: float = 10.0
    namespace: str = "default"
    missed_beats: float = 3.0
    """A host is also given this many of its own observed heartbeat intervals (median of the last
    five), so hosts beating every 15 s (upstream's default) are not declared dead between beats once
    their cadence is known. Before their second beat the plain expiry applies: with such hosts, set
    expiry_s to about 3 intervals (e.g. 45 s) to avoid one not-Ready blip after each host starts."""


@dataclass(frozen=True)
class Reconciling:
    """concurrency: Workload reconciles in flight (each may wait up to start_timeout_s on a host
    pulling an image, so it is generous: slow pulls must not hold up failover of other workloads).
    sync_interval_s: how often a placed workload's state is confirmed with its host (workload.status)."""

    concurrency: int = 64
    sync_interval_s: float = 30.0
    start_timeout_s: float = 60.0
    stop_timeout_s: float = 10.0
    status_timeout_s: float = 5.0
    unschedulable_retry_s: float = 10.0
    rebalance: bool = True
    rebalance_timeout_s: float = 60.0
    audit_interval_s: float = 2.0
    """How often hosts' reported workload counts are compared with the placements (a host reporting
    more for two heartbeats in a row is asked which of the other workloads it runs, and those are
    stopped). Cheap: a comparison of numbers per host unless a host reports too many."""


@dataclass(frozen=True)
class OperatorSettings:
    kubeconfig: str
    nats_url: str
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    namespace: str | None = None  # None = watch every namespace
    listen_host: str = "127.0.0.1"
    listen_port: int = 8081  # /metrics, /healthz, /readyz; 0 = a free port
    hosts: HostHealth = field(default_factory=HostHealth)
    reconciling: Reconciling = field(default_factory=Reconciling)
    lease: leasing.LeaseSettings = field(default_factory=leasing.LeaseSettings)
