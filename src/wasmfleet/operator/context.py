"""What every controller shares: clients, caches, the host registry, metrics and settings.

Built once by `manager` and passed to each controller explicitly (no module-level globals).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wasmfleet.kube import client, events, freshness, informing
from wasmfleet.operator import assignments, hostregistry, metrics, settings


@dataclass
class Informers:
    hosts: informing.Informer
    workloads: informing.Informer
    replicasets: informing.Informer
    deployments: informing.Informer
    artifacts: informing.Informer
    configmaps: informing.Informer
    secrets: informing.Informer

    def all(self) -> list[informing.Informer]:
        return [self.hosts, self.workloads, self.replicasets, self.deployments, self.artifacts,
                self.configmaps, self.secrets]


@dataclass
class Context:
    settings: settings.OperatorSettings
    kube: client.KubeClient
    nats: Any  # nats.aio.client.Client (connected, reconnecting forever)
    informers: Informers
    registry: hostregistry.HostRegistry
    assignments: assignments.Assignments
    recorder: events.EventRecorder
    metrics: metrics.Metrics
    # Queue-adders per controller, filled in by the manager: "workloads", "hosts", ...
    enqueue: dict[str, Callable[[str], None]] = field(default_factory=dict)
    # Cache readers that know about our own writes, per kind ("workloads", "replicasets", ...).
    readers: dict[str, freshness.FreshReader] = field(default_factory=dict)
