"""Data the scheduler works on: hosts as candidates and a workload's requirements.

The scheduler is pure (no I/O, no clock, no API objects): the operator translates Host and Workload
resources into these small frozen types, so placement decisions can be tested exhaustively and
explained without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Interface:
    """One WIT interface a host can link (from its heartbeat) or a workload asks for.

    `version` None means "any version" on the workload side and "unversioned" on the host side.
    """

    namespace: str
    package: str
    interface: str
    version: str | None = None


@dataclass(frozen=True)
class SelectorRequirement:
    """A matchExpressions entry: operator is In, NotIn, Exists or DoesNotExist."""

    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes-style label selector; an empty selector matches every host."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[SelectorRequirement, ...] = ()


@dataclass(frozen=True)
class HostCandidate:
    """A host as the scheduler sees it.

    `load` is the number of workloads the operator has assigned to the host (its own book-keeping,
    fresher than the count in the last heartbeat); `capacity` 0 means unlimited.
    """

    name: str
    host_id: str
    ready: bool
    labels: Mapping[str, str] = field(default_factory=dict)
    environment: str = ""
    interfaces: frozenset[Interface] = frozenset()
    load: int = 0
    capacity: int = 0
    shared: bool = False
    """The host takes workloads of any environment (its allow-shared-hosting label is "true")."""


@dataclass(frozen=True)
class Requirements:
    """What one workload replica needs from a host.

    `group` identifies the replica's siblings (the owning ReplicaSet) so they are spread; `key`
    (namespace/name of the workload) seeds the deterministic tie-break so equal hosts do not all
    receive the same workload when many are placed at once.
    """

    key: str
    host_selector: LabelSelector = field(default_factory=LabelSelector)
    environment: str = ""
    host_id: str = ""
    interfaces: frozenset[Interface] = frozenset()
    group: str = ""
    namespace: str = ""
    """The workload's namespace: its environment when spec.environment is empty (filters.tenant)."""
